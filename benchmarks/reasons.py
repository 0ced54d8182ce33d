"""`make bench`: what reason codes cost, per model kind.

Trains a throwaway model of every kind in `fraudcore.bundle.SCORERS` on synthetic data into a
temporary directory, then measures in-process the microseconds per explained row (contributions
and top-k, `fraudcore.reasons.explain`) at 1, 100 and 1000 rows next to plain scoring, and over
HTTP the throughput and latency of single-row v2 requests that ask for `reason_codes` against the
same requests that do not, on a real predictor per kind (benchmarks/loadgen.py, closed loop),
alternating the two round by round so that other work on the machine weighs on both alike.
Prints a table and writes JSON to bench-results/.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.run import MODEL, ROOT, cpu_pressure, start_predictor, step, summarise, tree_cpu_seconds
from fraudcore.bundle import SCORERS, Scorer, save_bundle
from fraudcore.reasons import DEFAULT_TOP_K, explain
from fraudcore.schema import Schema
from fraudcore.settings import Settings
from training.data import fingerprint, load_training_data, split, synthetic_source
from training.train import TrainConfig, train

SIZES = (1, 100, 1000)
CONCURRENCY = 16


def main() -> None:
    parser = argparse.ArgumentParser(description="The cost of reason codes, in-process and over HTTP.")
    parser.add_argument("--rows", type=int, default=50_000, help="synthetic rows to train on")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per HTTP round")
    parser.add_argument("--rounds", type=int, default=2, help="alternating HTTP rounds per workload")
    parser.add_argument("--out", type=Path, default=ROOT / "bench-results")
    args = parser.parse_args()
    machine = {"cpus": os.cpu_count(), "load_before": os.getloadavg(), "cpu_pressure_before": cpu_pressure()}
    report: dict[str, Any] = {"machine": machine, "top_k": DEFAULT_TOP_K, "kinds": {}}
    with tempfile.TemporaryDirectory(prefix="fraud-bench-reasons-") as tmp:
        work = Path(tmp)
        source = synthetic_source(args.rows, 42)
        loaded = load_training_data(source)
        data = split(loaded.frame, loaded.schema)
        for kind in SCORERS:
            step(f"training {kind} on {args.rows:,} synthetic rows")
            config = TrainConfig.from_settings(Settings(), kind)
            model = train(data, config, fingerprint(loaded.frame), source)
            bundle = work / kind
            save_bundle(bundle, model.scorer, model.card, model.reference)
            x = data.x_holdout[: max(SIZES)]
            in_process = measure_in_process(model.scorer, loaded.schema, x)
            http = measure_http(work / f"{kind}-server", bundle, x[0], args.duration, args.rounds)
            report["kinds"][kind] = {"in_process": in_process, "http": http}
    machine |= {"load_after": os.getloadavg(), "cpu_pressure_after": cpu_pressure()}
    print_table(report)
    args.out.mkdir(exist_ok=True)
    out = args.out / f"reasons-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.json"
    out.write_text(json.dumps(report, indent=2))
    step(f"wrote {out}")


def measure_in_process(scorer: Scorer, schema: Schema, x: np.ndarray) -> dict[str, dict[str, float]]:
    """µs per row of scoring and of explaining, for each batch size."""
    results = {}
    for rows in SIZES:
        batch = np.ascontiguousarray(x[:rows])
        results[str(rows)] = {
            "score_us_per_row": per_row_us(lambda b=batch: scorer.predict_proba(b), rows),
            "explain_us_per_row": per_row_us(lambda b=batch: explain(scorer, schema, b), rows),
        }
    return results


def per_row_us(call: Callable[[], object], rows: int, seconds: float = 0.5) -> float:
    """The median over repeated calls for about `seconds`, in µs per row."""
    call()  # warm-up
    times = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(times) < 5:
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return round(float(np.median(times)) * 1e6 / rows, 2)


def measure_http(
    work: Path, bundle: Path, row: np.ndarray, duration: float, rounds: int
) -> dict[str, dict[str, Any]]:
    """Single-row JSON requests with and without `reason_codes`, alternating round by round."""
    work.mkdir()
    tensor = {"name": "features", "shape": [1, len(row)], "datatype": "FP32", "data": row.tolist()}
    bodies = {
        "plain": {"inputs": [tensor]},
        "reasons": {"inputs": [tensor], "outputs": [{"name": "reason_codes"}, {"name": "fraud_probability"}]},
    }
    paths = {name: work / f"{name}.json" for name in bodies}
    for name, body in bodies.items():
        paths[name].write_text(json.dumps(body))
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in bodies}
    with start_predictor(work, bundle) as (url, pid):
        for _ in range(rounds):
            for name, path in paths.items():
                step(f"{bundle.name}: {name} single rows, {duration:g} s")
                cpu = tree_cpu_seconds(pid)
                run = loadgen(f"{url}/v2/models/{MODEL}/infer", path, duration)
                served = run["requests"] + run["errors"] + run["warmup_requests"]
                run["cpu_ms_per_req"] = round((tree_cpu_seconds(pid) - cpu) * 1000 / max(served, 1), 3)
                runs[name].append(run)
    return {name: summarise(done, 1) for name, done in runs.items()}


def loadgen(url: str, body: Path, duration: float) -> dict[str, Any]:
    """One closed-loop run of benchmarks/loadgen.py (its own process), after a 2 s warm-up."""
    command = [sys.executable, str(ROOT / "benchmarks" / "loadgen.py"), "--url", url, "--body", str(body),
               "--concurrency", str(CONCURRENCY), "--duration", str(duration), "--warmup", "2"]  # fmt: skip
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return dict(json.loads(done.stdout))


def print_table(report: dict[str, Any]) -> None:
    print(f"\nreason codes (top {report['top_k']}); machine: {report['machine']}")
    print(f"{'kind':10} {'rows':>5} {'score µs/row':>13} {'explain µs/row':>15}")
    for kind, result in report["kinds"].items():
        for rows, numbers in result["in_process"].items():
            print(
                f"{kind:10} {rows:>5} {numbers['score_us_per_row']:>13.2f} "
                f"{numbers['explain_us_per_row']:>15.2f}"
            )
    print(f"\n{'kind':10} {'single-row HTTP':16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>11}")
    for kind, result in report["kinds"].items():
        for name, numbers in result["http"].items():
            print(
                f"{kind:10} {name:16} {numbers['req_per_s']:>8.0f} {numbers['p50_ms']:>8.2f} "
                f"{numbers['p99_ms']:>8.2f} {numbers['cpu_ms_per_req']:>11.3f}"
            )


if __name__ == "__main__":
    main()
