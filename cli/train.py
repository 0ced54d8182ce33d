"""`fraud train`: train, register, gate, and set an alias."""

from pathlib import Path
from typing import Literal

import typer

from cli.common import console, settings
from fraudcore.registry import Registry
from training.data import synthetic_source
from training.pipeline import train_and_register
from training.synthetic import KAGGLE_ROWS
from training.train import TrainConfig

ModelKind = Literal["xgboost", "logistic"]


def train(
    ctx: typer.Context,
    model: ModelKind = typer.Option("xgboost", "--model", "-m", help="Model family."),
    data: Path | None = typer.Option(
        None, "--data", "-d", help="CSV in the credit-card fraud schema (default: synthetic data)."
    ),
    rows: int = typer.Option(KAGGLE_ROWS, min=1000, help="Rows of synthetic data when no --data."),
    rounds: int = typer.Option(400, min=1, help="XGBoost boosting rounds (early stopping applies)."),
    max_depth: int = typer.Option(4, min=1, help="XGBoost tree depth."),
    learning_rate: float = typer.Option(0.08, min=1e-4, max=1.0, help="XGBoost learning rate."),
) -> None:
    """Train a model and register it as a new version of the registered model.

    The first version that passes the validation gate becomes @champion, later ones @challenger.
    A version that fails the gate stays registered with the reason, and the command exits 3.
    """
    config_settings = settings(ctx)
    config = TrainConfig(
        kind=model,
        rounds=rounds,
        max_depth=max_depth,
        learning_rate=learning_rate,
        cost_missed_fraud=config_settings.cost_missed_fraud,
        cost_false_alarm=config_settings.cost_false_alarm,
        seed=config_settings.seed,
    )
    source = str(data) if data else synthetic_source(rows, config_settings.seed)
    outcome = train_and_register(Registry(config_settings), config, source)
    metrics = outcome.result.candidate
    console.print(
        f"[bold]{config_settings.registered_model} version {outcome.version}[/] → @{outcome.alias}  "
        f"ROC-AUC {metrics['roc_auc']:.4f}  PR-AUC {metrics['pr_auc']:.4f}"
    )
