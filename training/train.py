"""Fit a model on a split, choose its threshold by cost, and measure it on the holdout."""

import logging
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import get_args

import lightgbm as lgb
import numpy as np
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fraudcore.bundle import (
    LightGBMScorer,
    LogisticScorer,
    ModelCard,
    ModelKind,
    Scorer,
    XGBoostScorer,
    one_hot,
)
from fraudcore.settings import Settings
from training.data import Split
from training.evaluate import choose_threshold, score_metrics

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 5_000


HyperParams = Mapping[str, int | float]
"""A model family's hyper-parameters by name (`rounds` is the boosting rounds; the rest are the
library's own parameter names)."""

RUN_PARAMS = ("kind", "seed", "cost_missed_fraud", "cost_false_alarm")
"""What a model card's params record besides the hyper-parameters."""


def configured_hyper(settings: Settings, kind: ModelKind) -> dict[str, int | float]:
    """The hyper-parameters a family trains with when none are given or searched for."""
    if kind == "logistic":
        return {"C": settings.logistic_c}
    if kind == "lightgbm":
        return {
            "rounds": settings.lightgbm_rounds,
            "num_leaves": settings.lightgbm_num_leaves,
            "learning_rate": settings.lightgbm_learning_rate,
        }
    return {
        "rounds": settings.xgboost_rounds,
        "max_depth": settings.xgboost_max_depth,
        "learning_rate": settings.xgboost_learning_rate,
    }


@dataclass(frozen=True)
class TrainConfig:
    """Model family, hyper-parameters, decision costs and seed of one training run (defaults:
    `from_settings`)."""

    kind: ModelKind
    hyper: HyperParams
    cost_missed_fraud: float
    cost_false_alarm: float
    seed: int

    @classmethod
    def from_settings(
        cls, settings: Settings, kind: ModelKind, seed: int | None = None, **hyper: int | float | None
    ) -> "TrainConfig":
        """The family's configured hyper-parameters, the costs and the seed; `hyper` values that are
        not None win (names the family does not have, e.g. `rounds` for logistic, are ignored)."""
        values = configured_hyper(settings, kind)
        values |= {key: value for key, value in hyper.items() if value is not None and key in values}
        return cls(
            kind=kind,
            hyper=values,
            cost_missed_fraud=settings.cost_missed_fraud,
            cost_false_alarm=settings.cost_false_alarm,
            seed=settings.seed if seed is None else seed,
        )

    @classmethod
    def from_card(
        cls, settings: Settings, params: Mapping[str, str | int | float], kind: ModelKind | None = None
    ) -> "TrainConfig":
        """A model card's family, hyper-parameters and seed with today's costs; another `kind` trains
        with its configured hyper-parameters instead."""
        recorded = params.get("kind")
        seed = int(params["seed"]) if "seed" in params else None
        if kind is not None and kind != recorded:
            return cls.from_settings(settings, kind, seed=seed)
        family: ModelKind = recorded if recorded in get_args(ModelKind) else "xgboost"  # type: ignore[assignment]
        config = cls.from_settings(settings, family, seed=seed)
        kept = {k: v for k, v in params.items() if k not in RUN_PARAMS and isinstance(v, int | float)}
        return replace(config, hyper={**config.hyper, **kept})

    def params(self) -> dict[str, str | int | float]:
        return {"kind": self.kind, **self.hyper, "seed": self.seed}


@dataclass
class TrainedModel:
    """A fitted scorer with its card and the holdout scores the card's metrics come from."""

    scorer: Scorer
    card: ModelCard
    reference: np.ndarray
    holdout_scores: np.ndarray = field(repr=False)


Report = Callable[[int, float], None]
"""Called after each boosting round with its number and the validation PR-AUC; raising stops the fit
(a tuning trial pruned)."""


def fit_logistic(data: Split, config: TrainConfig, report: Report | None = None) -> LogisticScorer:
    categorical = data.schema.categorical
    x = one_hot(data.x_train, categorical)
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)  # missing values at the mean: no effect
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(
        C=config.hyper["C"], class_weight="balanced", max_iter=2000, random_state=config.seed
    )
    model.fit(scaler.transform(x), data.y_train)
    return LogisticScorer(
        scaler.mean_, scaler.scale_, model.coef_[0], float(model.intercept_[0]), categorical
    )


def _round_done(kind: str, epoch: int, rounds: int, pr_auc: float, report: Report | None) -> None:
    """Each round's validation PR-AUC to `report`; a progress line every 50 rounds (debug in a trial)."""
    if report is not None:
        report(epoch, pr_auc)
    if (epoch + 1) % 50 == 0 or epoch + 1 == rounds:
        level = logging.DEBUG if report else logging.INFO
        logger.log(level, "  %s round %d/%d  validation PR-AUC %.4f", kind, epoch + 1, rounds, pr_auc)


class _XGBoostRounds(xgb.callback.TrainingCallback):
    def __init__(self, rounds: int, report: Report | None) -> None:
        self.rounds, self.report = rounds, report

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        _round_done("xgboost", epoch, self.rounds, evals_log["valid"]["aucpr"][-1], self.report)
        return False


