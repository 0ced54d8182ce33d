"""`fraud models …`: look at and move registered versions."""

import typer
from rich.table import Table

from cli.common import console, settings
from fraudcore.registry import Registry
from training.pipeline import promote

app = typer.Typer(help="List registered versions and promote one to champion.", no_args_is_help=True)


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Show every version with its aliases, key holdout metrics and gate verdict."""
    config = settings(ctx)
    rows = Registry(config).list_versions()
    table = Table(title=f"{config.registered_model} ({config.resolved_tracking_uri})")
    for column in ("version", "aliases", "kind", "ROC-AUC", "PR-AUC", "threshold", "gate", "created"):
        table.add_column(column)
    for row in rows:
        gate = row.status if row.status != "rejected" else f"[red]rejected[/]: {row.reason}"
        table.add_row(
            row.version,
            ", ".join(f"@{a}" for a in row.aliases),
            row.kind,
            row.roc_auc,
            row.pr_auc,
            row.threshold,
            gate,
            f"{row.created:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command("promote")
def promote_command(
    ctx: typer.Context,
    version: str = typer.Argument(..., help="Version number, or an alias such as @challenger."),
    force: bool = typer.Option(False, "--force", help="Promote even if the gate rejects it."),
) -> None:
    """Make VERSION the champion after the validation gate compares it with the current one."""
    config = settings(ctx)
    promoted, result = promote(Registry(config), version, force=force)
    verdict = "already champion" if result is None else result.summary()
    console.print(f"{config.registered_model} version {promoted} → @champion (gate: {verdict})")
