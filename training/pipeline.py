"""Whole lifecycle steps: train → register → gate → alias, and promotion of an existing version."""

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fraudcore.bundle import Bundle
from fraudcore.errors import NotFoundError
from fraudcore.modelstore import connect, load_model
from fraudcore.settings import Settings
from training import registry
from training.data import Split, fingerprint, load_source, split
from training.gate import GatePolicy, GateRejectedError, GateResult, check
from training.train import TrainConfig, train

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """What a training run produced and where the aliases ended up."""

    version: str
    alias: str | None
    result: GateResult


def train_and_register(
    settings: Settings, config: TrainConfig, data_source: str, frame: pd.DataFrame | None = None
) -> Outcome:
    """Train on a data source, register the version, gate it, and set `champion` or `challenger`.

    The first version that passes the gate becomes champion; later ones become challenger.
    A rejected version stays registered with the reasons and GateRejectedError is raised.
    """
    frame = load_source(data_source) if frame is None else frame
    data = split(frame)
    model = train(data, config, fingerprint(frame), data_source)
    client = connect(settings)
    name = settings.registered_model
    version = registry.log_and_register(client, settings, model, run_name=f"train-{config.kind}")
    champion = registry.alias_version(client, name, registry.CHAMPION)
    champion_bundle = load_model(f"models:/{name}/{champion}", settings).bundle if champion else None
    result = _judge(data, model.holdout_scores, model.card.threshold, champion_bundle, settings)
    registry.record_verdict(client, name, version.version, result)
    if not result.passed:
        raise GateRejectedError(f"version {version.version} rejected: {result.summary()}")
    alias = registry.CHALLENGER if champion else registry.CHAMPION
    if champion:
        registry.set_challenger(client, name, version.version)
    else:
        registry.set_champion(client, name, version.version)
    logger.info("version %s passed the gate and is now @%s", version.version, alias)
    return Outcome(str(version.version), alias, result)


def promote(settings: Settings, version: str, force: bool = False) -> tuple[str, GateResult | None]:
    """Make a version (a number, or `@alias`) the champion after gating it against the current one.

    Returns the version promoted and the gate's verdict (None when it already was the champion).
    """
    client = connect(settings)
    name = settings.registered_model
    if version.startswith("@"):
        alias = version[1:]
        version = registry.alias_version(client, name, alias) or ""
        if not version:
            raise NotFoundError(f"{name} has no @{alias} alias")
    registry.require_version(client, name, version)
    champion = registry.alias_version(client, name, registry.CHAMPION)
    result = None
    if champion != version:
        candidate = load_model(f"models:/{name}/{version}", settings).bundle
        data = split(load_source(candidate.card.data_source))
        current = load_model(f"models:/{name}/{champion}", settings).bundle if champion else None
        scores = candidate.scorer.predict_proba(data.x_holdout)
        result = _judge(data, scores, candidate.card.threshold, current, settings)
        registry.record_verdict(client, name, version, result)
        if not result.passed and not force:
            raise GateRejectedError(f"version {version} not promoted: {result.summary()}")
    registry.set_champion(client, name, version)
    return version, result


def _judge(
    data: Split, scores: np.ndarray, threshold: float, champion: Bundle | None, settings: Settings
) -> GateResult:
    champion_scores = champion.scorer.predict_proba(data.x_holdout) if champion else None
    return check(
        data.y_holdout,
        scores,
        threshold,
        GatePolicy.from_settings(settings),
        champion_scores,
        champion.card.threshold if champion else 0.5,
    )
