"""`fraud canary …`: move live traffic between champion and challenger (also `kubectl fraud …`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from cli.common import console, error_line, run, settings
from fraudcore.errors import UnavailableError, UsageError
from fraudcore.names import ROLES, SHADOW
from fraudcore.registry import Registry
from jobs.canary import Canary, CanaryOutcome
from jobs.canary.metrics import live_numbers
from jobs.canary.state import CanaryState, parse_percent

app = typer.Typer(
    help="Champion/challenger canary on KServe: status, set PERCENT, shadow PERCENT, promote, rollback.",
    no_args_is_help=True,
)

Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Namespace of the release (default: the context's)."),
]
Name = Annotated[
    str,
    typer.Option(
        "--name",
        envvar="FRAUD_CANARY_NAME",
        help="Full name of the release's objects, as printed by `helm install`.",
    ),
]
Kubeconfig = Annotated[
    Path | None, typer.Option("--kubeconfig", envvar="KUBECONFIG", help="kubeconfig file.")
]
Context = Annotated[str | None, typer.Option("--context", help="kubeconfig context.")]
ChallengerVersion = Annotated[
    int | None,
    typer.Option("--challenger-version", min=1, help="Point the challenger at this version first."),
]
DEFAULT_NAME = "fraud-fraud-detection"
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def _canary(namespace: str | None, name: str, kubeconfig: Path | None, context: str | None) -> Canary:
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    try:
        if kubeconfig is None and SERVICE_ACCOUNT_NAMESPACE.exists():
            config.load_incluster_config()
            api = client.ApiClient()
            namespace = namespace or SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
        else:
            path = str(kubeconfig) if kubeconfig else None
            api = config.new_client_from_config(config_file=path, context=context)
            if namespace is None:
                _, active = config.list_kube_config_contexts(config_file=path)
                if context:
                    contexts, _ = config.list_kube_config_contexts(config_file=path)
                    active = next(c for c in contexts if c["name"] == context)
                namespace = active.get("context", {}).get("namespace") or "default"
    except (ConfigException, OSError, StopIteration) as e:
        raise UnavailableError(f"no usable Kubernetes configuration ({e})") from e
    return Canary(client.CustomObjectsApi(api), namespace, name)


def _registry(ctx: typer.Context, enabled: bool) -> Registry | None:
    config = settings(ctx)
    if not enabled:
        return None
    if not config.tracking_uri:
        console.print("[yellow]MLFLOW_TRACKING_URI not set: registry aliases left unchanged[/]")
        return None
    return Registry(config)


def _print_state(state: CanaryState, title: str) -> None:
    table = Table(title=title)
    for column in ("role", "version", "weight %", "shadow %"):
        table.add_column(column)
    table.add_row("champion", str(state.champion_version), str(state.champion_weight), "-")
    table.add_row(
        "challenger", str(state.challenger_version), str(state.challenger_weight), str(state.shadow_percent)
    )
    console.print(table)


def _report(canary: Canary, outcome: CanaryOutcome, action: str) -> None:
    if outcome.changed:
        for change in outcome.changes:
            console.print(f"{action}: {change}")
    else:
        console.print(f"{action}: nothing to change")
    _print_state(outcome.state, f"{canary.namespace}/{canary.name} ({outcome.state.mode} mode)")


@app.command("status")
def status(
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    prometheus_url: Annotated[
        str | None,
        typer.Option("--prometheus-url", envvar="FRAUD_PROMETHEUS_URL", help="Prometheus for live numbers."),
    ] = None,
) -> None:
    """Show versions, weights and the shadow share, and per-role live numbers (the challenger's
    mirrored requests as role `shadow`) when Prometheus is reachable."""
    canary = _canary(namespace, name, kubeconfig, context)
    state = canary.status()
    _print_state(state, f"{canary.namespace}/{canary.name} ({state.mode} mode)")
    if not prometheus_url:
        return
    try:
        numbers = live_numbers(prometheus_url, canary.namespace)
    except UnavailableError as e:
        console.print(f"[yellow]live numbers unavailable: {e}[/]")
        return
    table = Table(title="live (Prometheus)")
    labels = ("requests/s", "error ratio", "p99 latency s", "fraud rate")
    table.add_column("role")
    for label in labels:
        table.add_column(label)
    for role in (*ROLES, *([SHADOW] if SHADOW in numbers else [])):
        row = numbers.get(role, {})
        table.add_row(role, *(f"{row[k]:.4g}" if k in row else "-" for k in labels))
    console.print(table)


@app.command("set", context_settings={"ignore_unknown_options": True})
def set_weight(
    percent: Annotated[str, typer.Argument(help="Share of traffic for the challenger, 0-100.")],
    challenger_version: ChallengerVersion = None,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Send PERCENT % of the traffic to the challenger (the champion gets the rest)."""
    share = _percent(percent)
    canary = _canary(namespace, name, kubeconfig, context)
    _report(canary, canary.set_weight(share, challenger_version), "set")


@app.command("shadow", context_settings={"ignore_unknown_options": True})
def shadow(
    percent: Annotated[str, typer.Argument(help="Share of all requests copied to the challenger, 0-100.")],
    challenger_version: ChallengerVersion = None,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Copy PERCENT % of the requests to the challenger as well (0 stops): it answers them, logged
    and counted as role `shadow`; clients only ever get the routed answer. Standard mode only."""
    share = _percent(percent)
    canary = _canary(namespace, name, kubeconfig, context)
    _report(canary, canary.set_shadow(share, challenger_version), "shadow")


def _percent(text: str) -> int:
    try:
        return parse_percent(text)
    except UsageError as e:
        raise typer.Exit(error_line(e)) from e


@app.command("promote")
def promote(
    ctx: typer.Context,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    wait: Annotated[
        bool, typer.Option(help="Wait for the champion's rolling update before moving traffic.")
    ] = True,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds to wait for readiness.")] = 600,
    registry: Annotated[bool, typer.Option(help="Move the MLflow @champion alias too.")] = True,
) -> None:
    """The champion takes the challenger's version; weights return to 100/0, the mirror goes;
    aliases follow."""
    canary = _canary(namespace, name, kubeconfig, context)
    waiter = (lambda isvc: canary.wait_ready(isvc, timeout=timeout)) if wait else None
    _report(canary, canary.promote(_registry(ctx, registry), waiter), "promote")


@app.command("rollback")
def rollback(
    ctx: typer.Context,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
    registry: Annotated[bool, typer.Option(help="Tag the challenger's version rejected in MLflow.")] = True,
) -> None:
    """All traffic to the champion at once, no more copies to the challenger; the challenger's
    version is marked rejected."""
    canary = _canary(namespace, name, kubeconfig, context)
    _report(canary, canary.rollback(_registry(ctx, registry)), "rollback")


def plugin_main() -> None:
    """`kubectl fraud …`: the canary commands as a kubectl plugin."""
    run(app, prog_name="kubectl fraud")
