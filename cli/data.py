"""`fraud data …`: make or check transaction data."""

from pathlib import Path

import typer

from cli.common import console, settings
from training.data import load_csv
from training.synthetic import KAGGLE_ROWS, SCENARIOS, generate

app = typer.Typer(help="Generate or check data in the credit-card fraud schema.", no_args_is_help=True)


@app.command("generate")
def generate_command(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None, "--out", "-o", help="CSV to write \\[default: FRAUD_HOME/data/transactions.csv]."
    ),
    rows: int = typer.Option(KAGGLE_ROWS, min=100, help="Number of transactions."),
    seed: int | None = typer.Option(
        None, help="Random seed; the same seed gives the same data \\[default: FRAUD_SEED]."
    ),
    scenario: str | None = typer.Option(None, help=f"Drift scenario to apply: {', '.join(SCENARIOS)}."),
) -> None:
    """Write seeded synthetic transactions (Time, V1..V28, Amount, Class) to a CSV file."""
    if scenario is not None and scenario not in SCENARIOS:
        raise typer.BadParameter(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    config = settings(ctx)
    out = out or config.data_dir / "transactions.csv"
    with console.status(f"generating {rows:,} transactions"):
        frame = generate(rows=rows, seed=config.seed if seed is None else seed, scenario=scenario)
        out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(out, index=False, float_format="%.6g")
    console.print(f"wrote {len(frame):,} rows ({int(frame['Class'].sum()):,} fraud) to {out}")


@app.command("check")
def check_command(path: Path = typer.Argument(..., help="CSV file to check.")) -> None:
    """Check that a CSV file matches the schema; exits non-zero naming the first problem."""
    frame = load_csv(path)
    console.print(f"{path}: {len(frame):,} rows, {int(frame['Class'].sum()):,} fraud — schema ok")
