"""`fraud labels …`: attach ground truth (chargebacks, confirmed fraud) to logged transactions."""

from pathlib import Path

import typer

from cli.common import console, settings
from fraudcore.errors import InvalidInputError
from jobs.feedback.labels import ingest

app = typer.Typer(help="Attach ground truth to transactions in the audit log.", no_args_is_help=True)


@app.command("ingest")
def ingest_command(
    ctx: typer.Context,
    path: Path = typer.Argument(..., help="CSV with columns request_id,label[,row]."),
) -> None:
    """Label logged transactions by request id (label 1 = fraud, 0 = legitimate).

    `row` is the 0-based position of the transaction in its request; without it the label applies
    to every row of the request. Exits 1 when the file is malformed or no label matches.
    """
    result = ingest(settings(ctx), path)
    if result.labelled_rows == 0:
        raise InvalidInputError(f"none of the {result.lines:,} labels in {path} matches a logged transaction")
    console.print(
        f"labelled {result.labelled_rows:,} logged transaction(s) from {result.lines:,} label line(s)"
    )
    if result.unmatched_lines:
        console.print(f"[yellow]{result.unmatched_lines:,} label line(s) matched no logged transaction[/]")
