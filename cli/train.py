"""`fraud train`: train, register, gate, and set an alias."""

from pathlib import Path

import typer

from cli.common import console, settings
from fraudcore.bundle import ModelKind
from fraudcore.registry import Registry
from training.data import DATASETS, DEFAULT_DATASET, load_schema_file, synthetic_source
from training.pipeline import train_and_register
from training.synthetic import KAGGLE_ROWS
from training.train import TrainConfig
from training.tune import Budget


def train(
    ctx: typer.Context,
    model: ModelKind = typer.Option("xgboost", "--model", "-m", help="Model family."),
    data: Path | None = typer.Option(
        None, "--data", "-d", help="CSV of labelled transactions, any columns (default: synthetic data)."
    ),
    label: str | None = typer.Option(
        None, "--label", help="Label column of --data: 1/true = fraud \\[default: Class]."
    ),
    schema: Path | None = typer.Option(
        None,
        "--schema",
        help="YAML/JSON declaring some features' kind (numeric, categorical, boolean), allowed "
        "categories or optional: true; other columns are inferred.",
    ),
    dataset: str = typer.Option(
        DEFAULT_DATASET, help=f"Built-in synthetic data set when no --data: {', '.join(DATASETS)}."
    ),
    rows: int = typer.Option(KAGGLE_ROWS, min=1000, help="Rows of synthetic data when no --data."),
    rounds: int | None = typer.Option(
        None,
        min=1,
        help="XGBoost or LightGBM boosting rounds, early stopping applies "
        "\\[default: FRAUD_XGBOOST_ROUNDS, FRAUD_LIGHTGBM_ROUNDS].",
    ),
    max_depth: int | None = typer.Option(
        None, min=1, help="XGBoost tree depth \\[default: FRAUD_XGBOOST_MAX_DEPTH]."
    ),
    num_leaves: int | None = typer.Option(
        None, min=2, help="LightGBM leaves per tree \\[default: FRAUD_LIGHTGBM_NUM_LEAVES]."
    ),
    learning_rate: float | None = typer.Option(
        None,
        min=1e-4,
        max=1.0,
        help="XGBoost or LightGBM learning rate "
        "\\[default: FRAUD_XGBOOST_LEARNING_RATE, FRAUD_LIGHTGBM_LEARNING_RATE].",
    ),
    tune: int | None = typer.Option(
        None,
        "--tune",
        metavar="TRIALS",
        help="Search hyper-parameters first: at most this many Optuna trials (seeded TPE, median "
        "pruning), each a nested MLflow run; the best is trained, registered and gated "
        "\\[default: no search].",
    ),
    tune_minutes: float | None = typer.Option(
        None,
        "--tune-minutes",
        metavar="MINUTES",
        help="Search hyper-parameters for at most this long (with --tune: whichever ends first).",
    ),
    if_missing: int | None = typer.Option(
        None,
        "--if-missing",
        metavar="VERSION",
        min=1,
        help="Train only when the registry has no version VERSION yet, else exit 0 saying so: "
        "first versions trained by a job that may run again (the chart's bootstrap).",
    ),
) -> None:
    """Train a model and register it as a new version of the registered model.

    Every column of the data except the label is a feature: numbers are numeric, text categorical,
    0/1 or true/false boolean (`fraud data check` shows what was inferred). The schema is stored
    with the version. The first version that passes the validation gate becomes @champion, later
    ones @challenger. A version that fails the gate stays registered with the reason, and the
    command exits 3. With --tune or --tune-minutes the hyper-parameters are searched for within that
    budget, maximising validation PR-AUC; the options above then only fix what is not searched.
    """
    if dataset not in DATASETS:
        raise typer.BadParameter(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    config = settings(ctx)
    if if_missing is not None and Registry(config).has_version(str(if_missing)):
        console.print(
            f"{config.registered_model} version {if_missing} is registered already: nothing to train"
        )
        return
    budget = Budget(tune, tune_minutes) if tune is not None or tune_minutes is not None else None
    train_config = TrainConfig.from_settings(
        config,
        model,
        rounds=rounds,
        max_depth=max_depth,
        num_leaves=num_leaves,
        learning_rate=learning_rate,
    )
    source = str(data) if data else synthetic_source(rows, config.seed, dataset=dataset)
    declared = load_schema_file(schema) if schema else None
    outcome = train_and_register(Registry(config), train_config, source, label, declared, budget)
    metrics = outcome.result.candidate
    console.print(
        f"[bold]{config.registered_model} version {outcome.version}[/] → @{outcome.alias}  "
        f"ROC-AUC {metrics['roc_auc']:.4f}  PR-AUC {metrics['pr_auc']:.4f}"
    )
