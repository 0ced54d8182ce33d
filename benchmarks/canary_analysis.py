"""How often the canary analysis rolls back a clean challenger, and how fast it catches bad ones.

Simulates the counts one analysis pass reads (Prometheus and the audit log) every 2 minutes and
runs the real `decide()` on them, for many seeded repetitions per scenario:

    uv run python -m benchmarks.canary_analysis [--reps 200 --bad-reps 100 --rate 50 --json]
    uv run python -m benchmarks.canary_analysis --steps 5 10 25 50   # a plan without the shadow step

Traffic: `--rate` client requests per second, 0.2 % fraud. Champion: error ratio 0.1 %, lognormal
latency (median 1.5 ms, p99 4 ms), flag rate 0.5 % at the operating point, recall 0.8. Shadow
step: the challenger scores copies of every request, paired with the champion's rows (the two
models agree on most flags); weight steps: it answers its share. Labels mature after
`--label-delay-hours` (6 by default: quick chargebacks keep the simulation short; a longer delay
only postpones the promotion by the difference). The plan is the default but for
labelDelayHours, set to the simulated delay. Scenarios: clean (same quality, its own seed),
error ratio +1 point, p99 latency x3 (same median), flag rate x3, recall -30 % at the same flag rate.
Counts are drawn per pass and role (binomial / multinomial), never per request.
"""

import argparse
import json
import math
from collections import Counter, deque
from dataclasses import dataclass, replace

import numpy as np
from scipy.stats import norm

from jobs.canary.analysis import decide
from jobs.canary.measurements import Behaviour, Labelled, Measurements, Paired, PairedLabels, ServiceCounts
from jobs.canary.plan import Plan

FRAUD_RATE = 0.002
PASS_MINUTES = 2
MEDIAN_S, P99_S = 0.0015, 0.004
AGREEMENT = 0.8
"""Pull of the two models' flags towards each other: 0 independent, 1 nested."""
BELOW = np.array([0.945, 0.025, 0.015, 0.01, 0.003, 0.002])
"""Score histogram shape of unflagged rows (bins under the 0.5 threshold) ..."""
ABOVE = np.array([0.3, 0.3, 0.4])
"""... and of flagged rows (the bins above it)."""


@dataclass(frozen=True)
class Model:
    """One model's live behaviour."""

    errors: float = 0.001
    slow: float = 0.01
    """Share of requests slower than the champion's p99."""
    flag_rate: float = 0.005
    recall: float = 0.8

    @property
    def false_flags(self) -> float:
        return (self.flag_rate - FRAUD_RATE * self.recall) / (1 - FRAUD_RATE)


def _slow_share(p99_factor: float) -> float:
    """Share above the champion's p99 of a lognormal with the same median and p99 x `p99_factor`."""
    z = norm.ppf(0.99)
    sigma = math.log(P99_S * p99_factor / MEDIAN_S) / z
    return float(norm.sf(math.log(P99_S / MEDIAN_S) / sigma))


CHAMPION = Model()
SCENARIOS = {
    "clean": CHAMPION,
    "error +1 pt": replace(CHAMPION, errors=0.011),
    "p99 x3": replace(CHAMPION, slow=_slow_share(3)),
    "flag rate x3": replace(CHAMPION, flag_rate=0.015),
    "recall -30 %": replace(CHAMPION, recall=0.56),
}
SERVICE = ("error +1 pt", "p99 x3")


def _cells(a: float, b: float) -> np.ndarray:
    """Probabilities of (both, challenger only, champion only, neither) for flag rates a, b."""
    both = a * b + AGREEMENT * (min(a, b) - a * b)
    return np.array([both, a - both, b - both, 1 - a - b + both])


def _labelled(rng: np.random.Generator, n: np.ndarray, model: Model) -> np.ndarray:
    """Per rep: frauds, caught, flagged of `n` transactions one model scored alone."""
    frauds = rng.binomial(n, FRAUD_RATE)
    caught = rng.binomial(frauds, model.recall)
    flagged = caught + rng.binomial(n - frauds, model.false_flags)
    return np.stack([frauds, caught, flagged], axis=1)


def _paired(rng: np.random.Generator, n: np.ndarray, ch: Model) -> tuple[np.ndarray, np.ndarray]:
    """Per rep, frauds and legit transactions both scored: the four flag cells of each class."""
    frauds = rng.binomial(n, FRAUD_RATE)
    fraud_cells = rng.multinomial(frauds, _cells(ch.recall, CHAMPION.recall))
    legit_cells = rng.multinomial(n - frauds, _cells(ch.false_flags, CHAMPION.false_flags))
    return fraud_cells, legit_cells


