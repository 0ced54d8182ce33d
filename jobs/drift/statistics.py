"""The per-column two-sample tests of a drift check and the one correction over the whole family.

Two backends give the same answer. `alibi-detect` runs its `TabularDrift`; from 0.11.5 on
alibi-detect is under the Business Source License 1.1, which a bank may not run in production
without a commercial licence, so `scipy` runs the same tests with SciPy alone and never imports
alibi-detect. It follows `TabularDrift` choice for choice: a two-sided asymptotic Kolmogorov-Smirnov
test per numeric column; per categorical column Pearson's chi-square on the 2 x k table of category
counts (reference row, window row; Yates' correction when k = 2, as `chi2_contingency` does by
default); then Bonferroni (threshold p / n) or Benjamini-Hochberg (`alibi_detect.utils.statstest.fdr`).

Categorical columns hold integer codes 0 .. n-1, with `categories[column] = n`; a caller that maps
values unseen in training, or missing ones, to an extra code n passes n + 1. A category absent from
both samples carries no evidence and would leave an expected count of zero, so the table holds only
the categories seen in either sample (alibi-detect counts the same ones when it infers them).
"""

import logging
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np
from scipy.stats import chi2_contingency, ks_2samp

from fraudcore.settings import DriftBackend as Backend
from fraudcore.settings import DriftCorrection as Correction

Kind = Literal["numeric", "categorical"]


@dataclass(frozen=True)
class ColumnTests:
    """One test per column, in column order, and the family-wise verdict.

    `threshold` is the level each p-value is held against after the correction; a column drifted when
    its p-value is below it, and the check detected drift when any column did.
    """

    p_values: np.ndarray
    distances: np.ndarray
    drifted: np.ndarray
    threshold: float
    detected: bool


def compare_columns(
    reference: np.ndarray,
    window: np.ndarray,
    kinds: Sequence[Kind],
    *,
    categories: Mapping[int, int] | None = None,
    correction: Correction,
    p_value: float,
    backend: Backend,
) -> ColumnTests:
    """Test each column of `window` against the same column of `reference` (float32 matrices).

    `kinds[i]` says how column i is tested; `categories` maps each categorical column's index to its
    number of codes (none when every column is numeric). `p_value` is the family-wise level.
    """
    categorical = _categories(reference, window, kinds, categories or {})
    if backend == "alibi-detect":
        return _alibi_detect(reference, window, categorical, correction, p_value)
    p_values, distances = _scipy(reference, window, categorical)
    threshold = _threshold(p_values, correction, p_value)
    drifted = p_values < threshold
    return ColumnTests(p_values, distances, drifted, threshold, bool(drifted.any()))


def _categories(
    reference: np.ndarray, window: np.ndarray, kinds: Sequence[Kind], categories: Mapping[int, int]
) -> dict[int, int]:
    """The categorical columns and their number of codes, after checking both matrices hold valid codes."""
    if not reference.shape[1] == window.shape[1] == len(kinds):
        raise ValueError(f"{len(kinds)} kinds for {reference.shape[1]} and {window.shape[1]} columns")
    categorical = [i for i, kind in enumerate(kinds) if kind == "categorical"]
    if sorted(categories) != categorical:
        raise ValueError(f"categories given for columns {sorted(categories)}, categorical: {categorical}")
    for i in categorical:
        codes = np.concatenate([reference[:, i], window[:, i]])
        if not np.all((codes >= 0) & (codes < categories[i]) & (codes == np.round(codes))):
            raise ValueError(f"column {i} holds values that are not codes 0 .. {categories[i] - 1}")
    return {i: categories[i] for i in categorical}


def _scipy(
    reference: np.ndarray, window: np.ndarray, categories: Mapping[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Each column's p-value and statistic (KS distance or chi-square), in float64."""
    tests = []
    for i in range(reference.shape[1]):
        if i in categories:
            table = np.vstack(
                [np.bincount(x[:, i].astype(np.int64), minlength=categories[i]) for x in (reference, window)]
            )
            statistic, p, _, _ = chi2_contingency(table[:, table.any(axis=0)])
        else:
            statistic, p = ks_2samp(reference[:, i], window[:, i], alternative="two-sided", method="asymp")
        tests.append((p, statistic))
    p_values, distances = np.array(tests, dtype=np.float64).T
    return p_values, distances


def _threshold(p_values: np.ndarray, correction: Correction, level: float) -> float:
    """Bonferroni: `level / n`. Benjamini-Hochberg as alibi-detect does it: the largest `level * i / n`
    that the i-th smallest p-value is (strictly) below, or `level / n`, which none is then below."""
    limits = level * np.arange(1, len(p_values) + 1) / len(p_values)
    if correction == "bonferroni":
        return float(limits[0])
    below = np.flatnonzero(np.sort(p_values) < limits)
    return float(limits[below[-1]] if below.size else limits[0])


def _alibi_detect(
    reference: np.ndarray,
    window: np.ndarray,
    categories: Mapping[int, int],
    correction: Correction,
    p_value: float,
) -> ColumnTests:
    quiet_alibi_detect()
    from alibi_detect.cd import TabularDrift  # heavy import, only where it is needed

    # None: alibi-detect reads the categories from the reference and adds the window's, so none absent
    # from both enters the table. Given the number of codes it would count every code, and
    # chi2_contingency raises on the empty column of a code neither sample holds.
    inferred = dict.fromkeys(categories)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        detector = TabularDrift(
            reference, p_val=p_value, categories_per_feature=inferred, correction=correction
        )
        found = detector.predict(window)["data"]
    # Benjamini-Hochberg with no p-value below its limit returns every limit; the smallest, level / n,
    # is the threshold (no p-value is below it either), as in `_threshold`.
    threshold = float(np.min(found["threshold"]))
    p_values = np.asarray(found["p_val"], dtype=np.float64)
    return ColumnTests(
        p_values=p_values,
        distances=np.asarray(found["distance"], dtype=np.float64),
        drifted=p_values < threshold,
        threshold=threshold,
        detected=bool(found["is_drift"]),
    )


@cache
def quiet_alibi_detect() -> None:
    """alibi-detect imports transformers, which resets its own logger's level when imported: filter
    both loggers, once per process."""
    for noisy in ("alibi_detect", "transformers"):
        logging.getLogger(noisy).addFilter(lambda record: record.levelno >= logging.ERROR)
