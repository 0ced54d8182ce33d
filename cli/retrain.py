"""`fraud retrain`: a new version from the champion's data plus recent labelled traffic, gated."""

from pathlib import Path

import typer

from cli.canary import DEFAULT_NAME, Name, Namespace, _canary
from cli.common import console, settings
from fraudcore.bundle import ModelKind
from fraudcore.registry import Registry
from jobs.retrain import retrain as retrain_version
from training.tune import Budget


def retrain(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", "-d", help="Labelled CSV (the champion's columns and label) instead of the audit log."
    ),
    only_on_drift: bool | None = typer.Option(
        None,
        "--only-on-drift/--always",
        help="Skip unless the last drift check found drift \\[default: FRAUD_RETRAIN_ONLY_ON_DRIFT].",
    ),
    canary_percent: int | None = typer.Option(
        None,
        "--canary-percent",
        min=0,
        max=100,
        help="Send this % of live traffic to a new challenger \\[default: FRAUD_RETRAIN_CANARY_PERCENT].",
    ),
    model: ModelKind | None = typer.Option(
        None, "--model", "-m", help="Model family of the new version \\[default: the champion's]."
    ),
    tune: int | None = typer.Option(
        None,
        "--tune",
        metavar="TRIALS",
        help="Search hyper-parameters first, in at most this many trials (as `fraud train --tune`) "
        "\\[default: the champion's hyper-parameters].",
    ),
    tune_minutes: float | None = typer.Option(
        None, "--tune-minutes", metavar="MINUTES", help="Search hyper-parameters for at most this long."
    ),
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
) -> None:
    """Retrain on the champion's training data plus labelled transactions of the last
    FRAUD_RETRAIN_WINDOW_DAYS, gate the new version against the champion and make it @challenger.

    The new version has the champion's model family and hyper-parameters unless --model or --tune
    say otherwise. Exits 3 when the gate rejects the new version (it stays registered with the reasons).
    """
    config = settings(ctx)
    budget = Budget(tune, tune_minutes) if tune is not None or tune_minutes is not None else None
    gated = retrain_version(
        Registry(config),
        data,
        only_on_drift=config.retrain_only_on_drift if only_on_drift is None else only_on_drift,
        kind=model,
        budget=budget,
    )
    if gated.registration is None:
        console.print(f"nothing to retrain: {gated.skipped}")
        return
    outcome, metrics = gated.registration, gated.registration.result.candidate
    console.print(
        f"[bold]{config.registered_model} version {outcome.version}[/] → @{outcome.alias}  "
        f"ROC-AUC {metrics['roc_auc']:.4f}  PR-AUC {metrics['pr_auc']:.4f}  "
        f"(trained with {gated.labelled_rows:,} labelled rows)"
    )
    if champion := outcome.result.champion:
        console.print(
            f"champion on the same holdout: ROC-AUC {champion['roc_auc']:.4f}  "
            f"PR-AUC {champion['pr_auc']:.4f}"
        )
    percent = config.retrain_canary_percent if canary_percent is None else canary_percent
    if percent is not None and outcome.alias == "challenger":
        done = _canary(namespace, name, None, None).set_weight(percent, int(outcome.version))
        console.print(f"canary: {done.state.challenger_weight}% of traffic to version {outcome.version}")
