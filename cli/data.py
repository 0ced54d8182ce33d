"""`fraud data …`: make or check transaction data."""

from pathlib import Path

import typer

from cli.common import console, schema_table, settings
from training.data import DATASETS, DEFAULT_DATASET, load_schema_file, load_training_data
from training.synthetic import KAGGLE_ROWS

app = typer.Typer(
    help="Generate transaction data, or check a file and show its schema.", no_args_is_help=True
)


@app.command("generate")
def generate_command(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="CSV to write \\[default: FRAUD_HOME/data/transactions.csv]."
    ),
    dataset: str = typer.Option(DEFAULT_DATASET, help=f"Built-in data set: {', '.join(DATASETS)}."),
    rows: int = typer.Option(KAGGLE_ROWS, min=100, help="Number of transactions."),
    seed: int | None = typer.Option(
        None, help="Random seed; the same seed gives the same data \\[default: FRAUD_SEED]."
    ),
    scenario: str | None = typer.Option(None, help="Drift scenario of the data set to apply."),
) -> None:
    """Write seeded synthetic transactions of a built-in data set to a CSV file."""
    spec = DATASETS.get(dataset)
    if spec is None:
        raise typer.BadParameter(f"unknown data set {dataset!r}; known: {', '.join(DATASETS)}")
    if scenario is not None and scenario not in spec.scenarios:
        raise typer.BadParameter(f"unknown scenario {scenario!r}; known: {', '.join(spec.scenarios)}")
    config = settings(ctx)
    out = out or config.data_dir / "transactions.csv"
    with console.status(f"generating {rows:,} transactions"):
        frame = spec.generate(rows=rows, seed=config.seed if seed is None else seed, scenario=scenario)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, float_format="%.6g")
    console.print(f"wrote {len(frame):,} rows ({int(frame[spec.label].sum()):,} fraud) to {out}")


@app.command("check")
def check_command(
    path: Path = typer.Argument(..., help="CSV file to check."),
    label: str | None = typer.Option(None, "--label", help="Label column \\[default: Class]."),
    schema: Path | None = typer.Option(None, "--schema", help="Schema file, as `fraud train` takes it."),
) -> None:
    """Infer a CSV file's schema and check every row against it, as `fraud train` would; exits
    non-zero naming the first problem."""
    declared = load_schema_file(schema) if schema else None
    loaded = load_training_data(str(path), None, label, declared)
    frame, found = loaded.frame, loaded.schema
    console.print(schema_table(found))
    frauds = int(frame[found.label].sum())
    console.print(f"{path}: {len(frame):,} rows, {frauds:,} fraud (label {found.label}) — schema ok")
