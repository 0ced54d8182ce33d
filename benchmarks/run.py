"""`make bench`: the predictor against Seldon MLServer serving the same XGBoost model, in one run.

Trains an XGBoost model on synthetic data into a temporary directory, starts both servers, and
measures single-row JSON at concurrency 16, single rows at a fixed 500 req/s (p99), and 1024-row
batches (JSON for both; the binary tensor extension for this predictor, which MLServer's REST API
does not offer), alternating between the two servers round by round so that other work on the
machine weighs on both alike. XGBoost `inplace_predict` in-process is the ceiling. Both servers score
with one XGBoost thread per call (`OMP_NUM_THREADS=1` for MLServer, `nthread=1` here). The load
generator is one Python process (benchmarks/loadgen.py). Prints a table and writes JSON to
bench-results/.
"""

import argparse
import json
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from fraudcore.bundle import save_bundle
from fraudcore.settings import Settings
from training.data import fingerprint, load_training_data, split, synthetic_source
from training.export import export_onnx
from training.synthetic import KAGGLE_ROWS
from training.train import TrainConfig, train

ROOT = Path(__file__).resolve().parents[1]
PEER_PROJECT = ROOT / "benchmarks" / "mlserver"
MODEL = "fraud-detector"
BATCH = 1024
CONCURRENCY = 16
BATCH_CONCURRENCY = 4
RATE = 500.0


@dataclass(frozen=True)
class Workload:
    name: str
    rows: int
    body: Path
    headers: tuple[str, ...] = ()
    concurrency: int = CONCURRENCY
    rate: float = 0.0
    ceiling: str | None = None
    """Which in-process measurement ("single" or "batch") runs in this workload's rounds."""

    @property
    def binary(self) -> bool:
        return bool(self.headers)


def main() -> None:
    parser = argparse.ArgumentParser(description="Predictor vs MLServer vs in-process XGBoost.")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per measurement round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds per server and workload")
    parser.add_argument("--rows", type=int, default=KAGGLE_ROWS, help="synthetic rows to train on")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    parser.add_argument("--no-mlserver", action="store_true", help="skip the peer")
    args = parser.parse_args()
    started = datetime.now(UTC)
    machine = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "cpu_pressure_before": cpu_pressure()}
    if not args.no_mlserver:
        step("installing MLServer 1.7.1 + mlserver-xgboost into benchmarks/mlserver/.venv")
        uv = os.environ.get("UV") or shutil.which("uv") or "uv"  # `uv run` names itself in $UV
        env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}  # not this project's venv
        subprocess.run(
            [uv, "sync", "--frozen", "--project", str(PEER_PROJECT)], check=True, cwd=ROOT, env=env
        )
    with tempfile.TemporaryDirectory(prefix="fraud-bench-") as tmp, ExitStack() as servers:
        work = Path(tmp)
        bundle, x = build_model(work, args.rows)
        workloads = write_workloads(work, x)
        ceiling = InProcess(bundle / "model.ubj", x)
        urls = {"predictor": servers.enter_context(start_predictor(work, bundle))}
        if not args.no_mlserver:
            urls["mlserver"] = servers.enter_context(start_mlserver(work, bundle))
        results: dict[str, Any] = measure(urls, workloads, args.duration, args.rounds, ceiling)
        results["in_process"] = ceiling.summary()
    machine |= {"load_after": os.getloadavg(), "cpu_pressure_after": cpu_pressure()}
    report = {
        "started": started.isoformat(timespec="seconds"),
        "machine": machine | {"python": platform.python_version(), "xgboost": xgb.__version__},
        "settings": {"round_s": args.duration, "rounds": args.rounds, "concurrency": CONCURRENCY,
                     "batch_rows": BATCH, "batch_concurrency": BATCH_CONCURRENCY, "fixed_rate": RATE},
        "results": results,
    }  # fmt: skip
    report["targets"] = targets(results)
    print_table(report)
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"bench-{started:%Y%m%d-%H%M%S}.json"
    path.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {path}")


def step(message: str) -> None:
    print(f"[bench] {message}", flush=True)