def _early_stopping(rounds: int) -> int | None:
    """Rounds without improvement on validation PR-AUC before a boosted fit stops."""
    return max(20, rounds // 8) if rounds >= 40 else None


def _positive_weight(y: np.ndarray) -> float:
    """Imbalance: up-weight fraud, but only by the square root to keep scores usable."""
    negatives, positives = np.bincount(y, minlength=2)
    return float(np.sqrt(negatives / max(positives, 1)))


def fit_xgboost(data: Split, config: TrainConfig, report: Report | None = None) -> XGBoostScorer:
    hyper = dict(config.hyper)
    rounds = int(hyper.pop("rounds"))
    params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 2,
        "scale_pos_weight": _positive_weight(data.y_train),
        "tree_method": "hist",
        "nthread": os.cpu_count() or 1,
        "seed": config.seed,
        **hyper,
    }
    # Categorical features split natively on their codes (NaN, an unknown category, is "missing").
    types = ["c" if f.kind == "categorical" else "q" for f in data.schema.features]
    train = xgb.DMatrix(data.x_train, label=data.y_train, feature_types=types, enable_categorical=True)
    valid = xgb.DMatrix(data.x_valid, label=data.y_valid, feature_types=types, enable_categorical=True)
    early_stopping = _early_stopping(rounds)
    booster = xgb.train(
        params,
        train,
        num_boost_round=rounds,
        evals=[(valid, "valid")],
        early_stopping_rounds=early_stopping,
        verbose_eval=False,
        callbacks=[_XGBoostRounds(rounds, report)],
    )
    if early_stopping and booster.best_iteration + 1 < booster.num_boosted_rounds():
        booster = booster[: booster.best_iteration + 1]
    return XGBoostScorer(booster)


def fit_lightgbm(data: Split, config: TrainConfig, report: Report | None = None) -> LightGBMScorer:
    hyper = dict(config.hyper)
    rounds = int(hyper.pop("rounds"))
    params = {
        "objective": "binary",
        "metric": "average_precision",
        "min_child_samples": 20,
        # As XGBoost's min_child_weight and lambda: with few frauds, leaves of almost only legitimate
        # rows have a tiny hessian and, unregularised, extreme values.
        "min_sum_hessian_in_leaf": 2.0,
        "lambda_l2": 1.0,
        "feature_fraction": 0.8,
        "bagging_fraction": 0.8,
        "bagging_freq": 1,
        "scale_pos_weight": _positive_weight(data.y_train),
        "num_threads": os.cpu_count() or 1,
        "seed": config.seed,
        # The same model for the same data and seed, whatever the number of threads.
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
        **hyper,
    }
    # Categorical features split natively on their codes (NaN, an unknown category, is "missing").
    categorical = [i for i, f in enumerate(data.schema.features) if f.kind == "categorical"]
    train = lgb.Dataset(data.x_train, label=data.y_train, categorical_feature=categorical, params=params)
    valid = lgb.Dataset(data.x_valid, label=data.y_valid, reference=train)

    def after_round(env: lgb.callback.CallbackEnv) -> None:
        _round_done("lightgbm", env.iteration, rounds, env.evaluation_result_list[0][2], report)

    callbacks = [after_round]
    if stopping := _early_stopping(rounds):
        callbacks.append(lgb.early_stopping(stopping, verbose=False))
    booster = lgb.train(
        params, train, num_boost_round=rounds, valid_sets=[valid], valid_names=["valid"], callbacks=callbacks
    )
    # Keep the best round's trees only: the saved model and the one in memory are the same.
    return LightGBMScorer(lgb.Booster(model_str=booster.model_to_string()))


Fitter = Callable[[Split, TrainConfig, Report | None], Scorer]
FITTERS: dict[str, Fitter] = {"logistic": fit_logistic, "xgboost": fit_xgboost, "lightgbm": fit_lightgbm}


def train(data: Split, config: TrainConfig, data_fingerprint: str, data_source: str) -> TrainedModel:
    """Fit, pick the cost-minimising threshold on validation, measure on the holdout."""
    logger.info("training %s on %d rows (%d fraud)", config.kind, len(data.y_train), data.y_train.sum())
    scorer = FITTERS[config.kind](data, config, None)
    threshold = choose_threshold(
        data.y_valid,
        scorer.predict_proba(data.x_valid),
        config.cost_missed_fraud,
        config.cost_false_alarm,
    )
    holdout_scores = scorer.predict_proba(data.x_holdout)
    metrics = score_metrics(data.y_holdout, holdout_scores, threshold)
    logger.info(
        "  %s holdout ROC-AUC %.4f  PR-AUC %.4f  threshold %.4f  precision %.3f  recall %.3f",
        config.kind,
        metrics["roc_auc"],
        metrics["pr_auc"],
        threshold,
        metrics["precision"],
        metrics["recall"],
    )
    rng = np.random.default_rng(config.seed)
    take = rng.choice(len(data.x_train), size=min(REFERENCE_ROWS, len(data.x_train)), replace=False)
    card = ModelCard(
        kind=config.kind,
        threshold=threshold,
        metrics=metrics,
        data_fingerprint=data_fingerprint,
        data_source=data_source,
        trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
        schema=data.schema,
        params={
            **config.params(),
            "cost_missed_fraud": config.cost_missed_fraud,
            "cost_false_alarm": config.cost_false_alarm,
        },
    )
    return TrainedModel(scorer, card, data.x_train[np.sort(take)], holdout_scores)
