"""What every command shares: the console, the settings built by the root callback, and the one
place where an error becomes a line on stderr and an exit code."""

import sys

import typer
from rich.console import Console
from rich.table import Table

from fraudcore.errors import ExitCode, FraudError
from fraudcore.schema import Schema
from fraudcore.settings import Settings

# Tables stay readable when piped: no wrapping at 80 columns outside a terminal.
console = Console(width=None if sys.stdout.isatty() else 160)


def settings(ctx: typer.Context) -> Settings:
    """The settings the root callback built for this invocation."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = Settings()
    return root.obj


def error_line(error: FraudError) -> int:
    """Print the error as one readable line on stderr; returns the exit code it carries."""
    prefix = "rejected" if error.exit_code == ExitCode.REJECTED else "error"
    typer.secho(f"{prefix}: {error}", fg="red", err=True)
    return int(error.exit_code)


def run(app: typer.Typer, prog_name: str | None = None) -> None:
    """Console-script entry: a FraudError becomes one readable line and its exit code."""
    try:
        app(prog_name=prog_name)
    except FraudError as e:
        sys.exit(error_line(e))


def schema_table(schema: Schema) -> Table:
    """A model's inputs: name, kind, categories and whether they may be missing."""
    table = Table(title=f"features (label {schema.label})")
    for column in ("feature", "kind", "categories", "optional"):
        table.add_column(column)
    for f in schema.features:
        shown = ", ".join(f.categories[:8]) + (f" … ({len(f.categories)})" if len(f.categories) > 8 else "")
        table.add_row(f.name, f.kind, shown, "yes" if f.optional else "")
    return table
