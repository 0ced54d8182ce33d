"""A seeded generator of transactions with the public credit-card fraud data set's schema.

Legitimate transactions are Gaussian in V1..V28 with decreasing variance (the public set's columns
are PCA components), a lognormal Amount and a day/night rhythm in Time over two days. Fraud is a
mixture of three patterns: a linear shift along the directions the public set is known for (V14,
V12, V10, V17 low; V4, V11 high), a non-linear pattern that only trees can use (V7 and V21
unusually far from zero in either direction), and a camouflaged share that looks almost
legitimate. Together they make a problem that is learnable but not trivially separable.

Drift scenarios reshape a window the same way real traffic might change after training.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURES: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")
LABEL = "Class"
KAGGLE_ROWS = 284_807
FRAUD_RATE = 0.00172

_SCALES = np.linspace(1.9, 0.3, 28)
_DIRECTION = np.zeros(28)
for _name, _weight in {
    "V14": -1.0,
    "V12": -0.8,
    "V10": -0.7,
    "V17": -0.9,
    "V4": 0.7,
    "V11": 0.6,
    "V3": -0.5,
    "V16": -0.4,
}.items():
    _DIRECTION[int(_name[1:]) - 1] = _weight
# math.hypot, not np.linalg.norm: the BLAS kernel OpenBLAS picks per CPU changes the last bits of a
# norm, and with them the bytes of every generated row.
_DIRECTION /= math.hypot(*_DIRECTION)


def _legit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, 28)) * _SCALES
    hours = rng.choice(48, size=n, p=_hourly_weights(night_boost=1.0))
    time = hours * 3600.0 + rng.uniform(0, 3600, n)
    amount = np.round(rng.lognormal(3.0, 1.25, n), 2)
    return np.column_stack([time, v, amount])


def _fraud(rng: np.random.Generator, n: int) -> np.ndarray:
    rows = _legit(rng, n)
    v = rows[:, 1:29]
    kind = rng.choice(3, size=n, p=[0.68, 0.21, 0.11])
    linear, nonlinear, camouflaged = kind == 0, kind == 1, kind == 2
    strength = rng.uniform(1.5, 6.0, size=(n, 1))
    v[linear] += (strength * _DIRECTION * _SCALES)[linear] * 1.6
    sign = rng.choice([-1.0, 1.0], size=(n, 2))
    v[nonlinear, 6] = (sign[:, 0] * rng.uniform(2.5, 4.5, n) * _SCALES[6])[nonlinear]
    v[nonlinear, 20] = (sign[:, 1] * rng.uniform(2.5, 4.5, n) * _SCALES[20])[nonlinear]
    v[nonlinear] += 1.6 * _DIRECTION * _SCALES
    v[camouflaged] += 1.0 * _DIRECTION * _SCALES
    small = rng.random(n) < 0.4
    rows[:, 29] = np.where(small, np.round(rng.uniform(0.5, 3.0, n), 2), rows[:, 29] * 1.8)
    hours = rng.choice(48, size=n, p=_hourly_weights(night_boost=3.0))
    rows[:, 0] = hours * 3600.0 + rng.uniform(0, 3600, n)
    return rows


def _hourly_weights(night_boost: float) -> np.ndarray:
    hour_of_day = np.arange(48) % 24
    weights = np.where((hour_of_day >= 1) & (hour_of_day < 7), 0.25 * night_boost, 1.0)
    return weights / weights.sum()


def generate(
    rows: int = KAGGLE_ROWS,
    *,
    seed: int,
    fraud_rate: float = FRAUD_RATE,
    scenario: str | None = None,
) -> pd.DataFrame:
    """Make `rows` transactions, sorted by Time, with the exact column set of the public data."""
    if rows <= 0:
        raise ValueError("rows must be positive")
    rng = np.random.default_rng(seed)
    spec = SCENARIOS[scenario] if scenario else None
    rate = spec.fraud_rate if spec and spec.fraud_rate is not None else fraud_rate
    n_fraud = max(1, round(rows * rate))
    x = np.vstack([_legit(rng, rows - n_fraud), _fraud(rng, n_fraud)])
    y = np.concatenate([np.zeros(rows - n_fraud, np.int64), np.ones(n_fraud, np.int64)])
    if spec:
        x = spec.apply(rng, x, y)
    order = np.argsort(x[:, 0], kind="stable")
    frame = pd.DataFrame(x[order], columns=list(FEATURES))
    frame[LABEL] = y[order]
    return frame


@dataclass(frozen=True)
class Scenario:
    """A named change of the traffic after training."""

    description: str
    apply: Callable[[np.random.Generator, np.ndarray, np.ndarray], np.ndarray]
    fraud_rate: float | None = None


def _amount_inflation(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x.copy()
    x[:, 29] = np.round(x[:, 29] * rng.uniform(1.6, 2.2, len(x)), 2)
    x[:, 1] += 0.25 * _SCALES[0]
    return x


def _new_fraud_pattern(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    x = x.copy()
    fraud = y == 1
    shift = np.zeros(28)
    shift[[0, 1, 4]] = [-3.5, 3.0, -3.0]
    x[fraud, 1:29] = rng.standard_normal((int(fraud.sum()), 28)) * _SCALES + shift * _SCALES
    x[fraud, 29] = np.round(rng.lognormal(5.5, 0.5, int(fraud.sum())), 2)
    return x


SCENARIOS: dict[str, Scenario] = {
    "amount-inflation": Scenario(
        "covariate shift: amounts grow 1.6-2.2x and V1 moves, fraud itself unchanged",
        _amount_inflation,
    ),
    "new-fraud-pattern": Scenario(
        "fraudsters adapt: a wave of 8 % fraud in a pattern the model never saw (V1, V2, V5, large amounts)",
        _new_fraud_pattern,
        fraud_rate=0.08,
    ),
}
