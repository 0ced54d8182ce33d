"""Hyper-parameter search: an Optuna study within a budget of trials and/or minutes.

The sampler is TPE, seeded with the training seed, so the same data, seed and number of trials give
the same trials on one machine (a budget in minutes fixes the time, not the trials). Each trial fits
the family with its sampled hyper-parameters and is worth its validation PR-AUC; a boosted trial
reports every round's validation PR-AUC and is pruned when it falls below the median of earlier
trials at the same round. Every trial can be logged as a nested run of the training run.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import optuna
from sklearn.metrics import average_precision_score

from fraudcore.errors import UsageError
from fraudcore.registry import RunLog
from training.data import Split
from training.train import FITTERS, TrainConfig

logger = logging.getLogger(__name__)

STARTUP_TRIALS = 5
"""Trials that are never pruned (and that TPE samples at random): the median needs a few to mean much."""
WARMUP_ROUNDS = 30
"""Boosting rounds a trial always runs before it may be pruned."""
TRIAL_STATE_TAG = "tune.state"
"""Tag of a trial's run: `complete` or `pruned`."""
TRIAL_TAG = "tune.trial"
"""Tag of a trial's run: its number, from 1."""


@dataclass(frozen=True)
class Budget:
    """How much a search may spend: at most `trials` trials, at most `minutes` minutes, or both."""

    trials: int | None = None
    minutes: float | None = None

    def __post_init__(self) -> None:
        if self.trials is None and self.minutes is None:
            raise UsageError("a search needs a number of trials (--tune) or minutes (--tune-minutes)")
        if self.trials is not None and self.trials < 1:
            raise UsageError(f"--tune must be at least 1 trial, not {self.trials}")
        if self.minutes is not None and not self.minutes > 0:
            raise UsageError(f"--tune-minutes must be more than 0, not {self.minutes:g}")

    def describe(self) -> str:
        trials = f"{self.trials} trials" if self.trials else ""
        return " or ".join(filter(None, (trials, f"{self.minutes:g} min" if self.minutes else "")))


@dataclass(frozen=True)
class SearchResult:
    """The best trial's configuration and what the search cost."""

    config: TrainConfig
    best_trial: int
    best_pr_auc: float
    trials: int
    pruned: int
    seconds: float


def _xgboost_space(trial: optuna.Trial) -> dict[str, int | float]:
    return {
        "max_depth": trial.suggest_int("max_depth", 2, 8),
        "learning_rate": trial.suggest_float("learning_rate", 0.04, 0.3, log=True),
        "min_child_weight": trial.suggest_float("min_child_weight", 0.5, 20, log=True),
        "subsample": trial.suggest_float("subsample", 0.5, 1.0),
        "colsample_bytree": trial.suggest_float("colsample_bytree", 0.4, 1.0),
        "reg_lambda": trial.suggest_float("reg_lambda", 1e-3, 30, log=True),
    }


def _lightgbm_space(trial: optuna.Trial) -> dict[str, int | float]:
    return {
        "num_leaves": trial.suggest_int("num_leaves", 7, 127, log=True),
        "learning_rate": trial.suggest_float("learning_rate", 0.04, 0.3, log=True),
        "min_child_samples": trial.suggest_int("min_child_samples", 5, 200, log=True),
        "min_sum_hessian_in_leaf": trial.suggest_float("min_sum_hessian_in_leaf", 0.1, 20, log=True),
        "feature_fraction": trial.suggest_float("feature_fraction", 0.4, 1.0),
        "bagging_fraction": trial.suggest_float("bagging_fraction", 0.5, 1.0),
        "lambda_l2": trial.suggest_float("lambda_l2", 1e-3, 30, log=True),
    }


def _logistic_space(trial: optuna.Trial) -> dict[str, int | float]:
    return {"C": trial.suggest_float("C", 1e-3, 100, log=True)}


SPACES: dict[str, Callable[[optuna.Trial], dict[str, int | float]]] = {
    "xgboost": _xgboost_space,
    "lightgbm": _lightgbm_space,
    "logistic": _logistic_space,
}


def _objective(data: Split, config: TrainConfig) -> Callable[[optuna.Trial], float]:
    def objective(trial: optuna.Trial) -> float:
        trial_config = replace(config, hyper={**config.hyper, **SPACES[config.kind](trial)})

        def report(round_index: int, pr_auc: float) -> None:
            trial.report(pr_auc, round_index)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at round {round_index + 1}")

        scorer = FITTERS[config.kind](data, trial_config, report)
        return float(average_precision_score(data.y_valid, scorer.predict_proba(data.x_valid)))

    return objective


def search(data: Split, config: TrainConfig, budget: Budget, run: RunLog | None = None) -> SearchResult:
    """The best hyper-parameters for `config`'s family within `budget`, each trial logged under `run`."""
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        direction="maximize",
        sampler=optuna.samplers.TPESampler(seed=config.seed, n_startup_trials=STARTUP_TRIALS),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=STARTUP_TRIALS, n_warmup_steps=WARMUP_ROUNDS),
    )
    logger.info("searching %s hyper-parameters within %s", config.kind, budget.describe())
    started = time.perf_counter()
    study.optimize(
        _objective(data, config),
        n_trials=budget.trials,
        timeout=budget.minutes * 60 if budget.minutes else None,
        callbacks=[_Recorder(budget, run)],
    )
    pruned = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.PRUNED,))
    best = study.best_trial
    return SearchResult(
        config=replace(config, hyper={**config.hyper, **best.params}),
        best_trial=best.number + 1,
        best_pr_auc=float(best.value or 0.0),
        trials=len(study.trials),
        pruned=len(pruned),
        seconds=time.perf_counter() - started,
    )


class _Recorder:
    """After each trial: a progress line, and the trial as a nested run (params, PR-AUC, seconds)."""

    def __init__(self, budget: Budget, run: RunLog | None) -> None:
        self.of = f"of {budget.trials}" if budget.trials else f"within {budget.minutes:g} min"
        self.run = run

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        pruned = trial.state == optuna.trial.TrialState.PRUNED
        seconds = trial.duration.total_seconds() if trial.duration else 0.0
        if pruned:
            # Only a boosting round can prune, so a pruned trial has reported at least one.
            last = trial.last_step or 0
            pr_auc = trial.intermediate_values[last]
            outcome = f"pruned at round {last + 1} (validation PR-AUC {pr_auc:.4f})"
        else:
            pr_auc = float(trial.value or 0.0)
            outcome = f"validation PR-AUC {pr_auc:.4f}"
        best = study.best_trial
        logger.info(
            "trial %d %s: %s in %.1f s; best so far %.4f (trial %d)",
            trial.number + 1, self.of, outcome, seconds, best.value, best.number + 1,
        )  # fmt: skip
        if self.run is not None:
            self.run.log_child(
                f"trial-{trial.number + 1}",
                params=trial.params,
                metrics={"valid_pr_auc": pr_auc, "seconds": seconds},
                tags={TRIAL_STATE_TAG: "pruned" if pruned else "complete", TRIAL_TAG: str(trial.number + 1)},
            )