def cpu_pressure() -> str | None:
    """Linux PSI: the share of time runnable tasks waited for a CPU (other work on the machine)."""
    try:
        return Path("/proc/pressure/cpu").read_text().splitlines()[0]
    except OSError:
        return None


def build_model(work: Path, rows: int) -> tuple[Path, np.ndarray]:
    step(f"training XGBoost on {rows:,} synthetic rows")
    source = synthetic_source(rows, 42)
    loaded = load_training_data(source)
    data = split(loaded.frame, loaded.schema)
    model = train(data, TrainConfig.from_settings(Settings(), "xgboost"), fingerprint(loaded.frame), source)
    bundle = work / "bundle"
    onnx = export_onnx(model.scorer, len(loaded.schema))
    save_bundle(bundle, model.scorer, model.card, model.reference, onnx)
    return bundle, data.x_holdout[:BATCH]


def write_workloads(work: Path, x: np.ndarray) -> list[Workload]:
    def body(rows: np.ndarray) -> dict[str, Any]:
        return {"inputs": [{"name": "features", "shape": list(rows.shape), "datatype": "FP32",
                            "data": rows.ravel().tolist()}]}  # fmt: skip

    files = {"single": body(x[:1]), "batch": body(x)}
    for name, content in files.items():
        (work / f"{name}.json").write_text(json.dumps(content))
    header = json.dumps({"inputs": [{"name": "features", "shape": list(x.shape), "datatype": "FP32",
                                     "parameters": {"binary_data_size": x.nbytes}}]}).encode()  # fmt: skip
    (work / "batch.bin").write_bytes(header + np.ascontiguousarray(x, "<f4").tobytes())
    return [
        Workload("single-row JSON, c=16", 1, work / "single.json", ceiling="single"),
        Workload("single-row JSON, 500 req/s", 1, work / "single.json", rate=RATE),
        Workload(f"{BATCH}-row JSON, c={BATCH_CONCURRENCY}", BATCH, work / "batch.json",
                 concurrency=BATCH_CONCURRENCY, ceiling="batch"),
        Workload(f"{BATCH}-row binary, c={BATCH_CONCURRENCY}", BATCH, work / "batch.bin",
                 (f"inference-header-content-length: {len(header)}",), concurrency=BATCH_CONCURRENCY),
    ]  # fmt: skip


class InProcess:
    """The ceiling: XGBoost's inplace_predict in this process, one thread, no HTTP, no decoding.

    Measured in every round next to the servers, so that it sees the same machine load they do."""

    def __init__(self, model_file: Path, x: np.ndarray) -> None:
        self.booster = xgb.Booster(model_file=str(model_file))
        self.booster.set_param({"nthread": 1})
        self.x = x
        self.rounds: dict[str, list[float]] = {"single": [], "batch": []}

    def measure(self, kind: str, seconds: float) -> None:
        rows = self.x[:1] if kind == "single" else self.x
        calls, begin = 0, time.perf_counter()
        while time.perf_counter() - begin < seconds:
            self.booster.inplace_predict(rows, validate_features=False)
            calls += 1
        self.rounds[kind].append(calls / (time.perf_counter() - begin))

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trees": self.booster.num_boosted_rounds()}
        for kind, rounds in self.rounds.items():
            calls_per_s = sum(rounds) / len(rounds)
            rows = 1 if kind == "single" else len(self.x)
            out[kind] = {
                "calls_per_s": round(calls_per_s, 1),
                "rows_per_s": round(calls_per_s * rows),
                "us_per_call": round(1e6 / calls_per_s, 1),
                "rounds_calls_per_s": [round(r, 1) for r in rounds],
            }
        return out


@contextmanager
def start_predictor(work: Path, bundle: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "MLFLOW_"))}
    env |= {"FRAUD_MODEL_URI": str(bundle), "FRAUD_HOME": str(work / "home"), "FRAUD_MODEL_ROLE": "champion"}
    command = [sys.executable, "-m", "model_server", "--model_name", MODEL, "--http_port", str(port),
               "--enable_grpc", "false"]  # fmt: skip
    step("starting the predictor (python -m model_server)")
    url = f"http://127.0.0.1:{port}"
    with server(command, env, work / "predictor.log", f"{url}/v2/health/ready") as pid:
        yield url, pid


