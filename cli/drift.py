"""`fraud drift`: compare recent inputs and scores with the champion's training reference."""

import re
from datetime import timedelta
from pathlib import Path

import typer
from rich.table import Table

from cli.common import console, settings
from fraudcore.errors import ExitCode
from fraudcore.names import CHAMPION, alias_uri
from fraudcore.registry import Registry
from jobs.drift import DriftRun, run_drift_check
from jobs.drift.detection import Detector
from jobs.drift.statistics import Backend, Correction
from jobs.drift.window import from_audit_log, from_csv

_AGE = re.compile(r"^(\d+)([mhd])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_age(text: str | None) -> timedelta | None:
    """`30m`, `6h`, `7d` → a timedelta."""
    if text is None:
        return None
    match = _AGE.match(text.strip())
    if not match:
        raise typer.BadParameter(f"{text!r} is not an age like 30m, 6h or 7d", param_hint="--since")
    return timedelta(**{_UNITS[match[2]]: int(match[1])})


def drift(
    ctx: typer.Context,
    data: Path | None = typer.Option(
        None, "--data", "-d", help="CSV window (the model's columns, label optional) instead of the log."
    ),
    rows: int | None = typer.Option(
        None, "--rows", min=1, help="Most recent logged rows to test \\[default: FRAUD_DRIFT_WINDOW_ROWS]."
    ),
    since: str | None = typer.Option(None, "--since", help="Only rows logged within this age: 30m, 6h, 7d."),
    detector: Detector = typer.Option(
        "ks",
        "--detector",
        help="ks: per-feature KS with correction; classifier: a domain classifier decides.",
    ),
    correction: Correction | None = typer.Option(
        None, "--correction", help="Multiple-testing correction \\[default: FRAUD_DRIFT_CORRECTION]."
    ),
    backend: Backend | None = typer.Option(
        None, "--backend", help="What runs the per-column tests \\[default: FRAUD_DRIFT_BACKEND]."
    ),
    model_uri: str | None = typer.Option(
        None, "--model-uri", help="Model whose reference sample is the baseline \\[default: the champion]."
    ),
    fail_on_drift: bool = typer.Option(
        True, "--fail-on-drift/--no-fail-on-drift", help="Exit 4 on drift (off: exit 0, e.g. in a CronJob)."
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        "-o",
        help="Directory for drift.json and drift.html \\[default: .fraud/reports/drift-<time>].",
    ),
) -> None:
    """Test a window of scored transactions against the champion's training sample.

    Exits 0 when nothing drifted, 4 when the inputs or the scores drifted (unless
    --no-fail-on-drift), 1 on errors. Writes a JSON result and an HTML report, pushes metrics to
    the Pushgateway (FRAUD_PUSHGATEWAY_URL) and logs an MLflow run with both files.
    """
    config = settings(ctx)
    age = parse_age(since)
    registry = Registry(config)
    model = registry.load(model_uri or alias_uri(registry.name, CHAMPION))
    schema = model.bundle.card.schema
    window = (
        from_csv(data, schema)
        if data
        else from_audit_log(config, schema, rows or config.drift_window_rows, age)
    )
    with console.status(f"testing {len(window):,} rows against {model.name} version {model.version}"):
        done = run_drift_check(
            registry, model, window, detector=detector, correction=correction, backend=backend, out=out
        )
    _print(done)
    if done.result.detected and fail_on_drift:
        raise typer.Exit(ExitCode.DRIFT)


def _print(done: DriftRun) -> None:
    result = done.result
    if result.detected:
        drifted = result.drifted_features
        score = " and in the scores" if result.score.drifted else ""
        console.print(
            f"[bold red]drift detected[/] in {len(drifted)} of {len(result.features)} features{score}"
        )
    else:
        console.print("[bold green]no drift[/]")
    table = Table("column", "p-value", "statistic", "drift")
    shown = sorted([*result.features.items(), ("score", result.score)], key=lambda item: item[1].p_value)
    for name, test in shown[:8]:
        table.add_row(name, f"{test.p_value:.3g}", f"{test.distance:.3f}", "yes" if test.drifted else "")
    console.print(table)
    if result.multivariate is not None:
        console.print(f"domain classifier: p = {result.multivariate.p_value:.3g}")
    if perf := result.performance:
        recall = "-" if perf.recall is None else f"{perf.recall:.3f}"
        pr_auc = "-" if perf.pr_auc is None else f"{perf.pr_auc:.3f}"
        console.print(
            f"champion on {perf.labelled_rows:,} labelled rows ({perf.fraud_rows:,} fraud): PR-AUC {pr_auc} "
            f"(holdout {perf.holdout_pr_auc:.3f}), recall {recall} (holdout {perf.holdout_recall:.3f})"
        )
    console.print(
        f"window: {result.window}, {result.window_rows:,} rows · "
        f"model: {result.model} version {result.model_version}\n"
        f"report: {done.files[1]}\nresult: {done.files[0]}\nMLflow run: {done.run_id}"
    )
