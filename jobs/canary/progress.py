"""Where the analysis stands, kept in one annotation on the release's HTTPRoute: the challenger
version under analysis, its step and when that began, pause and outcome, the last pass's checks and
the recent decisions. Every pass reads it, and writes it back only if the route's resourceVersion is
still the one it read, so two passes running at once cannot both move the canary.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING, Any

from jobs.canary.state import GATEWAY, CanaryError

if TYPE_CHECKING:
    from jobs.canary.kube import Objects

ANNOTATION = "fraud-detection.io/canary-analysis"
HISTORY = 20
"""Decisions kept in the annotation (the Events and MLflow tags keep every one)."""


@dataclass(frozen=True)
class Entry:
    """One decision: when, at which step, what and why."""

    at: str
    step: int
    action: str
    reason: str


@dataclass(frozen=True)
class Progress:
    challenger_version: int
    champion_version: int
    started: str
    step: int
    step_started: str
    paused: bool = False
    outcome: str | None = None
    """`promoted`, `rolled back` or `aborted` once the analysis of this version has ended."""
    decisions: dict[str, int] = field(default_factory=dict)
    """How many passes decided each action (the `fraud_canary_decisions_total` counter)."""
    checks: tuple[dict[str, Any], ...] = ()
    """The last measuring pass's checks, as `fraud canary status` shows them."""
    plan: dict[str, Any] = field(default_factory=dict)
    """The plan of the last pass (`Plan.to_mapping()`)."""
    history: tuple[Entry, ...] = ()

    @classmethod
    def begin(
        cls, champion: int, challenger: int, now: datetime, decisions: dict[str, int] | None = None
    ) -> Progress:
        """Step 1 of a new challenger's analysis; decision totals carry on across challengers."""
        at = now.isoformat()
        return cls(challenger, champion, started=at, step=0, step_started=at, decisions=dict(decisions or {}))

    def decided(
        self, action: str, reason: str, now: datetime, checks: tuple[dict[str, Any], ...] | None = None
    ) -> Progress:
        """This progress after a decision: counted, kept in the history; `advance` starts the next
        step, `promote` / `rollback` end the analysis."""
        entry = Entry(now.isoformat(), self.step, action, reason)
        changes: dict[str, Any] = {
            "decisions": {**self.decisions, action: self.decisions.get(action, 0) + 1},
            "history": (*self.history, entry)[-HISTORY:],
        }
        if checks is not None:
            changes["checks"] = checks
        if action == "advance":
            changes |= {"step": self.step + 1, "step_started": now.isoformat()}
        elif action in OUTCOMES:
            changes["outcome"] = OUTCOMES[action]
        return replace(self, **changes)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Progress:
        try:
            data = json.loads(text)
            data["history"] = tuple(Entry(**e) for e in data.get("history", ()))
            data["checks"] = tuple(data.get("checks", ()))
            return cls(**data)
        except (ValueError, TypeError) as e:
            raise CanaryError(
                f"annotation {ANNOTATION} is not the analysis's progress ({e}); remove it to start over"
            ) from e


OUTCOMES = {"promote": "promoted", "rollback": "rolled back", "abort": "aborted"}


def read(route: dict[str, Any]) -> Progress | None:
    """The progress recorded on a route (None: no analysis has run)."""
    text = (route["metadata"].get("annotations") or {}).get(ANNOTATION)
    return Progress.from_json(text) if text else None


def write(objects: Objects, route: dict[str, Any], progress: Progress) -> None:
    """Record `progress` on the route as it was read; CanaryError when it changed meanwhile (another
    pass or person got there first)."""
    key = ANNOTATION.replace("~", "~0").replace("/", "~1")
    ops: list[dict[str, Any]] = [
        {"op": "test", "path": "/metadata/resourceVersion", "value": route["metadata"]["resourceVersion"]}
    ]
    if not route["metadata"].get("annotations"):
        ops.append({"op": "add", "path": "/metadata/annotations", "value": {}})
    ops.append({"op": "add", "path": f"/metadata/annotations/{key}", "value": progress.to_json()})
    objects.patch(GATEWAY, route["metadata"]["name"], ops)
