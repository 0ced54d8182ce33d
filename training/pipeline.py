"""Whole lifecycle steps: train → register → gate → alias, and promotion of an existing version."""

import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudcore.bundle import Bundle, Scorer, save_bundle
from fraudcore.errors import NotFoundError
from fraudcore.names import CHALLENGER, CHAMPION
from fraudcore.pyfunc import BUNDLE_ARTIFACT
from fraudcore.registry import Registry, RunLog
from fraudcore.schema import Schema
from training.data import Split, fingerprint, load_source, load_training_data, split, validate
from training.export import export_onnx
from training.gate import GatePolicy, GateRejectedError, GateResult, gate_verdict, top_reason_change
from training.train import TrainConfig, TrainedModel, train
from training.tune import Budget, search

logger = logging.getLogger(__name__)

TRAIN_JOB = "train"
"""The `fraud.job` tag of a training run (its trials are nested runs under it)."""


@dataclass(frozen=True)
class Registration:
    """What a training run produced and where the aliases ended up."""

    version: str
    alias: str | None
    result: GateResult


def train_and_register(
    registry: Registry,
    config: TrainConfig,
    data_source: str,
    label: str | None = None,
    declared: Schema | None = None,
    budget: Budget | None = None,
) -> Registration:
    """Train on a data source, register the version, gate it, and set `champion` or `challenger`.

    The schema is inferred from the data (`label` and `declared` as `load_training_data` takes them).
    With a `budget`, a hyper-parameter search runs first (each trial a nested run of the training
    run) and the best trial's hyper-parameters are trained, registered and gated.
    The first version that passes the gate becomes champion; later ones become challenger.
    A rejected version stays registered with the reasons and GateRejectedError is raised.
    """
    loaded = load_training_data(data_source, registry, label, declared)
    data = split(loaded.frame, loaded.schema)
    with registry.job_run(TRAIN_JOB, run_name=f"train-{config.kind}") as run:
        if budget is not None:
            config = _tuned(data, config, budget, run)
        model = train(data, config, fingerprint(loaded.frame), data_source)
        version = register(registry, model, run.run_id)
    champion = registry.alias_version(CHAMPION)
    champion_bundle = registry.load_version(champion).bundle if champion else None
    result = _judge(data, model.scorer, model.holdout_scores, model.card.threshold, champion_bundle, registry)
    _record(registry, version, result)
    if not result.passed:
        raise GateRejectedError(f"version {version} rejected: {result.summary()}")
    alias = CHALLENGER if champion else CHAMPION
    if champion:
        registry.set_challenger(version)
    else:
        registry.set_champion(version)
    logger.info("version %s passed the gate and is now @%s", version, alias)
    return Registration(version, alias, result)


def _tuned(data: Split, config: TrainConfig, budget: Budget, run: RunLog) -> TrainConfig:
    """The best configuration a search finds; what it cost is logged on the training run."""
    found = search(data, config, budget, run)
    run.log_metrics({
        "tune_trials": found.trials,
        "tune_pruned_trials": found.pruned,
        "tune_best_trial": found.best_trial,
        "tune_best_valid_pr_auc": found.best_pr_auc,
        "tune_seconds": found.seconds,
    })  # fmt: skip
    logger.info(
        "search done: %d trials (%d pruned) in %.0f s; best trial %d, validation PR-AUC %.4f",
        found.trials, found.pruned, found.seconds, found.best_trial, found.best_pr_auc,
    )  # fmt: skip
    return found.config


def register(registry: Registry, model: TrainedModel, run_id: str) -> str:
    """Hand a trained model to the registry as plain values: its bundle, params, metrics and tags,
    logged to the open run `run_id`."""
    card = model.card
    schema = card.schema
    example = pd.DataFrame(schema.raw(model.reference[:3]), columns=list(schema.names))
    with tempfile.TemporaryDirectory() as tmp:
        bundle_dir = Path(tmp) / BUNDLE_ARTIFACT
        save_bundle(bundle_dir, model.scorer, card, model.reference, export_onnx(model.scorer, len(schema)))
        return registry.register_bundle(
            bundle_dir,
            run_id=run_id,
            params={**card.params, "data_source": card.data_source},
            metrics={**{f"holdout_{k}": v for k, v in card.metrics.items()}, "threshold": card.threshold},
            run_tags={"data_fingerprint": card.data_fingerprint, "model_kind": card.kind},
            version_tags={
                "kind": card.kind,
                "threshold": f"{card.threshold:.6g}",
                "roc_auc": f"{card.metrics['roc_auc']:.4f}",
                "pr_auc": f"{card.metrics['pr_auc']:.4f}",
                "data_fingerprint": card.data_fingerprint,
                "inputs": schema.summary(),
            },
            example=example,
            example_scores=model.scorer.predict_proba(model.reference[:3]),
            metadata={"threshold": card.threshold, "kind": card.kind},
        )


def promote(registry: Registry, version: str, force: bool = False) -> tuple[str, GateResult | None]:
    """Make a version (a number, or `@alias`) the champion after gating it against the current one.

    Returns the version promoted and the gate's verdict (None when it already was the champion).
    """
    if version.startswith("@"):
        alias = version[1:]
        version = registry.alias_version(alias) or ""
        if not version:
            raise NotFoundError(f"{registry.name} has no @{alias} alias")
    registry.require_version(version)
    champion = registry.alias_version(CHAMPION)
    result = None
    if champion != version:
        candidate = registry.load_version(version).bundle
        data = holdout_of(candidate, registry)
        current = registry.load_version(champion).bundle if champion else None
        scores = candidate.scorer.predict_proba(data.x_holdout)
        result = _judge(data, candidate.scorer, scores, candidate.card.threshold, current, registry)
        _record(registry, version, result)
        if not result.passed and not force:
            raise GateRejectedError(f"version {version} not promoted: {result.summary()}")
    registry.set_champion(version)
    return version, result


def holdout_of(bundle: Bundle, registry: Registry) -> Split:
    """A version's own training data split again, encoded with its schema."""
    schema = bundle.card.schema
    frame = load_source(bundle.card.data_source, registry, schema)
    return split(validate(frame, schema, bundle.card.data_source), schema)


def _record(registry: Registry, version: str, result: GateResult) -> None:
    change = None if result.reason_change is None else str(result.reason_change)
    registry.record_verdict(version, result.passed, result.summary(), change)
    if change is not None:
        logger.info("version %s: top reason differs from the champion's on %s holdout rows", version, change)


def _judge(
    data: Split,
    scorer: Scorer,
    scores: np.ndarray,
    threshold: float,
    champion: Bundle | None,
    registry: Registry,
) -> GateResult:
    policy = GatePolicy.from_settings(registry.settings)
    if champion is None:
        return gate_verdict(data.y_holdout, scores, threshold, policy)
    # Clients send the champion's inputs, and the traffic split sends them to both models.
    differences = champion.card.schema.differences(data.schema)
    champion_scores = change = None
    if not differences:
        champion_x = champion.card.schema.encode(data.holdout_frame)
        champion_scores = champion.scorer.predict_proba(champion_x)
        if champion.card.schema.names == data.schema.names:  # reasons name the same features
            flagged = scores >= threshold
            change = top_reason_change(
                scorer, data.x_holdout[flagged], champion.scorer, champion_x[flagged], data.schema
            )
    return gate_verdict(
        data.y_holdout,
        scores,
        threshold,
        policy,
        champion_scores,
        champion.card.threshold,
        differences,
        change,
    )
