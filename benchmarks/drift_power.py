"""How often `fraud drift` raises a false alarm on clean traffic, and how often it catches each scenario.

Trains a champion in-process (no registry), then runs the drift check on independently seeded
windows of clean and drifted synthetic traffic, for several window sizes, both corrections and both
backends (alibi-detect and SciPy, which should agree window for window):

    uv run python benchmarks/drift_power.py [--train-rows 100000 --windows 50 --sizes 500 1000 2000]
"""

import argparse
import tempfile
from pathlib import Path
from typing import get_args

from fraudcore.bundle import load_bundle, save_bundle
from fraudcore.registry import LoadedModel
from fraudcore.settings import Settings
from jobs.drift.detection import detect_drift
from jobs.drift.statistics import Backend, Correction
from jobs.drift.window import from_frame
from training.data import load_training_data, split, synthetic_source
from training.synthetic import FRAUD_RATE, SCENARIOS, generate
from training.train import TrainConfig, train


def alarms(champion: LoadedModel, rows: int, scenario: str | None, seed: int, args: argparse.Namespace,
           correction: Correction, backend: Backend) -> str:  # fmt: skip
    """How many of `args.windows` windows (seeds from `seed` on) the check calls drifted."""
    hits = 0
    for i in range(args.windows):
        data = generate(rows=rows, seed=seed + i, fraud_rate=FRAUD_RATE, scenario=scenario)
        window = from_frame(data, champion.bundle.card.schema, "")
        result, _, _ = detect_drift(
            champion, window, correction=correction, p_value=args.p_value, min_rows=1, backend=backend
        )
        hits += result.detected
    return f"{hits}/{args.windows} ({hits / args.windows:.0%})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--train-rows", type=int, default=100_000)
    parser.add_argument("--model", choices=["xgboost", "logistic"], default="xgboost")
    parser.add_argument("--windows", type=int, default=50, help="Windows per cell (different seeds).")
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 1_000, 2_000])
    parser.add_argument("--p-value", type=float, default=Settings().drift_p_value, help="Family-wise level.")
    corrections, backends = list(get_args(Correction)), list(get_args(Backend))
    parser.add_argument("--corrections", nargs="+", default=corrections, choices=corrections)
    parser.add_argument("--backends", nargs="+", default=backends, choices=backends)
    args = parser.parse_args()

    loaded = load_training_data(synthetic_source(args.train_rows, 42))
    trained = train(
        split(loaded.frame, loaded.schema),
        TrainConfig.from_settings(Settings(), args.model, rounds=150),
        "benchmark",
        "benchmark",
    )
    with tempfile.TemporaryDirectory() as tmp:
        save_bundle(Path(tmp), trained.scorer, trained.card, trained.reference)
        champion = LoadedModel(load_bundle(Path(tmp)), "benchmark", "1")
        print(
            f"champion: {args.model} on {args.train_rows:,} rows, reference {len(trained.reference):,} rows"
        )
        print(f"family-wise p < {args.p_value}; {args.windows} windows per cell, each with its own seed")
        print(f"{'window rows':>11}  {'correction':<11}{'backend':<13}{'clean: alarms':>15}", end="")
        print("".join(f"{name + ': caught':>26}" for name in SCENARIOS))
        for rows in args.sizes:
            for correction in args.corrections:
                for backend in args.backends:
                    cells = [
                        alarms(champion, rows, scenario, 10_000 * (n + 1), args, correction, backend)
                        for n, scenario in enumerate([None, *SCENARIOS])
                    ]
                    print(f"{rows:>11,}  {correction:<11}{backend:<13}{cells[0]:>15}", end="")
                    print("".join(f"{c:>26}" for c in cells[1:]))


if __name__ == "__main__":
    main()
