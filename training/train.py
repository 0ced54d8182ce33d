"""Fit a model on a split, choose its threshold by cost, and measure it on the holdout."""

import logging
import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import xgboost as xgb
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import StandardScaler

from fraudcore.bundle import LogisticScorer, ModelCard, ModelKind, Scorer, XGBoostScorer, one_hot
from fraudcore.settings import Settings
from training.data import Split
from training.evaluate import choose_threshold, score_metrics

logger = logging.getLogger(__name__)

REFERENCE_ROWS = 5_000


@dataclass(frozen=True)
class TrainConfig:
    """Hyper-parameters and decision costs of one training run (defaults: `from_settings`)."""

    kind: ModelKind
    rounds: int
    max_depth: int
    learning_rate: float
    cost_missed_fraud: float
    cost_false_alarm: float
    seed: int

    @classmethod
    def from_settings(cls, settings: Settings, kind: ModelKind, **overrides: Any) -> "TrainConfig":
        """The configured hyper-parameters, costs and seed; `overrides` that are not None win."""
        values = {
            "rounds": settings.xgboost_rounds,
            "max_depth": settings.xgboost_max_depth,
            "learning_rate": settings.xgboost_learning_rate,
            "cost_missed_fraud": settings.cost_missed_fraud,
            "cost_false_alarm": settings.cost_false_alarm,
            "seed": settings.seed,
        }
        values |= {key: value for key, value in overrides.items() if value is not None}
        return cls(kind=kind, **values)

    def params(self) -> dict[str, str | int | float]:
        if self.kind == "logistic":
            return {"kind": self.kind, "class_weight": "balanced", "seed": self.seed}
        return {
            "kind": self.kind,
            "rounds": self.rounds,
            "max_depth": self.max_depth,
            "learning_rate": self.learning_rate,
            "seed": self.seed,
        }


@dataclass
class TrainedModel:
    """A fitted scorer with its card and the holdout scores the card's metrics come from."""

    scorer: Scorer
    card: ModelCard
    reference: np.ndarray
    holdout_scores: np.ndarray = field(repr=False)


def fit_logistic(data: Split, config: TrainConfig) -> LogisticScorer:
    categorical = data.schema.categorical
    x = one_hot(data.x_train, categorical)
    x = np.where(np.isnan(x), np.nanmean(x, axis=0), x)  # missing values at the mean: no effect
    scaler = StandardScaler().fit(x)
    model = LogisticRegression(class_weight="balanced", max_iter=2000, random_state=config.seed)
    model.fit(scaler.transform(x), data.y_train)
    return LogisticScorer(
        scaler.mean_, scaler.scale_, model.coef_[0], float(model.intercept_[0]), categorical
    )


class _Progress(xgb.callback.TrainingCallback):
    def __init__(self, rounds: int, every: int = 50) -> None:
        self.rounds, self.every = rounds, every

    def after_iteration(self, model: xgb.Booster, epoch: int, evals_log: dict) -> bool:
        if (epoch + 1) % self.every == 0 or epoch + 1 == self.rounds:
            pr_auc = evals_log["valid"]["aucpr"][-1]
            logger.info("  xgboost round %d/%d  validation PR-AUC %.4f", epoch + 1, self.rounds, pr_auc)
        return False


def fit_xgboost(data: Split, config: TrainConfig) -> XGBoostScorer:
    negatives, positives = np.bincount(data.y_train, minlength=2)
    params = {
        "objective": "binary:logistic",
        "eval_metric": "aucpr",
        "max_depth": config.max_depth,
        "eta": config.learning_rate,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "min_child_weight": 2,
        # Imbalance: up-weight fraud, but only by the square root to keep scores usable.
        "scale_pos_weight": float(np.sqrt(negatives / max(positives, 1))),
        "tree_method": "hist",
        "nthread": os.cpu_count() or 1,
        "seed": config.seed,
    }
    # Categorical features split natively on their codes (NaN, an unknown category, is "missing").
    types = ["c" if f.kind == "categorical" else "q" for f in data.schema.features]
    train = xgb.DMatrix(data.x_train, label=data.y_train, feature_types=types, enable_categorical=True)
    valid = xgb.DMatrix(data.x_valid, label=data.y_valid, feature_types=types, enable_categorical=True)
    early_stopping = max(20, config.rounds // 8) if config.rounds >= 40 else None
    booster = xgb.train(
        params,
        train,
        num_boost_round=config.rounds,
        evals=[(valid, "valid")],
        early_stopping_rounds=early_stopping,
        verbose_eval=False,
        callbacks=[_Progress(config.rounds)],
    )
    if early_stopping and booster.best_iteration + 1 < booster.num_boosted_rounds():
        booster = booster[: booster.best_iteration + 1]
    return XGBoostScorer(booster)


FITTERS = {"logistic": fit_logistic, "xgboost": fit_xgboost}


def train(data: Split, config: TrainConfig, data_fingerprint: str, data_source: str) -> TrainedModel:
    """Fit, pick the cost-minimising threshold on validation, measure on the holdout."""
    logger.info("training %s on %d rows (%d fraud)", config.kind, len(data.y_train), data.y_train.sum())
    scorer = FITTERS[config.kind](data, config)
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
