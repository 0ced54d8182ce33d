"""`fraud serve`: run the KServe predictor locally on one model."""

import typer

from cli.common import settings
from fraudcore.names import Role


def serve(
    ctx: typer.Context,
    model_uri: str | None = typer.Option(
        None,
        "--model-uri",
        help="models:/<name>/<version>, models:/<name>@<alias> or a bundle path (default: FRAUD_MODEL_URI).",
    ),
    port: int = typer.Option(8080, "--port", "-p", help="HTTP port (v2 and v1 REST, /metrics)."),
    host: str = typer.Option(
        "127.0.0.1", "--host", help="Address to listen on; 0.0.0.0 for all interfaces (as pods do)."
    ),
    role: Role | None = typer.Option(None, "--role", help="Role reported in headers and metrics."),
    name: str | None = typer.Option(
        None, "--name", help="Model name in the URLs (default: the registered model's name)."
    ),
) -> None:
    """Serve a model with the KServe predictor until Ctrl-C: POST /v2/models/NAME/infer."""
    config = settings(ctx)
    try:
        from model_server.server import ServerOptions
        from model_server.server import serve as run
    except ImportError as e:
        raise typer.BadParameter(f"the predictor needs the server extra (uv sync --extra server): {e}") from e
    updates = {"model_uri": model_uri, "model_role": role}
    served = config.model_copy(update={k: v for k, v in updates.items() if v is not None})
    run(served, ServerOptions(model_name=name or config.registered_model, host=host, http_port=port))
