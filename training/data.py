"""Load and check transaction data in the public credit-card fraud schema; split it reproducibly."""

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from fraudcore.errors import DataValidationError
from fraudcore.registry import Registry
from fraudcore.schema import COLUMNS, FEATURES, LABEL
from training.synthetic import FRAUD_RATE, SCENARIOS, generate


def load_csv(path: Path, *, labels_optional: bool = False) -> pd.DataFrame:
    """Read a CSV with the columns `Time, V1..V28, Amount, Class` and check it; with
    `labels_optional` a file without the `Class` column is accepted too."""
    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as e:
        raise DataValidationError(f"{path}: no such file") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataValidationError(f"{path}: not a readable CSV file ({e})") from e
    labelled = LABEL in frame.columns or not labels_optional
    return validate(frame, source=str(path), labelled=labelled)


def validate(frame: pd.DataFrame, source: str = "data", labelled: bool = True) -> pd.DataFrame:
    """Return the frame in canonical column order, or raise naming the first problem found."""
    expected = COLUMNS if labelled else FEATURES
    missing = [c for c in expected if c not in frame.columns]
    extra = [c for c in frame.columns if c not in expected]
    if missing:
        raise DataValidationError(f"{source}: missing column(s) {', '.join(missing)}")
    if extra:
        raise DataValidationError(f"{source}: unexpected column(s) {', '.join(map(str, extra))}")
    if frame.empty:
        raise DataValidationError(f"{source}: no rows")
    non_numeric = [c for c in expected if not pd.api.types.is_numeric_dtype(frame[c])]
    if non_numeric:
        raise DataValidationError(f"{source}: non-numeric values in column(s) {', '.join(non_numeric)}")
    values = frame[list(expected)].to_numpy(np.float64)
    bad = ~np.isfinite(values)
    if bad.any():
        row, col = np.argwhere(bad)[0]
        raise DataValidationError(
            f"{source}: {int(bad.sum())} missing or infinite value(s), first in column "
            f"{expected[col]} at row {row + 1}"
        )
    if labelled:
        labels = set(np.unique(frame[LABEL]).tolist())
        if not labels <= {0, 1}:
            wrong = sorted(labels - {0, 1})[:5]
            raise DataValidationError(f"{source}: column Class must hold 0 or 1, found {wrong}")
    return frame[list(expected)].reset_index(drop=True)


def fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash, logged with every training run."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Features as float32 matrices in canonical order, labels as int arrays."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray


def split(frame: pd.DataFrame, holdout: float = 0.2, valid: float = 0.15) -> Split:
    """Train / validation (threshold choice) / holdout (gate), each row placed by a hash of its values.

    A row keeps its part whatever else the data holds, so when retraining adds rows to the
    champion's data, none of the champion's training rows reaches the new holdout the two are
    compared on (a shuffled split would leak them and favour the champion). Each class is spread
    over the parts in the same shares, in expectation."""
    x = frame[list(FEATURES)].to_numpy(np.float32)
    y = frame[LABEL].to_numpy(np.int64)
    if y.sum() < 10:
        raise DataValidationError(f"only {int(y.sum())} fraud rows: at least 10 are needed to train")
    digest = pd.util.hash_pandas_object(frame[list(COLUMNS)], index=False).to_numpy()
    position = digest / np.float64(2**64)
    part = np.searchsorted([1 - holdout - valid, 1 - holdout], position, side="right")
    masks = [part == index for index in range(3)]
    for name, rows in zip(("training", "validation", "holdout"), masks, strict=True):
        frauds, total = int(y[rows].sum()), int(rows.sum())
        if frauds in (0, total):
            raise DataValidationError(
                f"the {name} part has {frauds} fraud rows of {total}: both classes are needed, add data"
            )
    train, validation, test = masks
    return Split(x[train], y[train], x[validation], y[validation], x[test], y[test])


SYNTHETIC = "synthetic"
SOURCE_JOIN = " + "


def synthetic_source(
    rows: int, seed: int, scenario: str | None = None, fraud_rate: float | None = None
) -> str:
    """The data-source string that `load_source` turns back into the same generated data."""
    source = f"{SYNTHETIC}:rows={rows},seed={seed}"
    if fraud_rate is not None:
        source += f",fraud_rate={fraud_rate}"
    return f"{source},scenario={scenario}" if scenario else source


def load_source(source: str, registry: Registry | None = None) -> pd.DataFrame:
    """A CSV path, `synthetic:rows=N,seed=S[,fraud_rate=R][,scenario=NAME]` (generated data),
    `runs:/<run id>/<file>` (a CSV logged to the registry's MLflow store), or several of these
    joined by ` + ` (concatenated in order, exact duplicate rows dropped)."""
    if SOURCE_JOIN in source:
        parts = [load_source(part, registry) for part in source.split(SOURCE_JOIN)]
        return pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    if source.startswith("runs:/"):
        if registry is None:
            raise DataValidationError(f"data source {source} needs an MLflow store to download from")
        return load_csv(registry.download(source))
    if not source.startswith(f"{SYNTHETIC}:"):
        return load_csv(Path(source))
    try:
        options = dict(part.split("=", 1) for part in source.split(":", 1)[1].split(","))
        rows, seed = int(options.pop("rows")), int(options.pop("seed"))
        scenario = options.pop("scenario", None)
        fraud_rate = float(options.pop("fraud_rate", FRAUD_RATE))
        if options:
            raise ValueError(f"unknown option(s) {', '.join(options)}")
    except (KeyError, ValueError) as e:
        raise DataValidationError(
            f"data source {source!r} is not synthetic:rows=N,seed=S[,fraud_rate=R][,scenario=NAME] ({e})"
        ) from e
    if scenario is not None and scenario not in SCENARIOS:
        raise DataValidationError(f"unknown scenario {scenario!r}; known: {', '.join(SCENARIOS)}")
    return generate(rows=rows, seed=seed, fraud_rate=fraud_rate, scenario=scenario)
