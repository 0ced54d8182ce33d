"""`fraud models …`: look at and move registered versions."""

import typer
from rich.table import Table

from cli.common import console, schema_table, settings
from fraudcore.names import alias_uri, version_uri
from fraudcore.registry import Registry
from training.pipeline import promote

app = typer.Typer(help="List registered versions and promote one to champion.", no_args_is_help=True)


@app.command("list")
def list_command(ctx: typer.Context) -> None:
    """Show every version with its aliases, key holdout metrics and gate verdict."""
    config = settings(ctx)
    rows = Registry(config).list_versions()
    table = Table(title=f"{config.registered_model} ({config.resolved_tracking_uri})")
    columns = ("version", "aliases", "kind", "ROC-AUC", "PR-AUC", "threshold", "inputs", "gate",
               "top reason changed", "created")  # fmt: skip
    for column in columns:
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
            row.inputs,
            gate,
            row.top_reason_change,
            f"{row.created:%Y-%m-%d %H:%M}",
        )
    console.print(table)


@app.command("show")
def show_command(
    ctx: typer.Context,
    version: str = typer.Argument(..., help="Version number, or an alias such as @champion."),
) -> None:
    """Show one version's model card: kind, threshold, holdout metrics, data source and its inputs."""
    registry = Registry(settings(ctx))
    uri = (
        alias_uri(registry.name, version[1:])
        if version.startswith("@")
        else version_uri(registry.name, version)
    )
    loaded = registry.load(uri)
    card = loaded.bundle.card
    console.print(
        f"[bold]{loaded.name} version {loaded.version}[/]: {card.kind}, threshold {card.threshold:.4g}"
    )
    console.print("holdout " + "  ".join(f"{k} {v:.4f}" for k, v in card.metrics.items()))
    console.print(f"trained {card.trained_at} on {card.data_source}")
    row = next((r for r in registry.list_versions() if r.version == loaded.version), None)
    if row is not None and row.status != "-":
        gate = row.status if row.status != "rejected" else f"rejected: {row.reason}"
        changed = row.top_reason_change
        stability = "" if changed == "-" else f"; top reason changed from the champion's on {changed}"
        console.print(f"gate {gate}{stability}", markup=False)
    console.print(schema_table(card.schema))


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
    if result is not None and result.reason_change is not None:
        verdict += f"; top reason changed on {result.reason_change}"
    console.print(f"{config.registered_model} version {promoted} → @champion (gate: {verdict})")