BINS = len(BELOW) + len(ABOVE)
WINDOW = 14 + 2 * BINS
"""Counts of one step's window per rep: service (6), behaviour (4), pairs (4), two histograms."""
LABELS = 12
"""Label counts since the analysis began per rep: each role's (3), paired (5), pairs."""


def _bins(rng: np.random.Generator, scored: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    return np.concatenate([rng.multinomial(scored - flagged, BELOW), rng.multinomial(flagged, ABOVE)], axis=1)


def draw_pass(
    rng: np.random.Generator, ch: Model, n: int, share: np.ndarray, shadow: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """One pass of `n` client requests per rep: (window increments, label increments)."""
    reps = len(share)
    n_ch = np.where(shadow, n, rng.binomial(n, share))
    n_cm = np.where(shadow, n, n - n_ch)
    service = [rng.binomial(n_ch, ch.errors), rng.binomial(n_ch, ch.slow)]
    service += [rng.binomial(n_cm, CHAMPION.errors), rng.binomial(n_cm, CHAMPION.slow)]
    alone_ch, alone_cm = _labelled(rng, n_ch, ch), _labelled(rng, n_cm, CHAMPION)
    fc, lc = _paired(rng, np.full(reps, n), ch)
    frauds = fc.sum(axis=1)
    caught_ch, caught_cm = fc[:, 0] + fc[:, 1], fc[:, 0] + fc[:, 2]
    paired_ch = np.stack([frauds, caught_ch, caught_ch + lc[:, 0] + lc[:, 1]], axis=1)
    paired_cm = np.stack([frauds, caught_cm, caught_cm + lc[:, 0] + lc[:, 2]], axis=1)
    lab_ch = np.where(shadow[:, None], paired_ch, alone_ch)
    lab_cm = np.where(shadow[:, None], paired_cm, alone_cm)
    cells = (fc + lc)[:, :3] * shadow[:, None]
    pairs = n * shadow
    window = np.column_stack(
        [n_ch, service[0], service[1], n_cm, service[2], service[3], n_ch, lab_ch[:, 2], n_cm, lab_cm[:, 2],
         pairs, cells, _bins(rng, n_ch, lab_ch[:, 2]), _bins(rng, n_cm, lab_cm[:, 2])]
    )  # fmt: skip
    paired_labels = np.column_stack([frauds, fc[:, 2], fc[:, 1], lc[:, 2], lc[:, 1]]) * shadow[:, None]
    labels = np.column_stack([lab_ch, lab_cm, paired_labels, pairs])
    return window, labels


def measurements(w: np.ndarray, lab: np.ndarray, minutes: float, rate: float) -> Measurements:
    """What a pass reads from one rep's window and matured labels."""
    w, lab = w.tolist(), lab.tolist()
    paired = Paired(w[10], w[11], w[13], w[12], None) if w[10] else None
    return Measurements(
        minutes_in_step=minutes,
        latency_bound_s=P99_S,
        transactions_per_hour=rate * 3600,
        service={"challenger": ServiceCounts(*w[0:3]), "champion": ServiceCounts(*w[3:6])},
        behaviour={
            "challenger": Behaviour(w[6], w[7], tuple(w[14 : 14 + BINS])),
            "champion": Behaviour(w[8], w[9], tuple(w[14 + BINS :])),
        },
        paired=paired,
        labels={"challenger": Labelled(*lab[0:3], lab[1]), "champion": Labelled(*lab[3:6], lab[4])},
        paired_labels=PairedLabels(*lab[6:11]) if lab[11] else None,
    )


def _caught_by(reason: str) -> str:
    return "deadline" if reason.startswith("inconclusive after") else reason.split(" failed:")[0]


def simulate(plan: Plan, ch: Model, reps: int, rate: float, seed: list[int]) -> list[tuple[str, float, str]]:
    """Per rep: (outcome promote / rollback / undecided, minutes since the start, check that decided)."""
    rng = np.random.default_rng(seed)
    n = round(rate * 60 * PASS_MINUTES)
    lag = round(plan.label_delay_hours * 60 / PASS_MINUTES)
    horizon = math.ceil((plan.label_wait_hours + 24) * 60 / PASS_MINUTES)
    step, start = np.zeros(reps, int), np.zeros(reps, int)
    window, labels = np.zeros((reps, WINDOW), np.int64), np.zeros((reps, LABELS), np.int64)
    history: deque[np.ndarray] = deque(maxlen=lag + 1)
    outcome: list[tuple[str, float, str] | None] = [None] * reps
    shares = np.array([s.percent / 100 for s in plan.steps])
    shadows = np.array([s.shadow for s in plan.steps])
    for t in range(1, horizon + 1):
        active = np.flatnonzero([o is None for o in outcome])
        if not len(active):
            break
        w_inc, l_inc = draw_pass(rng, ch, n, shares[step[active]], shadows[step[active]])
        window[active] += w_inc
        labels[active] += l_inc
        history.append(labels.copy())
        matured = history[0] if len(history) > lag else np.zeros_like(labels)
        for i in active:
            m = measurements(window[i], matured[i], (t - start[i]) * PASS_MINUTES, rate)
            decision = decide(plan, int(step[i]), m)
            if decision.action == "advance":
                step[i], start[i], window[i] = step[i] + 1, t, 0
            elif decision.action in ("promote", "rollback"):
                outcome[i] = (decision.action, t * PASS_MINUTES, _caught_by(decision.reason))
    return [o or ("undecided", horizon * PASS_MINUTES, "") for o in outcome]


def summarise(runs: list[tuple[str, float, str]]) -> dict:
    """Counts of each outcome, median minutes to each decision, and which checks rolled back."""

    def median(action: str) -> float | None:
        minutes = [m for o, m, _ in runs if o == action]
        return float(np.median(minutes)) if minutes else None

    counts = Counter(o for o, _, _ in runs)
    return {
        "reps": len(runs),
        "promoted": counts["promote"],
        "rolled_back": counts["rollback"],
        "undecided": counts["undecided"],
        "median_minutes_to_rollback": median("rollback"),
        "median_minutes_to_promotion": median("promote"),
        "caught_by": dict(Counter(c for o, _, c in runs if o == "rollback").most_common()),
    }


def report(plan: Plan, results: dict[str, dict], args: argparse.Namespace) -> dict:
    """The table, and the headline rates."""
    print(f"{args.rate:g} req/s, fraud {FRAUD_RATE:.1%}, a pass every {PASS_MINUTES} min, labels after "
          f"{plan.label_delay_hours:g} h; plan: {json.dumps(plan.to_mapping())}")  # fmt: skip
    print(f"{'scenario':<14}{'reps':>6}{'promoted':>10}{'rolled back':>13}{'undecided':>11}"
          f"{'min to rollback':>17}{'h to promote':>14}  caught by")  # fmt: skip
    for name, r in results.items():
        to_rollback = (
            "-" if r["median_minutes_to_rollback"] is None else f"{r['median_minutes_to_rollback']:g}"
        )
        promote = r["median_minutes_to_promotion"]
        to_promote = "-" if promote is None else f"{promote / 60:.1f}"
        caught = ", ".join(f"{k} {v}" for k, v in r["caught_by"].items()) or "-"
        print(f"{name:<14}{r['reps']:>6}{r['promoted']:>10}{r['rolled_back']:>13}{r['undecided']:>11}"
              f"{to_rollback:>17}{to_promote:>14}  {caught}")  # fmt: skip
    bad = [r for name, r in results.items() if name != "clean"]
    service = [m for name in SERVICE for o, m, _ in args.runs[name] if o == "rollback"]
    clean = results["clean"]
    return {
        "false_rollback_rate": clean["rolled_back"] / clean["reps"],
        "false_promotion_rate": sum(r["promoted"] for r in bad) / sum(r["reps"] for r in bad),
        "bad_detected_rate": sum(r["rolled_back"] for r in bad) / sum(r["reps"] for r in bad),
        "median_minutes_to_rollback": float(np.median(service)) if service else None,
        "rate": args.rate,
        "label_delay_hours": plan.label_delay_hours,
        "scenarios": results,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--reps", type=int, default=200, help="Clean repetitions (each its own seed).")
    parser.add_argument("--bad-reps", type=int, default=100, help="Repetitions per bad scenario.")
    parser.add_argument("--rate", type=float, default=50, help="Client requests per second.")
    parser.add_argument("--label-delay-hours", type=float, default=6)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--steps", nargs="+", help="Plan steps instead of the default, e.g. 5 10 25 50.")
    parser.add_argument("--json", action="store_true", help="End with one JSON line of the results.")
    args = parser.parse_args()
    steps = {"steps": [int(s) if s.isdigit() else s for s in args.steps]} if args.steps else {}
    plan = Plan.from_mapping({**steps, "labelDelayHours": args.label_delay_hours})
    args.runs = {
        name: simulate(
            plan, model, args.reps if name == "clean" else args.bad_reps, args.rate, [args.seed, i]
        )
        for i, (name, model) in enumerate(SCENARIOS.items())
    }
    results = {name: summarise(runs) for name, runs in args.runs.items()}
    headline = report(plan, results, args)
    print(
        f"false rollbacks {headline['false_rollback_rate']:.1%}, false promotions "
        f"{headline['false_promotion_rate']:.1%}, bad caught {headline['bad_detected_rate']:.1%}, "
        f"service regressions rolled back after a median {headline['median_minutes_to_rollback']} min"
    )
    if args.json:
        print(json.dumps(headline))


if __name__ == "__main__":
    main()
