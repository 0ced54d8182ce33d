"""One pass of the automatic canary analysis (`fraud canary analyze`, the chart's CronJob).

A pass reads the live objects and the progress annotation, measures the current step (collect),
lets the engine decide (analysis), records the decision on the route — only if nobody else moved
the canary meanwhile — and then applies it: the step's traffic, or the existing promotion (the
validation gate re-run first) or rollback. A new challenger version starts the plan from its first
step; a finished, paused or absent challenger leaves everything as it is.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from fraudcore.errors import UsageError
from jobs.canary import Canary
from jobs.canary import progress as progress_
from jobs.canary.analysis import Decision, decide
from jobs.canary.collect import Window, measure
from jobs.canary.progress import Progress
from jobs.canary.publish import event, push_metrics, tag_version
from jobs.canary.state import GATEWAY, KSERVE, CanaryError, CanaryState, not_ready
from training.gate import GateRejectedError
from training.pipeline import promote as gated_promote

if TYPE_CHECKING:
    from fraudcore.registry import Registry
    from jobs.canary.plan import Plan, Step

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sources:
    """Where a pass measures and publishes."""

    prometheus_url: str
    audit_dsn: str | None
    pushgateway_url: str | None = None


@dataclass(frozen=True)
class PassReport:
    """What a pass found and did: the progress afterwards (None: no analysis), the decision (None:
    nothing measured), one line saying what happened, and the changes made to the cluster."""

    progress: Progress | None
    decision: Decision | None
    message: str
    changes: tuple[str, ...] = field(default_factory=tuple)


class Autopilot:
    """The analysis of one release's canary under one plan."""

    def __init__(self, canary: Canary, plan: Plan, sources: Sources, registry: Registry | None) -> None:
        if registry is None:
            raise UsageError(
                "the canary analysis needs the registry (set MLFLOW_TRACKING_URI): promotion re-runs the gate"
            )
        self.canary, self.plan, self.sources, self.registry = canary, plan, sources, registry

    def run_pass(self, now: datetime | None = None) -> PassReport:
        now = now or datetime.now(UTC)
        state, route = self._live()
        progress = progress_.read(route)
        if state.challenger_version == state.champion_version:
            return PassReport(
                progress, None, f"no challenger: both roles serve version {state.champion_version}"
            )
        if progress is None or progress.challenger_version != state.challenger_version:
            return self._begin(state, route, progress, now)
        if progress.outcome:
            return PassReport(progress, None, f"version {progress.challenger_version} was {progress.outcome}")
        if progress.paused:
            return PassReport(progress, None, f"paused at step {self._step_text(progress.step)}")
        decision = self._decide(state, progress, now)
        if decision.action == "promote":
            decision = self._gate(decision, state.challenger_version)
        checks = tuple(asdict(c) for c in decision.checks)
        after = progress.decided(decision.action, decision.reason, now, checks or None)
        after = self._record(route, after)
        changes = self._apply(decision, after)
        self._publish(after, decision.action, decision.reason, now, progress)
        return PassReport(after, decision, f"{decision.action}: {decision.reason}", tuple(changes))

    def set_paused(self, paused: bool, now: datetime | None = None) -> PassReport:
        """Pause (the passes measure nothing and move nothing) or resume the current analysis."""
        now = now or datetime.now(UTC)
        state, route = self._live()
        progress = progress_.read(route)
        if progress is None or progress.challenger_version != state.challenger_version:
            progress = Progress.begin(state.champion_version, state.challenger_version, now)
        after = replace(progress.decided("pause" if paused else "resume", "by hand", now), paused=paused)
        after = self._record(route, after)
        return PassReport(after, None, "paused" if paused else "resumed")

    def abort(self, reason: str, now: datetime | None = None) -> PassReport:
        """Stop the analysis for good and roll back (all traffic and copies to the champion)."""
        now = now or datetime.now(UTC)
        state, route = self._live()
        progress = progress_.read(route) or Progress.begin(
            state.champion_version, state.challenger_version, now
        )
        after = progress.decided("abort", reason, now)
        after = self._record(route, after)
        outcome = self.canary.rollback(self.registry, f"canary aborted: {reason}")
        self._publish(after, "abort", reason, now, progress)
        return PassReport(after, None, f"aborted: {reason}", outcome.changes)

    def _record(self, route: dict, after: Progress) -> Progress:
        """Write the progress (with the plan it follows) on the route as read; returns it."""
        recorded = replace(after, plan=self.plan.to_mapping())
        progress_.write(self.canary.objects, route, recorded)
        return recorded

    def _live(self) -> tuple[CanaryState, dict]:
        state = self.canary.status()
        if state.mode != "Standard":
            raise CanaryError(
                "the canary analysis needs Standard mode (an HTTPRoute with weights and a mirror)"
            )
        route = self.canary.objects.get(GATEWAY, self.canary.name)
        if route is None:
            raise CanaryError(f"HTTPRoute {self.canary.name} not found")
        return state, route

    def _begin(self, state: CanaryState, route: dict, previous: Progress | None, now: datetime) -> PassReport:
        """A new challenger: record its step 1 and route that step's traffic."""
        totals = previous.decisions if previous else None
        begun = Progress.begin(state.champion_version, state.challenger_version, now, totals)
        reason = f"version {state.challenger_version} against champion {state.champion_version}"
        after = begun.decided("start", reason, now)
        after = self._record(route, after)
        changes = self._route(self.plan.steps[0])
        self._publish(after, "start", reason, now, previous)
        return PassReport(after, None, f"start: {reason}", tuple(changes))

    def _decide(self, state: CanaryState, progress: Progress, now: datetime) -> Decision:
        challenger = self.canary.objects.get(KSERVE, f"{self.canary.name}-challenger") or {}
        if problem := not_ready(challenger):
            return Decision("hold", f"the challenger is not Ready ({problem})", ())
        step = self.plan.steps[progress.step]
        window = Window(
            champion_version=state.champion_version,
            challenger_version=state.challenger_version,
            shadow=step.shadow,
            step_started=datetime.fromisoformat(progress.step_started),
            analysis_started=datetime.fromisoformat(progress.started),
            now=now,
        )
        measured = measure(
            self.sources.prometheus_url, self.sources.audit_dsn, self.canary.namespace, self.plan, window
        )
        return decide(self.plan, progress.step, measured)

    def _gate(self, decision: Decision, version: int) -> Decision:
        """Promotion re-runs the validation gate; a refusal turns it into a rollback."""
        try:
            gated_promote(self.registry, str(version))
        except GateRejectedError as e:
            return Decision("rollback", str(e), decision.checks)
        return decision

    def _apply(self, decision: Decision, after: Progress) -> list[str]:
        if decision.action == "promote":
            return list(self.canary.promote(None, self.canary.wait_ready).changes)
        if decision.action == "rollback":
            return list(self.canary.rollback(self.registry, f"canary analysis: {decision.reason}").changes)
        return self._route(self.plan.steps[after.step])

    def _route(self, step: Step) -> list[str]:
        """Bring the traffic to a step's: mirrored copies, or a share of the clients' requests."""
        if step.shadow:
            changes = self.canary.set_weight(0).changes + self.canary.set_shadow(step.percent).changes
        else:
            changes = self.canary.set_shadow(0).changes + self.canary.set_weight(step.percent).changes
        return list(changes)

    def _publish(
        self, after: Progress, action: str, reason: str, now: datetime, before: Progress | None
    ) -> None:
        # One Event per streak of holds: their reasons (counts so far) change every pass.
        last = before.history[-1].action if before is not None and before.history else None
        repeated = action == "hold" and last == "hold"
        message = f"{action} at step {self._step_text(min(after.step, len(self.plan.steps) - 1))}: {reason}"
        logger.info("canary analysis: %s", message)
        if not repeated:
            isvc = self.canary.objects.get(KSERVE, f"{self.canary.name}-challenger") or {
                "metadata": {"name": f"{self.canary.name}-challenger"}
            }
            event(self.canary.objects.api.api_client, self.canary.namespace, isvc, action, message, now)
            if action != "hold":
                tag_version(self.registry, after.challenger_version, message)
        if self.sources.pushgateway_url:
            push_metrics(self.sources.pushgateway_url, after, len(self.plan.steps))

    def _step_text(self, index: int) -> str:
        return f"{index + 1} of {len(self.plan.steps)} ({self.plan.steps[index]})"
