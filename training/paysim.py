"""A seeded generator of mobile-money transactions in the style of PaySim (Lopez-Rojas et al., 2016).

PaySim simulates a month of a mobile-money service hour by hour: customers cash in at agents, pay
merchants, cash out, send money to each other and now and then debit to a bank. A fraudster takes
over an account and moves its balance out, so fraud happens only in TRANSFER and CASH_OUT and
typically empties the origin account, at any hour of the day; its ledgers often do not add up at the
destination (mule accounts show no balance). Merchants are not tracked: a PAYMENT's destination
balances are 0.

To keep the problem learnable but not trivially separable, each tell of fraud also shows in
legitimate traffic (accounts emptied on purpose, destinations and origins the ledger does not know,
night-time transfers) and some frauds lack it (partial withdrawals, mules with a booked balance):
no single column or rule separates the classes.

Drift scenarios change what is drawn, not a finished matrix as the credit-card generator's do
(training/synthetic.py): a new mix of transaction types needs rows drawn for their new types, and
balances inflated after the fact would no longer add up.
"""

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = (
    "step",
    "type",
    "amount",
    "oldbalanceOrg",
    "newbalanceOrig",
    "oldbalanceDest",
    "newbalanceDest",
)
LABEL = "isFraud"
COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)

FRAUD_RATE = 0.0013
DAYS = 31
"""Simulated days: `step` counts hours from 1 to 24 * DAYS."""

# Share of rows, and mean and spread of log(amount), after PaySim's shares and median amounts.
_TYPES: dict[str, tuple[float, float, float]] = {
    "CASH_IN": (0.22, 11.85, 0.9),
    "CASH_OUT": (0.35, 11.9, 0.9),
    "DEBIT": (0.01, 8.0, 1.0),
    "PAYMENT": (0.34, 9.15, 0.9),
    "TRANSFER": (0.08, 13.1, 1.1),
}
TYPES: tuple[str, ...] = tuple(_TYPES)
TYPE_SHARES: dict[str, float] = {name: share for name, (share, _, _) in _TYPES.items()}
_CASH_IN, _CASH_OUT, _PAYMENT, _TRANSFER = (
    TYPES.index(t) for t in ("CASH_IN", "CASH_OUT", "PAYMENT", "TRANSFER")
)
_LOG_MEAN = np.array([mean for _, mean, _ in _TYPES.values()])
_LOG_SPREAD = np.array([spread for _, _, spread in _TYPES.values()])

# Customers sleep at night; PaySim's fraud is spread evenly over the hours, so at night it stands out.
_HOURLY = np.array([2, 1, 1, 1, 1, 2, 4, 8, 14, 18, 20, 20, 20, 20, 20, 19, 18, 18, 18, 17, 15, 12, 8, 4])
_HOURLY = _HOURLY / _HOURLY.sum()

# How often the ledger's quirks show, in legitimate TRANSFER/CASH_OUT rows and in fraud.
_LEGIT_EMPTIES = 0.02
_LEGIT_ORIGIN_UNKNOWN = 0.08
_LEGIT_DEST_UNTRACKED = 0.03
_FRAUD_EMPTIES = 0.85
_FRAUD_DEST_UNTRACKED = 0.6
_DEST_BALANCE = (12.0, 1.8)  # mean and spread of the log of a destination account's balance


class _Ledger(NamedTuple):
    """What is drawn per row before scaling and rounding; the new balances follow from it."""

    kind: np.ndarray
    amount: np.ndarray
    old_org: np.ndarray
    old_dest: np.ndarray
    origin_known: np.ndarray
    dest_tracked: np.ndarray


def _legit(rng: np.random.Generator, n: int, shares: np.ndarray) -> _Ledger:
    kind = rng.choice(len(TYPES), size=n, p=shares)
    amount = rng.lognormal(_LOG_MEAN[kind], _LOG_SPREAD[kind])
    kept = rng.lognormal(10.5, 1.6, n)  # what the origin holds besides the amount (all, on a CASH_IN)
    dest = rng.lognormal(*_DEST_BALANCE, n)
    chance = rng.random((3, n))
    moves_out = (kind == _CASH_OUT) | (kind == _TRANSFER)
    empties = moves_out & (chance[0] < _LEGIT_EMPTIES)
    old_org = np.where(kind == _CASH_IN, kept, amount + np.where(empties, 0.0, kept))
    # An agent paying out a CASH_IN holds at least the amount.
    old_dest = np.where(kind == _CASH_IN, dest + amount, dest)
    origin_known = ~(moves_out & (chance[1] < _LEGIT_ORIGIN_UNKNOWN))
    dest_tracked = (kind != _PAYMENT) & ~(moves_out & (chance[2] < _LEGIT_DEST_UNTRACKED))
    return _Ledger(kind, amount, old_org, old_dest, origin_known, dest_tracked)


