"""`make bench`: the predictor against Seldon MLServer serving the same XGBoost model, in one run.

Trains an XGBoost model on synthetic data into a temporary directory, starts both servers and the
bare HTTP stack (benchmarks/bare.py: uvicorn as KServe runs it, answering the predictor's response
bytes), and measures single-row JSON at concurrency 16, single rows at a fixed 1,000 req/s (p99),
and 1024-row batches (JSON for both; the binary tensor extension for this predictor, which
MLServer's REST API does not offer), alternating between the servers round by round so that other
work on the machine weighs on all alike. The ceilings: the bare stack for single rows; in-process,
XGBoost `inplace_predict` and ONNX Runtime on the model's export (one thread each, no HTTP, no
decoding). Both servers score with one thread per call (`OMP_NUM_THREADS=1` for MLServer). Closed
loops run wrk (benchmarks/wrk.py), the fixed rate benchmarks/loadgen.py. Prints a table and writes
JSON to bench-results/.
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
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import xgboost as xgb

from benchmarks.wrk import closed_loop
from fraudcore.bundle import ONNX_FILE, save_bundle
from fraudcore.settings import Settings
from model_server.small_batches import OnnxScorer
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
RATE = 1000.0
CROSSOVER_ROWS = (1, 16, 64, 256, 512, 1024, 2048, 4096)


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
    bare: bool = False
    """Also measured against the bare HTTP stack."""

    @property
    def binary(self) -> bool:
        return bool(self.headers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
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
        ceiling = InProcess(bundle, x)
        step("in-process XGBoost and ONNX Runtime by batch size")
        crossover = ceiling.by_batch_size()
        urls = {"predictor": servers.enter_context(start_predictor(work, bundle))}
        if not args.no_mlserver:
            urls["mlserver"] = servers.enter_context(start_mlserver(work, bundle))
        urls["bare"] = servers.enter_context(start_bare(work, urls["predictor"][0]))
        results: dict[str, Any] = measure(urls, workloads, args.duration, args.rounds, ceiling)
        results["in_process"] = ceiling.summary() | {"by_batch_size": crossover}
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
        Workload("single-row JSON, c=16", 1, work / "single.json", ceiling="single", bare=True),
        Workload("single-row JSON, 1000 req/s", 1, work / "single.json", rate=RATE, bare=True),
        Workload(f"{BATCH}-row JSON, c={BATCH_CONCURRENCY}", BATCH, work / "batch.json",
                 concurrency=BATCH_CONCURRENCY, ceiling="batch"),
        Workload(f"{BATCH}-row binary, c={BATCH_CONCURRENCY}", BATCH, work / "batch.bin",
                 (f"inference-header-content-length: {len(header)}",), concurrency=BATCH_CONCURRENCY),
    ]  # fmt: skip


class InProcess:
    """The ceilings: XGBoost's inplace_predict and ONNX Runtime on the model's export, in this
    process, one thread, no HTTP, no decoding.

    Measured in every round next to the servers, so that they see the same machine load the servers do."""

    def __init__(self, bundle: Path, x: np.ndarray) -> None:
        self.booster = xgb.Booster(model_file=str(bundle / "model.ubj"))
        self.booster.set_param({"nthread": 1})
        self.onnx = OnnxScorer((bundle / ONNX_FILE).read_bytes())
        self.x = x
        self.runtimes = {"xgboost": self._xgboost, "onnx": self.onnx.predict_proba}
        self.rounds: dict[str, dict[str, list[float]]] = {
            kind: {runtime: [] for runtime in self.runtimes} for kind in ("single", "batch")
        }

    def _xgboost(self, rows: np.ndarray) -> np.ndarray:
        return self.booster.inplace_predict(rows, validate_features=False)  # type: ignore[no-any-return]

    def measure(self, kind: str, seconds: float) -> None:
        rows = self.x[:1] if kind == "single" else self.x
        for runtime, predict in self.runtimes.items():
            self.rounds[kind][runtime].append(calls_per_second(predict, rows, seconds / 2))

    def by_batch_size(self) -> dict[str, dict[str, float]]:
        """µs per call of each runtime at each batch size: where XGBoost takes over from ONNX Runtime."""
        x = np.concatenate([self.x] * (max(CROSSOVER_ROWS) // len(self.x) + 1))
        return {
            str(rows): {
                name: round(1e6 / calls_per_second(predict, x[:rows], 0.3), 1)
                for name, predict in self.runtimes.items()
            }
            for rows in CROSSOVER_ROWS
        }

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"trees": self.booster.num_boosted_rounds()}
        for kind, runtimes in self.rounds.items():
            rows = 1 if kind == "single" else len(self.x)
            out[kind] = {}
            for runtime, rounds in runtimes.items():
                mean = sum(rounds) / len(rounds)
                out[kind][runtime] = {
                    "calls_per_s": round(mean, 1),
                    "rows_per_s": round(mean * rows),
                    "us_per_call": round(1e6 / mean, 1),
                    "rounds_calls_per_s": [round(r, 1) for r in rounds],
                }
        return out


def calls_per_second(predict: Callable[[np.ndarray], Any], rows: np.ndarray, seconds: float) -> float:
    calls, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        predict(rows)
        calls += 1
    return calls / (time.perf_counter() - begin)


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
def start_bare(work: Path, predictor: str) -> Iterator[tuple[str, int]]:
    """The bare stack, answering what the predictor answers to the single-row request."""
    response = work / "single-response.json"
    request = urllib.request.Request(
        f"{predictor}/v2/models/{MODEL}/infer", (work / "single.json").read_bytes(), method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as reply:
        response.write_bytes(reply.read())
    port = free_port()
    command = [sys.executable, "-m", "benchmarks.bare", "--port", str(port), "--response", str(response)]
    step("starting the bare HTTP stack (python -m benchmarks.bare)")
    url = f"http://127.0.0.1:{port}"
    with server(command, dict(os.environ), work / "bare.log", url) as pid:
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
                if name == "bare" and not workload.bare:
                    continue
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
    """Closed loops with wrk (after a 2 s warm-up), the fixed rate with benchmarks/loadgen.py."""
    url = f"{base_url}/v2/models/{MODEL}/infer"
    if not workload.rate:
        warmup = closed_loop(url, workload.body, workload.headers, workload.concurrency, 2)
        run = closed_loop(url, workload.body, workload.headers, workload.concurrency, duration)
        return run | {"warmup_requests": warmup["requests"]}
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), "--url", url,
               "--body", str(workload.body), "--duration", str(duration), "--rate", str(workload.rate),
               "--warmup", "2", "--concurrency", str(workload.concurrency)]  # fmt: skip
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
    """The targets, measured in this run."""
    ours, peer, bare = results["predictor"], results.get("mlserver"), results["bare"]
    # 1024-row batches are scored by XGBoost itself (small_batches.ONNX_MAX_ROWS): its ceiling.
    ceiling = results["in_process"]["batch"]["xgboost"]["rows_per_s"]
    single, fixed = f"single-row JSON, c={CONCURRENCY}", f"single-row JSON, {RATE:g} req/s"
    batch, binary = f"{BATCH}-row JSON, c={BATCH_CONCURRENCY}", f"{BATCH}-row binary, c={BATCH_CONCURRENCY}"
    out: dict[str, Any] = {
        "single-row req/s share of the bare stack (target >= 0.4)": ratio(
            ours[single]["req_per_s"], bare[single]["req_per_s"]
        ),
        f"p99 ms at {RATE:g} req/s (target <= 2)": ours[fixed]["p99_ms"],
        "batch binary share of in-process XGBoost (target >= 0.75)": ratio(
            ours[binary]["rows_per_s"], ceiling
        ),
        "batch JSON share of in-process XGBoost": ratio(ours[batch]["rows_per_s"], ceiling),
    }
    if peer:
        out["batch rows/s vs MLServer, both JSON (target >= 2)"] = ratio(
            ours[batch]["rows_per_s"], peer[batch]["rows_per_s"]
        )
        out["single-row req/s vs MLServer"] = ratio(ours[single]["req_per_s"], peer[single]["req_per_s"])
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
    servers = [s for s in ("predictor", "mlserver", "bare") if s in results]
    names = list(results["predictor"])
    width = 56
    header = f"{'workload':<28}" + "".join(f"| {s:<{width - 2}}" for s in servers)
    print("\n" + header)
    print(f"{'':<28}" + "| req/s    rows/s    p50 ms   p99 ms    CPU ms/req  err".ljust(width) * len(servers))
    print("-" * len(header))
    for name in names:
        line = f"{name:<28}"
        for s in servers:
            r = results[s].get(name)
            cells = "n/a"
            if r:
                cells = (f"{r['req_per_s']:<8.0f} {r['rows_per_s']:<9.0f} {r['p50_ms']:<8.2f} "
                         f"{r['p99_ms']:<9.2f} {r['cpu_ms_per_req']:<11.3f} {r['errors']}")  # fmt: skip
            line += ("| " + cells).ljust(width)
        print(line)
    in_process = results["in_process"]
    for runtime in ("xgboost", "onnx"):
        single, batch = in_process["single"][runtime], in_process["batch"][runtime]
        print(f"{'in-process ' + runtime:<28}| single row {single['us_per_call']} µs/call "
              f"({single['calls_per_s']:.0f} calls/s); {BATCH} rows {batch['rows_per_s']:,} rows/s "
              f"({in_process['trees']} trees, 1 thread)")  # fmt: skip
    print("\nµs per call by batch size:  rows  " + "  ".join(f"{r:>7}" for r in in_process["by_batch_size"]))
    for runtime in ("xgboost", "onnx"):
        cells = "  ".join(f"{v[runtime]:>7.1f}" for v in in_process["by_batch_size"].values())
        print(f"{runtime:>34}  {cells}")
    machine = report["machine"]
    print(f"\nmachine: {machine['cpus']} CPUs, load average {machine['load_before'][0]:.2f} before, "
          f"{machine['load_after'][0]:.2f} after; {machine['cpu_pressure_after'] or ''}")  # fmt: skip
    print("targets:")
    for name, value in report["targets"].items():
        print(f"  {name}: {value}")


if __name__ == "__main__":
    main()
