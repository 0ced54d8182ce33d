"""The `fraud` command line: one Typer app, one module per command group."""

import typer

from cli import canary, data, drift, labels, models, retrain, serve, traffic, train
from cli.common import run
from fraudcore.logging import configure_logging
from fraudcore.settings import Settings

app = typer.Typer(
    name="fraud",
    help="Train, register, serve and watch transaction-fraud models (MLflow + KServe).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    ctx: typer.Context,
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show debug logging."),
    json_logs: bool = typer.Option(False, "--json-logs", help="Log JSON lines (for jobs)."),
) -> None:
    """Settings come from FRAUD_* variables and MLFLOW_TRACKING_URI (default: a store in .fraud/)."""
    configure_logging("DEBUG" if verbose else "INFO", json_output=json_logs)
    ctx.obj = Settings()


app.add_typer(data.app, name="data")
app.add_typer(models.app, name="models")
app.add_typer(canary.app, name="canary")
app.command(name="train")(train.train)
app.command(name="drift")(drift.drift)
app.add_typer(labels.app, name="labels")
app.add_typer(traffic.app, name="traffic")
app.command(name="retrain")(retrain.retrain)
app.command(name="serve")(serve.serve)


def main() -> None:
    """Console-script entry `fraud`."""
    run(app)
