"""The canary analysis plan: the steps a challenger walks through and the limits it is held to.

The chart passes the plan as camelCase JSON (`Plan.from_mapping`); each pass decides under the plan
it is given and records it in the analysis state (`Plan.to_mapping`) for `fraud canary status`.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from itertools import pairwise
from typing import Any

from fraudcore.errors import UsageError


@dataclass(frozen=True)
class Step:
    """One step: the challenger scores `percent` % of traffic as mirrored copies (shadow) or answers it."""

    percent: int
    shadow: bool = False

    def __str__(self) -> str:
        return f"shadow {self.percent} %" if self.shadow else f"{self.percent} %"


DEFAULT_STEPS = (Step(100, shadow=True), Step(5), Step(10), Step(25), Step(50))


@dataclass(frozen=True)
class Plan:
    """Steps, sample sizes and limits; every comparison is the challenger against the champion."""

    steps: tuple[Step, ...] = DEFAULT_STEPS
    min_minutes: float = 10
    """A step lasts at least this long before it can advance."""
    max_minutes: float = 60
    """A step still short of data after this long rolls back as inconclusive (not the last step's labels)."""
    min_requests: int = 2000
    """Challenger requests a step needs before it can advance."""
    alpha: float = 0.01
    """False-rollback budget of the whole canary, split over every test that can roll back."""
    error_margin: float = 0.002
    """The challenger's error ratio may exceed the champion's by this much (absolute)."""
    latency_quantile: float = 0.99
    """The champion's latency quantile over the step that defines a slow request."""
    slow_margin: float = 0.01
    """The challenger's share of slow requests may exceed the champion's by this much (absolute)."""
    flag_ratio: float = 1.5
    """The challenger's flag rate must stay within [1/r, r] x the champion's."""
    score_distance: float = 0.25
    """Largest population stability index between the two roles' score distributions."""
    alerts_per_hour: float | None = None
    """Most alerts per hour the review team can handle at the challenger's flag rate (None: off)."""
    label_delay_hours: float = 72
    """Age at which a transaction's label counts as matured."""
    min_frauds: int = 30
    """Matured frauds the label layer needs before it can pass or fail."""
    label_wait_hours: float = 168
    """How long the last step may wait for labels before it rolls back as inconclusive."""
    recall_margin: float = 0.05
    """Non-inferiority margin of recall at the operating point (absolute)."""
    precision_margin: float = 0.05
    """Non-inferiority margin of precision at the operating point (absolute)."""

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> "Plan":
        """Read the chart's camelCase plan; every key is optional, anything wrong is one line."""
        if not isinstance(values, Mapping):
            raise UsageError(f"canary plan must be a mapping of settings, got {values!r}")
        names = {_camel(f.name): f.name for f in fields(cls)}
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise UsageError(f"canary plan: unknown key {unknown[0]!r} (known: {', '.join(names)})")
        kwargs = {names[key]: _READERS[names[key]](key, value) for key, value in values.items()}
        plan = cls(**kwargs)
        if plan.max_minutes <= plan.min_minutes:
            span = f"maxMinutes ({plan.max_minutes:g}), minMinutes ({plan.min_minutes:g})"
            raise UsageError(f"canary plan: maxMinutes must exceed minMinutes, got {span}")
        return plan

    def to_mapping(self) -> dict[str, Any]:
        """The plan as the chart writes it (the inverse of `from_mapping`)."""
        out: dict[str, Any] = {_camel(f.name): getattr(self, f.name) for f in fields(self)}
        out["steps"] = [f"shadow {s.percent}" if s.shadow else s.percent for s in self.steps]
        return out


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


def _number(low: float, high: float, *, integer: bool = False, open_low: bool = False,
            open_high: bool = False) -> Callable[[str, Any], float]:  # fmt: skip
    """A reader of one number from `low` to `high`, either end open (excluded) or closed."""

    def read(key: str, value: Any) -> float:
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            kind = "a whole number" if integer else "a number"
            raise UsageError(f"canary plan: {key} must be {kind}, got {value!r}")
        above = low < value if open_low else low <= value
        below = value < high if open_high else value <= high
        if not (above and below):
            span = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
            raise UsageError(f"canary plan: {key} must be in {span}, got {value!r}")
        return value

    return read


def _optional(read: Callable[[str, Any], float]) -> Callable[[str, Any], float | None]:
    return lambda key, value: None if value is None else read(key, value)


def _step(key: str, item: Any) -> Step:
    """`5` (the challenger answers 5 %) or `"shadow 100"` (it scores copies of 100 %)."""
    text = str(item).strip().removesuffix("%").strip() if not isinstance(item, bool) else ""
    shadow = text.startswith("shadow")
    number = text.removeprefix("shadow").strip()
    if isinstance(item, float) or not number.isdigit() or not 1 <= int(number) <= 100:
        raise UsageError(f"canary plan: {key} entries are 1 to 100 or 'shadow N', got {item!r}")
    return Step(int(number), shadow)


def _steps(key: str, value: Any) -> tuple[Step, ...]:
    if not isinstance(value, list | tuple) or not value:
        raise UsageError(f"canary plan: {key} must be a non-empty list, got {value!r}")
    steps = tuple(_step(key, item) for item in value)
    weights = [s.percent for s in steps if not s.shadow]
    if any(b <= a for a, b in pairwise(weights)):
        raise UsageError(f"canary plan: {key} weights must increase, got {weights}")
    first_weight = next((i for i, s in enumerate(steps) if not s.shadow), len(steps))
    if any(s.shadow for s in steps[first_weight:]):
        raise UsageError(f"canary plan: {key} shadow steps come before the weight steps")
    return steps


_INF = float("inf")
_READERS: dict[str, Callable[[str, Any], Any]] = {
    "steps": _steps,
    "min_minutes": _number(0, _INF),
    "max_minutes": _number(0, _INF, open_low=True),
    "min_requests": _number(1, _INF, integer=True),
    "alpha": _number(0, 0.5, open_low=True),
    "error_margin": _number(0, 1, open_low=True, open_high=True),
    "latency_quantile": _number(0.5, 1, open_high=True),
    "slow_margin": _number(0, 1, open_low=True, open_high=True),
    "flag_ratio": _number(1, _INF, open_low=True),
    "score_distance": _number(0, _INF, open_low=True),
    "alerts_per_hour": _optional(_number(0, _INF, open_low=True)),
    "label_delay_hours": _number(0, _INF),
    "min_frauds": _number(1, _INF, integer=True),
    "label_wait_hours": _number(0, _INF, open_low=True),
    "recall_margin": _number(0, 1, open_low=True, open_high=True),
    "precision_margin": _number(0, 1, open_low=True, open_high=True),
}
