"""`fraud canary …`: move live traffic between champion and challenger (also `kubectl fraud …`)."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer
import yaml
from rich.table import Table

from cli.common import console, error_line, run, settings
from fraudcore.errors import UnavailableError, UsageError
from fraudcore.names import ROLES, SHADOW
from fraudcore.registry import Registry
from jobs.canary import Canary, CanaryOutcome
from jobs.canary import progress as progress_
from jobs.canary.autopilot import Autopilot, PassReport, Sources
from jobs.canary.metrics import live_numbers
from jobs.canary.plan import Plan
from jobs.canary.progress import Progress
from jobs.canary.state import GATEWAY, CanaryState, parse_percent

app = typer.Typer(
    help="Champion/challenger canary on KServe: status, set PERCENT, shadow PERCENT, promote, rollback; "
    "the automatic analysis: analyze, pause, resume, abort.",
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


def _print_progress(progress: Progress) -> None:
    """The analysis: its plan with the current step marked, the last checks, recent decisions."""
    steps = [str(s) for s in Plan.from_mapping(progress.plan).steps] if progress.plan else []
    shown = [
        f"[bold]▶ {s}[/]" if i == progress.step and not progress.outcome else s for i, s in enumerate(steps)
    ]
    state = progress.outcome or ("paused" if progress.paused else f"step {progress.step + 1} of {len(steps)}")
    console.print(
        f"analysis of version {progress.challenger_version}: {state}, since {progress.step_started}"
    )
    console.print("plan: " + " → ".join([*shown, "promote"]))
    if progress.checks:
        _print_checks(progress.checks, "checks of the last pass")
    for entry in progress.history[-5:]:
        console.print(f"  {entry.at}  step {entry.step + 1}  {entry.action}: {entry.reason}")


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
    if state.mode == "Standard" and (
        progress := progress_.read(canary.objects.get(GATEWAY, name) or {"metadata": {}})
    ):
        _print_progress(progress)
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


PlanOption = Annotated[
    str | None,
    typer.Option(
        "--plan",
        envvar="FRAUD_CANARY_PLAN",
        help="The analysis plan: a JSON object, or a JSON/YAML file (keys as the chart's "
        "canary.analysis.plan; default: the built-in plan).",
    ),
]
PrometheusUrl = Annotated[
    str | None,
    typer.Option(
        "--prometheus-url", envvar="FRAUD_PROMETHEUS_URL", help="Prometheus the predictors report to."
    ),
]


def _plan(text: str | None) -> Plan:
    if not text:
        return Plan()
    try:
        path = Path(text)
        data = (
            yaml.safe_load(path.read_text())
            if not text.lstrip().startswith("{") and path.is_file()
            else json.loads(text)
        )
    except (OSError, ValueError, yaml.YAMLError) as e:
        raise UsageError(f"--plan is neither a JSON object nor a readable JSON/YAML file ({e})") from e
    if not isinstance(data, dict):
        raise UsageError("--plan must be a JSON/YAML object (steps, minMinutes, ...)")
    return Plan.from_mapping(data)


def _autopilot(ctx: typer.Context, canary: Canary, plan: str | None, prometheus_url: str | None) -> Autopilot:
    config = settings(ctx)
    if not prometheus_url:
        raise UsageError(
            "the analysis measures through Prometheus: give --prometheus-url (FRAUD_PROMETHEUS_URL)"
        )
    sources = Sources(prometheus_url, config.audit_dsn, config.pushgateway_url)
    return Autopilot(canary, _plan(plan), sources, _registry(ctx, True))


def _print_checks(checks: tuple[dict, ...], title: str) -> None:
    table = Table(title=title)
    for column in ("layer", "check", "challenger", "champion", "limit", "verdict", "detail"):
        table.add_column(column)
    colour = {"pass": "green", "fail": "red", "inconclusive": "yellow"}
    for c in checks:
        shown = [
            f"{c[k]:.4g}" if isinstance(c.get(k), float) else str(c.get(k, "-"))
            for k in ("value", "baseline", "limit")
        ]
        verdict = f"[{colour.get(c['verdict'], 'white')}]{c['verdict']}[/]"
        table.add_row(c["layer"], c["name"], *shown, verdict, c.get("detail", ""))
    console.print(table)


def _print_pass(report: PassReport) -> None:
    console.print(report.message)
    for change in report.changes:
        console.print(f"  changed: {change}")
    if report.decision is not None and report.decision.checks:
        _print_checks(tuple(asdict(c) for c in report.decision.checks), "checks")


@app.command("analyze")
def analyze(
    ctx: typer.Context,
    plan: PlanOption = None,
    prometheus_url: PrometheusUrl = None,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """One pass of the automatic analysis (what the chart's CronJob runs every few minutes).

    Measures the current step — service guardrails from Prometheus, behaviour and matured labels
    from the audit log, each against the champion over the same window — and advances to the
    plan's next step, holds (not enough data yet), promotes (gate re-run) or rolls back. A new
    challenger version starts at the plan's first step. Every decision is recorded on the HTTPRoute,
    as an Event on the challenger and as a tag on its MLflow version.
    """
    canary = _canary(namespace, name, kubeconfig, context)
    _print_pass(_autopilot(ctx, canary, plan, prometheus_url).run_pass())


def _by_hand(
    ctx: typer.Context, namespace: str | None, name: str, kubeconfig: Path | None, context: str | None
) -> Autopilot:
    canary = _canary(namespace, name, kubeconfig, context)
    return Autopilot(canary, Plan(), Sources("", None), _registry(ctx, True))


@app.command("pause")
def pause(
    ctx: typer.Context,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Pause the analysis: passes keep the traffic as it is and decide nothing until `resume`."""
    _print_pass(_by_hand(ctx, namespace, name, kubeconfig, context).set_paused(True))


@app.command("resume")
def resume(
    ctx: typer.Context,
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """Resume a paused analysis at the step it was paused in."""
    _print_pass(_by_hand(ctx, namespace, name, kubeconfig, context).set_paused(False))


@app.command("abort")
def abort(
    ctx: typer.Context,
    reason: Annotated[
        str, typer.Option(help="Why, for the history, the Event and the registry.")
    ] = "by hand",
    namespace: Namespace = None,
    name: Name = DEFAULT_NAME,
    kubeconfig: Kubeconfig = None,
    context: Context = None,
) -> None:
    """End the analysis of this challenger and roll back: all traffic and copies to the champion,
    the challenger's version marked rejected."""
    _print_pass(_by_hand(ctx, namespace, name, kubeconfig, context).abort(reason))
