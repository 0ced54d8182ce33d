"""Tuned against default hyper-parameters: validation and holdout PR-AUC of each model family on the
built-in data sets, and the time one search trial takes.

Everything runs in-process (no registry): per data set and family, one fit with the configured
hyper-parameters, then a seeded search (`fraud train --tune`) within the budget and a fit with the
best trial's hyper-parameters. Validation PR-AUC is what the search maximises; the holdout is the
part the validation gate judges, untouched by the search:

    uv run python benchmarks/tuning.py [--rows 50000 --trials 8 --datasets creditcard paysim --json]
"""

import argparse
import json
import logging
import time
from typing import Any, get_args

from sklearn.metrics import average_precision_score

from fraudcore.bundle import ModelKind
from fraudcore.settings import Settings
from training.data import DATASETS, Split, load_training_data, split, synthetic_source
from training.train import TrainConfig, train
from training.tune import Budget, search


def measure(data: Split, kind: ModelKind, budget: Budget, seed: int) -> dict[str, Any]:
    """Default and tuned PR-AUC (validation, holdout) of one family, and the search's cost."""
    config = TrainConfig.from_settings(Settings(), kind, seed=seed)
    started = time.perf_counter()
    default = train(data, config, "benchmark", "benchmark")
    default_seconds = time.perf_counter() - started
    default_valid = average_precision_score(data.y_valid, default.scorer.predict_proba(data.x_valid))
    found = search(data, config, budget)
    tuned = train(data, found.config, "benchmark", "benchmark")
    return {
        "default_valid": float(default_valid),
        "default_holdout": default.card.metrics["pr_auc"],
        "default_fit_s": default_seconds,
        "tuned_valid": found.best_pr_auc,
        "tuned_holdout": tuned.card.metrics["pr_auc"],
        "trials": found.trials,
        "pruned": found.pruned,
        "s_per_trial": found.seconds / found.trials,
        "best": dict(found.config.hyper),
    }


def table(results: list[dict[str, Any]]) -> str:
    header = ("data set", "family", "default valid", "default holdout", "tuned valid", "tuned holdout",
              "trials (pruned)", "s/trial", "default fit s")  # fmt: skip
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in results:
        cells = (r["dataset"], r["family"], f"{r['default_valid']:.3f}", f"{r['default_holdout']:.3f}",
                 f"{r['tuned_valid']:.3f}", f"{r['tuned_holdout']:.3f}", f"{r['trials']} ({r['pruned']})",
                 f"{r['s_per_trial']:.1f}", f"{r['default_fit_s']:.1f}")  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=50_000, help="Rows generated per data set.")
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    families = list(get_args(ModelKind))
    parser.add_argument("--models", nargs="+", default=families, choices=families)
    parser.add_argument("--trials", type=int, default=8, help="Search budget: trials per family.")
    parser.add_argument("--minutes", type=float, default=None, help="Search budget: minutes per family.")
    parser.add_argument("--seed", type=int, default=Settings().seed, help="Data, split and search seed.")
    parser.add_argument("--json", action="store_true", help="Print the results as JSON, not a table.")
    parser.add_argument("--verbose", action="store_true", help="Log every trial.")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    budget = Budget(args.trials, args.minutes)

    results = []
    for dataset in args.datasets:
        loaded = load_training_data(synthetic_source(args.rows, args.seed, dataset=dataset))
        data = split(loaded.frame, loaded.schema)
        for kind in args.models:
            measured = measure(data, kind, budget, args.seed)
            results.append({"dataset": dataset, "family": kind, "rows": args.rows, **measured})
    if args.json:
        print(json.dumps({"rows": args.rows, "budget": budget.describe(), "results": results}, indent=2))
    else:
        print(f"{args.rows:,} rows per data set, {budget.describe()} per family, seed {args.seed}")
        print(table(results))


if __name__ == "__main__":
    main()