@contextmanager
def start_mlserver(work: Path, bundle: Path) -> Iterator[tuple[str, int]]:
    port, grpc, metrics = free_port(), free_port(), free_port()
    models = work / "mlserver"
    (models / MODEL).mkdir(parents=True)
    shutil.copy(bundle / "model.ubj", models / MODEL / "model.ubj")
    (models / "settings.json").write_text(
        # metrics_dir: MLServer's default is ./.metrics in the working directory.
        json.dumps(
            {
                "http_port": port,
                "grpc_port": grpc,
                "metrics_port": metrics,
                "metrics_dir": str(work / "mlserver-metrics"),
            }
        )
    )
    (models / MODEL / "model-settings.json").write_text(json.dumps({
        "name": MODEL, "implementation": "mlserver_xgboost.XGBoostModel",
        "parameters": {"uri": "./model.ubj", "version": "1"},
    }))  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [str(PEER_PROJECT / ".venv" / "bin" / "mlserver"), "start", str(models)]
    step("starting MLServer (mlserver start)")
    url = f"http://127.0.0.1:{port}"
    with server(command, env, work / "mlserver.log", f"{url}/v2/models/{MODEL}/ready") as pid:
        yield url, pid


@contextmanager
def server(command: list[str], env: dict[str, str], log: Path, ready_url: str) -> Iterator[int]:
    """Run a server process until the block ends; waits for its readiness URL; yields its pid."""
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            wait_ready(process, ready_url, log)
            yield process.pid
        finally:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


def wait_ready(process: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"server did not become ready; see its log:\n{log.read_text()[-3000:]}")


def measure(
    urls: dict[str, tuple[str, int]],
    workloads: list[Workload],
    duration: float,
    rounds: int,
    ceiling: InProcess,
) -> dict[str, dict[str, Any]]:
    """Each workload in alternating rounds (predictor, MLServer, in-process, predictor, …), so that
    changes in the machine's load during the run reach all alike; req/s and p50 are the mean of the
    rounds, p90/p99/max the worst round."""
    results: dict[str, dict[str, Any]] = {name: {} for name in urls}
    for workload in workloads:
        step(f"{workload.name}: {rounds} round(s) of {duration:g} s per server")
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in urls}
        for _ in range(rounds):
            for name, (url, pid) in urls.items():
                if name == "mlserver" and workload.binary:
                    continue  # MLServer's REST API has no binary tensor extension
                cpu = tree_cpu_seconds(pid)
                run = load(url, workload, duration)
                served = run["requests"] + run["errors"] + run["warmup_requests"]
                run["cpu_ms_per_req"] = round((tree_cpu_seconds(pid) - cpu) * 1000 / max(served, 1), 3)
                runs[name].append(run)
            if workload.ceiling:
                ceiling.measure(workload.ceiling, duration / 2)
        for name, done in runs.items():
            if done:
                results[name][workload.name] = summarise(done, workload.rows)
    return results


def load(base_url: str, workload: Workload, duration: float) -> dict[str, Any]:
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"),
               "--url", f"{base_url}/v2/models/{MODEL}/infer", "--body", str(workload.body),
               "--concurrency", str(workload.concurrency), "--duration", str(duration),
               "--warmup", "2"]  # fmt: skip
    if workload.rate:
        command += ["--rate", str(workload.rate)]
    for header in workload.headers:
        command += ["--header", header]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout))


def summarise(runs: list[dict[str, Any]], rows: int) -> dict[str, Any]:
    req_per_s = sum(r["req_per_s"] for r in runs) / len(runs)
    return {
        "req_per_s": round(req_per_s, 1),
        "rows_per_s": round(req_per_s * rows),
        "p50_ms": round(sum(r["p50_ms"] for r in runs) / len(runs), 3),
        "cpu_ms_per_req": round(sum(r["cpu_ms_per_req"] for r in runs) / len(runs), 3),
        **{k: max(r[k] for r in runs) for k in ("p90_ms", "p99_ms", "max_ms")},
        "errors": sum(r["errors"] for r in runs),
        "rounds": runs,
    }


