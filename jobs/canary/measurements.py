"""What one analysis pass measured: counts per role over the current step (service and behaviour)
or since the analysis began (matured labels), as the decision engine (`jobs.canary.analysis`)
takes them. Prometheus fills `service`, the audit log the rest (`jobs.canary.collect`).

"challenger" means the traffic the challenger answered for clients, or, in a shadow step, the
mirrored copies it scored (role `shadow`); "champion" is always the champion's client traffic.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceCounts:
    """Requests of one role: all answered, refused (4xx/5xx), and slower than `latency_bound_s`."""

    requests: float
    errors: float
    slow: float


@dataclass(frozen=True)
class Behaviour:
    """Transactions one role scored, how many it flagged, and its scores per bin of `SCORE_EDGES`."""

    scored: int
    flagged: int
    score_bins: tuple[int, ...]


SCORE_EDGES: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 0.9)
"""Upper edges of the score bins (the last bin is everything above the last edge). Everything under
0.05 is one bin: the near-zero scores of legitimate transactions move with a model's calibration
(a retrained XGBoost model scored them 0.017 where its champion gave 0.008) without changing a
decision, and finer bins there made two equally good models look far apart."""


@dataclass(frozen=True)
class Paired:
    """Shadow copies joined to the champion's rows of the same transaction (request id, row).

    `champion_only` / `challenger_only`: flagged by one model and not the other (McNemar's cells)."""

    pairs: int
    both: int
    champion_only: int
    challenger_only: int
    rank_correlation: float | None


@dataclass(frozen=True)
class Labelled:
    """Matured labels of one role's transactions: frauds among them, frauds it flagged (caught),
    transactions it flagged, and how many of those were frauds."""

    frauds: int
    caught: int
    flagged: int
    true_flagged: int


@dataclass(frozen=True)
class PairedLabels:
    """Matured labels of paired transactions: frauds only the champion / only the challenger
    caught, and flagged-legit transactions only the champion / only the challenger flagged."""

    frauds: int
    champion_only_caught: int
    challenger_only_caught: int
    champion_only_false: int
    challenger_only_false: int


@dataclass(frozen=True)
class Measurements:
    """One pass's view of the current step."""

    minutes_in_step: float
    latency_bound_s: float | None
    """The champion's latency quantile (plan's) over the step: `slow` counts requests above it."""
    transactions_per_hour: float
    """Transactions the release scores for clients per hour (the alert-volume band projects the
    challenger's flag rate onto all of them)."""
    service: dict[str, ServiceCounts] = field(default_factory=dict)
    behaviour: dict[str, Behaviour] = field(default_factory=dict)
    paired: Paired | None = None
    labels: dict[str, Labelled] = field(default_factory=dict)
    paired_labels: PairedLabels | None = None
