"""Champion/challenger canary on Kubernetes: the live state (`state`), the Standard and Knative ways
of moving and mirroring traffic (`strategies`), the API access (`kube`), per-role live numbers
(`metrics`), and the automatic analysis: its plan (`plan`), what a pass measures (`collect`,
`measurements`), the anytime-valid tests (`sequential`), the decision (`analysis`), the pass
itself (`autopilot`), its state on the route (`progress`) and its records (`publish`).

Every command reads the live objects once, changes only what differs, and reads the state again
afterwards; the registry's aliases follow promotions and rollbacks.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from fraudcore.errors import InvalidInputError
from jobs.canary.kube import Objects
from jobs.canary.state import CanaryState
from jobs.canary.strategies import WaitReady, strategy_for

if TYPE_CHECKING:
    from kubernetes.client import CustomObjectsApi

    from fraudcore.registry import Registry


@dataclass(frozen=True)
class CanaryOutcome:
    """What a command did: the state afterwards and the changes made (empty: nothing to do)."""

    state: CanaryState
    changes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> bool:
        return bool(self.changes)


def _check_percent(percent: int) -> None:
    if not 0 <= percent <= 100:
        raise InvalidInputError(f"percentage must be a whole number from 0 to 100, got {percent}")


class Canary:
    """The canary of one release (`name` = the chart's full name) in one namespace."""

    def __init__(self, api: CustomObjectsApi, namespace: str, name: str) -> None:
        self.objects = Objects(api, namespace)
        self.namespace = namespace
        self.name = name

    def status(self) -> CanaryState:
        return strategy_for(self.objects, self.name).state()

    def set_weight(self, percent: int, challenger_version: int | None = None) -> CanaryOutcome:
        """Send `percent` % of traffic to the challenger, optionally pointing it at a version first."""
        _check_percent(percent)
        changes = strategy_for(self.objects, self.name).set_weight(percent, challenger_version)
        return CanaryOutcome(self.status(), tuple(changes))

    def set_shadow(self, percent: int, challenger_version: int | None = None) -> CanaryOutcome:
        """Copy `percent` % of all requests to the challenger as well (0: none), optionally pointing
        it at a version first. Clients only ever get the routed answer; the challenger records its
        copies under the role `shadow`. A request the weights route to the challenger may be copied
        to it too. Standard mode only (the mirror is a filter on the HTTPRoute)."""
        _check_percent(percent)
        changes = strategy_for(self.objects, self.name).set_shadow(percent, challenger_version)
        return CanaryOutcome(self.status(), tuple(changes))

    def promote(self, registry: Registry | None = None, wait_ready: WaitReady | None = None) -> CanaryOutcome:
        """The champion takes the challenger's version (rolling update), then weights go to 100/0,
        the mirror is removed (the new champion serves everything; nothing is copied to the old
        challenger) and the registry's `@champion` follows."""
        version, changes = strategy_for(self.objects, self.name).promote(wait_ready)
        if registry is not None:
            registry.set_champion(str(version))
        return CanaryOutcome(self.status(), tuple(changes))

    def rollback(self, registry: Registry | None = None, reason: str = "canary rollback") -> CanaryOutcome:
        """All traffic back to the champion at once and no more copies to the challenger; the
        challenger's version is marked rejected."""
        strategy = strategy_for(self.objects, self.name)
        before = strategy.state()
        changes = strategy.rollback()
        if registry is not None and before.challenger_version != before.champion_version:
            registry.mark_rejected(str(before.challenger_version), reason)
        return CanaryOutcome(self.status(), tuple(changes))

    def wait_ready(self, isvc_name: str, timeout: float = 600, poll: float = 2.0) -> None:
        """Wait until KServe reports the InferenceService Ready for its latest generation."""
        self.objects.wait_ready(isvc_name, timeout, poll)