def tree_cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process and all its descendants, from /proc (Linux).

    Unlike req/s, the server's CPU time per request hardly depends on what else the machine runs."""
    parents: dict[int, int] = {}
    times: dict[int, float] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        child = int(stat.parent.name)
        parents[child] = int(fields[1])
        times[child] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [c for c, p in parents.items() if p == parent and c not in tree]
        tree.update(children)
        frontier.extend(children)
    return sum(times.get(p, 0.0) for p in tree)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def targets(results: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets, measured in this run."""
    ours, peer = results["predictor"], results.get("mlserver")
    ceiling = results["in_process"]["batch"]["rows_per_s"]
    single, fixed = f"single-row JSON, c={CONCURRENCY}", "single-row JSON, 500 req/s"
    batch, binary = f"{BATCH}-row JSON, c={BATCH_CONCURRENCY}", f"{BATCH}-row binary, c={BATCH_CONCURRENCY}"
    out: dict[str, Any] = {
        "p99 ms at 500 req/s (target <= 10)": ours[fixed]["p99_ms"],
        "batch JSON share of in-process (target >= 0.6)": ratio(ours[batch]["rows_per_s"], ceiling),
        "batch binary share of in-process (target >= 0.6)": ratio(ours[binary]["rows_per_s"], ceiling),
    }
    if peer:
        out["single-row req/s vs MLServer (target >= 2)"] = ratio(
            ours[single]["req_per_s"], peer[single]["req_per_s"]
        )
        out["batch rows/s vs MLServer, both JSON (target >= 1.5)"] = ratio(
            ours[batch]["rows_per_s"], peer[batch]["rows_per_s"]
        )
        out["MLServer CPU per single-row request / ours"] = ratio(
            peer[single]["cpu_ms_per_req"], ours[single]["cpu_ms_per_req"]
        )
        out["MLServer CPU per 1024-row JSON request / ours"] = ratio(
            peer[batch]["cpu_ms_per_req"], ours[batch]["cpu_ms_per_req"]
        )
    return out


def ratio(a: float, b: float) -> float:
    return round(a / b, 2) if b else float("inf")


def print_table(report: dict[str, Any]) -> None:
    results = report["results"]
    servers = [s for s in ("predictor", "mlserver") if s in results]
    names = list(results["predictor"])
    width = 56
    header = f"{'workload':<26}" + "".join(f"| {s:<{width - 2}}" for s in servers)
    print("\n" + header)
    print(f"{'':<26}" + "| req/s    rows/s    p50 ms   p99 ms    CPU ms/req  err".ljust(width) * len(servers))
    print("-" * len(header))
    for name in names:
        line = f"{name:<26}"
        for s in servers:
            r = results[s].get(name)
            cells = "n/a"
            if r:
                cells = (f"{r['req_per_s']:<8.0f} {r['rows_per_s']:<9.0f} {r['p50_ms']:<8.2f} "
                         f"{r['p99_ms']:<9.2f} {r['cpu_ms_per_req']:<11.3f} {r['errors']}")  # fmt: skip
            line += ("| " + cells).ljust(width)
        print(line)
    single, batch = results["in_process"]["single"], results["in_process"]["batch"]
    print(f"{'in-process XGBoost':<26}| single row {single['us_per_call']} µs/call "
          f"({single['calls_per_s']:.0f} calls/s); {BATCH} rows {batch['rows_per_s']:,} rows/s "
          f"({results['in_process']['trees']} trees, 1 thread)")  # fmt: skip
    machine = report["machine"]
    print(f"\nmachine: {machine['cpus']} CPUs, load average {machine['load_before'][0]:.2f} before, "
          f"{machine['load_after'][0]:.2f} after; {machine['cpu_pressure_after'] or ''}")  # fmt: skip
    print("targets:")
    for name, value in report["targets"].items():
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
