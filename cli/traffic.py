"""`fraud traffic send`: replay a transactions CSV against a running predictor."""

import time
from pathlib import Path

import typer

from cli.common import console, settings
from fraudcore.names import CHAMPION, alias_uri
from fraudcore.registry import Registry
from jobs.drift.window import from_csv
from jobs.feedback.traffic import send

app = typer.Typer(help="Send transactions to a running predictor, as a client would.", no_args_is_help=True)


@app.command("send")
def send_command(
    ctx: typer.Context,
    data: Path = typer.Argument(..., help="CSV with the champion's feature columns (label optional)."),
    url: str = typer.Option("http://127.0.0.1:8080", "--url", help="Predictor (or gateway) base URL."),
    model: str | None = typer.Option(
        None, "--model", help="Model name in the URL \\[default: registered model]."
    ),
    batch: int = typer.Option(100, "--batch", min=1, help="Transactions per request."),
    labels_out: Path | None = typer.Option(
        None, "--labels-out", help="Write request_id,row,label for `fraud labels ingest` (needs the label)."
    ),
    prefix: str | None = typer.Option(
        None, "--request-prefix", help="Request id prefix \\[default: file name + time]."
    ),
) -> None:
    """Score every transaction of DATA over the v2 protocol, one request per batch with its own request id.

    The columns sent, and the label column, are those of the registered champion's schema.
    """
    config = settings(ctx)
    registry = Registry(config)
    window = from_csv(data, registry.load(alias_uri(registry.name, CHAMPION)).bundle.card.schema)
    token = config.api_token.get_secret_value() if config.api_token else None
    with console.status(f"scoring {len(window):,} transactions at {url}"):
        sent, labels = send(
            window,
            url,
            model or config.registered_model,
            batch,
            prefix or f"{data.stem}-{int(time.time())}",
            token,
        )
    versions = ", ".join(f"version {v}: {n}" for v, n in sorted(sent.versions.items()))
    console.print(
        f"scored {sent.rows:,} transactions in {sent.requests:,} requests, {sent.flagged:,} flagged as fraud "
        f"({versions})"
    )
    if labels_out is not None:
        labels_out.parent.mkdir(parents=True, exist_ok=True)
        labels.to_csv(labels_out, index=False)
        console.print(f"wrote {len(labels):,} labels to {labels_out}")
