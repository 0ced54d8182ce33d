"""The decision engine: hold on small samples, roll back on evidence, promote only on labels."""

from dataclasses import replace

import numpy as np
import pytest

from fraudcore.errors import UsageError
from jobs.canary.analysis import check_alpha, decide
from jobs.canary.measurements import Behaviour, Labelled, Measurements, Paired, PairedLabels, ServiceCounts
from jobs.canary.plan import Plan

PLAN = Plan()
LAST = len(PLAN.steps) - 1
BINS = (6000, 2000, 800, 500, 300, 200, 100, 60, 20, 8, 6, 6)


def behaviour(scored: int, flag_rate: float) -> Behaviour:
    """A score histogram of `scored` rows whose top three bins (scores above 0.5) are the flags."""
    flagged = round(scored * flag_rate)
    below = [round(b * (scored - flagged) / sum(BINS[:9])) for b in BINS[:9]]
    above = [round(flagged * share) for share in (0.3, 0.3, 0.4)]
    return Behaviour(scored, flagged, (*below, *above))


def window(
    minutes: float = 20,
    requests: int = 5000,
    *,
    errors: float = 0.001,
    slow: float = 0.01,
    flag_rate: float = 0.005,
    labels: dict[str, Labelled] | None = None,
    **changes: object,
) -> Measurements:
    """A step's counts: the champion answered 19 times the challenger's `requests`."""
    champion = 19 * requests
    m = Measurements(
        minutes_in_step=minutes,
        latency_bound_s=0.004,
        transactions_per_hour=180_000,
        service={
            "challenger": ServiceCounts(requests, round(requests * errors), round(requests * slow)),
            "champion": ServiceCounts(champion, round(champion * 0.001), round(champion * 0.01)),
        },
        behaviour={"challenger": behaviour(requests, flag_rate), "champion": behaviour(champion, 0.005)},
        labels=labels or {},
    )
    return replace(m, **changes)


def labelled(frauds: int, recall: float, precision: float) -> Labelled:
    caught = round(frauds * recall)
    flagged = round(caught / precision)
    return Labelled(frauds, caught, flagged, caught)


GOOD_LABELS = {"challenger": labelled(5000, 0.8, 0.32), "champion": labelled(5000, 0.8, 0.32)}


def verdicts(decision) -> dict[str, str]:
    return {c.name: c.verdict for c in decision.checks}


def test_a_clean_step_advances_to_the_next() -> None:
    decision = decide(PLAN, 1, window())
    assert decision.action == "advance", decision.reason
    assert "10 %" in decision.reason
    assert verdicts(decision)["error ratio"] == "pass"


@pytest.mark.parametrize(("minutes", "requests"), [(4, 5000), (20, 500)])
def test_a_small_sample_holds(minutes: float, requests: int) -> None:
    decision = decide(PLAN, 1, window(minutes, requests))
    assert decision.action == "hold"
    assert "sample too small" in decision.reason


def test_a_step_short_of_data_past_its_deadline_rolls_back_as_inconclusive() -> None:
    decision = decide(PLAN, 1, window(PLAN.max_minutes + 2, 500))
    assert decision.action == "rollback"
    assert decision.reason.startswith(f"inconclusive after {PLAN.max_minutes + 2:.0f} minutes")


@pytest.mark.parametrize(
    ("changes", "check"),
    [
        ({"errors": 0.011}, "error ratio"),
        ({"slow": 0.15}, "slow share"),
        ({"flag_rate": 0.015}, "flag rate"),
        ({"flag_rate": 0.0}, "flag rate"),
    ],
)
def test_a_clear_regression_rolls_back_before_the_sample_is_complete(changes: dict, check: str) -> None:
    decision = decide(PLAN, 0, window(4, 6000, **changes))
    assert decision.action == "rollback"
    assert decision.reason.startswith(f"{check} failed")
    assert verdicts(decision)[check] == "fail"


def test_a_small_excess_within_the_margin_is_not_a_breach() -> None:
    assert decide(PLAN, 1, window(errors=0.002, flag_rate=0.006)).action == "advance"


def test_paired_shadow_copies_decide_the_flag_rate_on_the_discordant_cells() -> None:
    # Same marginal counts; the paired cells show the challenger flagging three times as often.
    paired = Paired(pairs=100_000, both=400, champion_only=100, challenger_only=1100, rank_correlation=0.9)
    decision = decide(PLAN, 0, window(requests=100_000, paired=paired))
    flag = next(c for c in decision.checks if c.name == "flag rate")
    assert flag.verdict == "fail"
    assert "paired" in flag.detail and "0.90" in flag.detail


def test_without_a_latency_bound_the_step_holds() -> None:
    decision = decide(PLAN, 1, window(latency_bound_s=None))
    assert decision.action == "hold"
    assert verdicts(decision)["slow share"] == "inconclusive"


def test_a_shifted_score_distribution_rolls_back() -> None:
    m = window()
    shifted = Behaviour(
        m.behaviour["challenger"].scored, 25, (500, 500, 1000, 1000, 1000, 975, 0, 0, 0, 0, 10, 15)
    )
    decision = decide(PLAN, 1, replace(m, behaviour={**m.behaviour, "challenger": shifted}))
    assert decision.action == "rollback"
    assert decision.reason.startswith("score distribution failed")


