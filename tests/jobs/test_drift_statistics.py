"""Per-column tests: the SciPy backend answers as alibi-detect's `TabularDrift` does, without it."""

import json
import subprocess
import sys
from itertools import product
from pathlib import Path
from typing import get_args

import numpy as np
import pytest

from jobs.drift.statistics import Backend, ColumnTests, Correction, Kind, compare_columns

KINDS: tuple[Kind, ...] = ("numeric", "numeric", "numeric", "numeric", "categorical", "categorical")
CATEGORIES = {4: 5, 5: 2}
"""Column 4: four categories and the extra code for values unseen in training (absent from the
reference); column 5: two categories, so its chi-square has one degree of freedom (Yates)."""
MIX = {4: (0.4, 0.3, 0.2, 0.1, 0.0), 5: (0.7, 0.3)}
LEVEL = 0.01
BACKENDS: tuple[Backend, ...] = get_args(Backend)
CORRECTIONS: tuple[Correction, ...] = get_args(Correction)
FLOAT32_TINY = float(np.finfo(np.float32).tiny)
"""alibi-detect keeps p-values in float32: below its smallest normal number they lose precision or read 0."""


def sample(
    seed: int,
    rows: int,
    shift: dict[int, float] | None = None,
    mix: dict[int, tuple[float, ...]] | None = None,
) -> np.ndarray:
    """Standard normal numeric columns (means moved by `shift`) and categorical codes drawn from `MIX`
    (or `mix`), as float32 like the drift check's matrices."""
    rng = np.random.default_rng(seed)
    means = [(shift or {}).get(i, 0.0) for i in range(4)]
    mixes = {**MIX, **(mix or {})}
    numeric = rng.normal(loc=means, size=(rows, 4))
    codes = [rng.choice(len(mixes[i]), size=rows, p=mixes[i]) for i in (4, 5)]
    return np.column_stack([numeric, *codes]).astype(np.float32)


REFERENCE = sample(0, 5_000)
WINDOWS = {
    "clean": sample(1, 2_000),
    "numeric shift": sample(2, 2_000, shift={1: 0.25}),
    "small shifts": sample(9, 2_000, shift={0: 0.1, 1: 0.1, 2: 0.1}),
    "category mix": sample(4, 2_000, mix={5: (0.6, 0.4)}),
    "unseen category": sample(5, 2_000, mix={4: (0.35, 0.3, 0.2, 0.1, 0.05)}),
}


def compare(window: str, correction: Correction, backend: Backend) -> ColumnTests:
    return compare_columns(
        REFERENCE,
        WINDOWS[window],
        KINDS,
        categories=CATEGORIES,
        correction=correction,
        p_value=LEVEL,
        backend=backend,
    )


@pytest.mark.parametrize(("window", "correction"), list(product(WINDOWS, CORRECTIONS)))
def test_backends_agree(window: str, correction: Correction) -> None:
    alibi, scipy = (compare(window, correction, backend) for backend in BACKENDS)
    np.testing.assert_allclose(scipy.p_values, alibi.p_values, rtol=1e-6, atol=FLOAT32_TINY)
    np.testing.assert_allclose(scipy.distances, alibi.distances, rtol=1e-6)
    assert scipy.threshold == pytest.approx(alibi.threshold, rel=1e-9)
    assert scipy.drifted.tolist() == alibi.drifted.tolist()
    assert scipy.detected == alibi.detected


@pytest.mark.parametrize(("backend", "correction"), list(product(BACKENDS, CORRECTIONS)))
def test_clean_window_does_not_drift(backend: Backend, correction: Correction) -> None:
    found = compare("clean", correction, backend)
    assert not found.detected
    assert not found.drifted.any()
    assert found.p_values.min() > found.threshold


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize(
    ("window", "column"), [("numeric shift", 1), ("category mix", 5), ("unseen category", 4)]
)
def test_shifted_window_names_the_shifted_column(backend: Backend, window: str, column: int) -> None:
    found = compare(window, "bonferroni", backend)
    assert found.detected
    assert np.flatnonzero(found.drifted).tolist() == [column]
    assert found.threshold == pytest.approx(LEVEL / len(KINDS))


@pytest.mark.parametrize("backend", BACKENDS)
def test_fdr_rejects_more_than_bonferroni_on_many_small_shifts(backend: Backend) -> None:
    bonferroni, fdr = (compare("small shifts", correction, backend) for correction in CORRECTIONS)
    assert set(np.flatnonzero(bonferroni.drifted)) < set(np.flatnonzero(fdr.drifted)) <= {0, 1, 2}
    # Benjamini-Hochberg: the limit of the largest rank whose p-value is below its own limit.
    rejected = int(fdr.drifted.sum())
    assert fdr.threshold == pytest.approx(LEVEL * rejected / len(KINDS))
    assert fdr.threshold > bonferroni.threshold


@pytest.mark.parametrize("backend", BACKENDS)
def test_codes_outside_the_declared_categories_are_refused(backend: Backend) -> None:
    window = WINDOWS["unseen category"]
    with pytest.raises(ValueError, match=r"column 4 holds values that are not codes 0 \.\. 3"):
        compare_columns(
            REFERENCE,
            window,
            KINDS,
            categories={4: 4, 5: 2},
            correction="fdr",
            p_value=LEVEL,
            backend=backend,
        )


def test_scipy_backend_never_imports_alibi_detect() -> None:
    """In a fresh interpreter: the drift package and a SciPy check leave alibi-detect unimported (the
    alibi-detect backend afterwards shows the probe can see it)."""
    probe = """
import json, sys
import numpy as np
import jobs.drift
from jobs.drift.statistics import compare_columns

def loaded():
    return sorted(name for name in sys.modules if name.split(".")[0] == "alibi_detect")

x = np.random.default_rng(0).normal(size=(500, 2)).astype(np.float32)
runs = {}
for backend in ("scipy", "alibi-detect"):
    found = compare_columns(x, x + 1, ["numeric", "numeric"], correction="bonferroni", p_value=0.01,
                            backend=backend)
    runs[backend] = {"detected": found.detected, "alibi_detect_modules": len(loaded())}
print(json.dumps(runs))
"""
    root = Path(__file__).parents[2]
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, timeout=300, check=True
    )
    runs = json.loads(done.stdout.strip().splitlines()[-1])
    assert runs["scipy"] == {"detected": True, "alibi_detect_modules": 0}
    assert runs["alibi-detect"]["detected"] is True
    assert runs["alibi-detect"]["alibi_detect_modules"] > 0