def _fraud(rng: np.random.Generator, n: int) -> _Ledger:
    kind = rng.choice([_CASH_OUT, _TRANSFER], size=n)
    balance = rng.lognormal(12.4, 1.3, n)
    taken = np.where(rng.random(n) < _FRAUD_EMPTIES, 1.0, rng.uniform(0.3, 0.95, n))
    dest = rng.lognormal(*_DEST_BALANCE, n)
    dest_tracked = rng.random(n) >= _FRAUD_DEST_UNTRACKED
    return _Ledger(kind, balance * taken, balance, dest, np.ones(n, bool), dest_tracked)


def _steps(rng: np.random.Generator, n: int, hourly: np.ndarray | None) -> np.ndarray:
    """Hours of the simulation, 1 to 24 * DAYS; `hourly` weighs the hours of a day (None: evenly)."""
    hour = rng.choice(24, size=n, p=hourly)
    return rng.integers(0, DAYS, n) * 24 + hour + 1


def _settle(ledger: _Ledger, scale: np.ndarray | float) -> dict[str, np.ndarray]:
    """Money columns in cents: the new balances follow from the rounded old ones and the amount."""
    amount = np.round(ledger.amount * scale, 2)
    old_org = np.where(ledger.origin_known, np.round(ledger.old_org * scale, 2), 0.0)
    old_dest = np.where(ledger.dest_tracked, np.round(ledger.old_dest * scale, 2), 0.0)
    cash_in = ledger.kind == _CASH_IN
    new_org = np.round(old_org + np.where(cash_in, amount, -amount), 2)
    new_dest = np.round(old_dest + np.where(cash_in, -amount, amount), 2)
    return {
        "amount": amount,
        "oldbalanceOrg": old_org,
        "newbalanceOrig": np.where(ledger.origin_known, new_org, 0.0),
        "oldbalanceDest": old_dest,
        "newbalanceDest": np.where(ledger.dest_tracked, new_dest, 0.0),
    }


def generate(
    rows: int,
    *,
    seed: int,
    fraud_rate: float = FRAUD_RATE,
    scenario: str | None = None,
) -> pd.DataFrame:
    """Make `rows` transactions in `COLUMNS` order, sorted by step."""
    if rows <= 0:
        raise ValueError("rows must be positive")
    rng = np.random.default_rng(seed)
    spec = SCENARIOS[scenario] if scenario else Scenario("as trained")
    n_fraud = max(1, round(rows * fraud_rate))
    legit, fraud = _legit(rng, rows - n_fraud, spec.shares()), _fraud(rng, n_fraud)
    ledger = _Ledger(*(np.concatenate(parts) for parts in zip(legit, fraud, strict=True)))
    step = np.concatenate([_steps(rng, rows - n_fraud, _HOURLY), _steps(rng, n_fraud, None)])
    # Shuffled before the stable sort, so that within an hour frauds do not all come last.
    order = rng.permutation(rows)
    order = order[np.argsort(step[order], kind="stable")]
    # Drawn last, so that an inflated window has the same rows as the clean one, only richer.
    scale = rng.uniform(*spec.inflation, rows) if spec.inflation else 1.0
    frame = pd.DataFrame(
        {
            "step": step,
            "type": np.array(TYPES, dtype=object)[ledger.kind],
            **_settle(ledger, scale),
            LABEL: np.repeat(np.array([0, 1]), [rows - n_fraud, n_fraud]),
        }
    )
    return frame.iloc[order].reset_index(drop=True)


@dataclass(frozen=True)
class Scenario:
    """A named change of the traffic after training, as a change of what is drawn."""

    description: str
    type_weights: Mapping[str, float] = field(default_factory=dict)
    """Factors on the types' shares (renormalised); a type not named keeps its weight."""
    inflation: tuple[float, float] | None = None
    """Range of a per-row factor on the amount and every balance."""

    def shares(self) -> np.ndarray:
        """The probability of each of TYPES for a legitimate row."""
        weights = np.array([TYPE_SHARES[t] * self.type_weights.get(t, 1.0) for t in TYPES])
        return weights / weights.sum()


SCENARIOS: dict[str, Scenario] = {
    "type-mix-shift": Scenario(
        "categorical shift: TRANSFER three times as frequent (8 % of rows -> 21 %), each type as before",
        type_weights={"TRANSFER": 3.0},
    ),
    "amount-inflation": Scenario(
        "covariate shift: amounts and balances grow 1.6-2.2x, the same rows otherwise",
        inflation=(1.6, 2.2),
    ),
}