def test_alert_volume_holds_the_challenger_to_the_review_team() -> None:
    plan = replace(PLAN, alerts_per_hour=600.0)
    # 0.6 % of 180,000 transactions an hour is 1,080 alerts: within the flag band, over the team.
    decision = decide(plan, 1, window(requests=60_000, flag_rate=0.006))
    assert decision.action == "rollback"
    assert decision.reason.startswith("alert volume failed")
    assert decide(PLAN, 1, window(requests=60_000, flag_rate=0.006)).action == "advance"


def test_the_last_step_waits_for_labels_beyond_max_minutes() -> None:
    few = {"challenger": labelled(20, 0.1, 0.05), "champion": labelled(20, 0.9, 0.5)}
    decision = decide(PLAN, LAST, window(PLAN.max_minutes * 3, labels=few))
    assert decision.action == "hold"
    assert verdicts(decision)["recall"] == "inconclusive"
    assert "matured frauds" in decision.reason
    late = decide(PLAN, LAST, window(PLAN.label_wait_hours * 60 + 2, labels=few))
    assert late.action == "rollback"
    assert late.reason.startswith("inconclusive after")


def test_labels_below_min_frauds_never_pass_and_never_fail() -> None:
    few = {"challenger": labelled(PLAN.min_frauds - 1, 0.0, 0.01), "champion": labelled(29, 1.0, 0.9)}
    decision = decide(PLAN, 1, window(labels=few))
    assert decision.action == "advance"
    assert {verdicts(decision)[n] for n in ("recall", "precision")} == {"inconclusive"}


def test_promotion_needs_the_last_step_and_passing_labels() -> None:
    assert decide(PLAN, LAST, window(labels=GOOD_LABELS)).action == "promote"
    earlier = decide(PLAN, LAST - 1, window(labels=GOOD_LABELS))
    assert earlier.action == "advance"
    assert decide(PLAN, LAST, window()).action == "hold"


def test_clearly_inferior_labels_roll_back_at_any_step() -> None:
    worse = {"challenger": labelled(2000, 0.5, 0.32), "champion": labelled(2000, 0.8, 0.32)}
    decision = decide(PLAN, 1, window(labels=worse))
    assert decision.action == "rollback"
    assert decision.reason.startswith("recall failed")


def test_paired_labels_decide_recall_on_the_discordant_frauds() -> None:
    # On the same 6,000 frauds the challenger missed 600 the champion caught and caught only 100
    # the champion missed: 8 points less recall, beyond the 5-point margin.
    pairs = PairedLabels(6000, champion_only_caught=600, challenger_only_caught=100, champion_only_false=0,
                         challenger_only_false=0)  # fmt: skip
    decision = decide(PLAN, LAST, window(paired_labels=pairs))
    recall = next(c for c in decision.checks if c.name == "recall")
    assert recall.verdict == "fail"
    assert "paired on 6,000 frauds" in recall.detail


def test_inferior_precision_rolls_back() -> None:
    worse = {"challenger": labelled(3000, 0.8, 0.2), "champion": labelled(3000, 0.8, 0.32)}
    assert decide(PLAN, LAST, window(labels=worse)).reason.startswith("precision failed")


def test_every_check_shows_its_value_and_limit() -> None:
    decision = decide(PLAN, 1, window(errors=0.011))
    error = next(c for c in decision.checks if c.name == "error ratio")
    assert error.value == pytest.approx(0.011, abs=1e-3)
    assert error.baseline == pytest.approx(0.001, abs=1e-4)
    assert "0.002" in str(error.limit)
    assert {c.layer for c in decision.checks} == {"service", "behaviour", "labels"}


def test_the_budget_is_split_over_every_test_that_can_roll_back() -> None:
    assert check_alpha(PLAN) * (4 * len(PLAN.steps) + 2) == pytest.approx(PLAN.alpha)
    assert check_alpha(replace(PLAN, alerts_per_hour=100.0)) < check_alpha(PLAN)


def test_a_missing_role_is_inconclusive_not_an_error() -> None:
    decision = decide(PLAN, 1, window(service={}, behaviour={}))
    assert decision.action == "hold"
    assert verdicts(decision)["error ratio"] == "inconclusive"


def test_a_step_outside_the_plan_is_refused() -> None:
    with pytest.raises(UsageError, match="step 5"):
        decide(PLAN, len(PLAN.steps), window())


def test_a_clean_challenger_looked_at_every_pass_is_rarely_rolled_back() -> None:
    """200 seeded 5 % steps of 30 passes each, the window growing every pass as in a live step."""
    rng = np.random.default_rng(11)
    paths, passes, per_pass = 200, 30, 300
    rolled_back = 0
    for _ in range(paths):
        counts = np.zeros(5)
        for look in range(1, passes + 1):
            champion = 19 * per_pass
            counts += [
                *rng.binomial(per_pass, [0.001, 0.01, 0.005]),
                *rng.binomial(champion, [0.001, 0.01]),
            ]
            ch_err, ch_slow, ch_flag, cm_err, cm_slow = counts.tolist()
            n = look * per_pass
            m = window(
                2 * look,
                service={
                    "challenger": ServiceCounts(n, ch_err, ch_slow),
                    "champion": ServiceCounts(19 * n, cm_err, cm_slow),
                },
                behaviour={
                    "challenger": Behaviour(n, int(ch_flag), behaviour(n, ch_flag / n).score_bins),
                    "champion": behaviour(19 * n, 0.005),
                },
            )
            if decide(PLAN, 1, m).action == "rollback":
                rolled_back += 1
                break
    assert rolled_back / paths <= PLAN.alpha + 3 * (PLAN.alpha / paths) ** 0.5
