"""Load transaction data of any tabular schema, infer and check its schema, split it reproducibly."""

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from fraudcore.errors import DataValidationError
from fraudcore.registry import Registry
from fraudcore.schema import BOOLEAN_WORDS, DEFAULT_LABEL, Feature, Kind, Schema
from training import paysim, synthetic

MAX_TEXT_SHARE_OF_NUMBERS = 0.95
"""A text column whose values are numbers at least this often is a numeric column with typos."""


def load_table(path: Path, dtypes: Mapping[str, str] | None = None) -> pd.DataFrame:
    """Read a CSV (or, named `*.parquet`, a Parquet file) as it is, columns named in `dtypes` as that
    type; one line for a bad file."""
    parquet = path.suffix == ".parquet"
    try:
        if parquet:
            frame = pd.read_parquet(path)
            text = [c for c in dtypes or {} if c in frame.columns]
            frame[text] = frame[text].astype(object).where(frame[text].isna(), frame[text].astype(str))
        else:
            frame = pd.read_csv(path, dtype=dict(dtypes or {}), keep_default_na=True)
    except FileNotFoundError as e:
        raise DataValidationError(f"{path}: no such file") from e
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, ValueError, OSError) as e:
        kind = "Parquet" if parquet else "CSV"
        raise DataValidationError(f"{path}: not a readable {kind} file ({e})") from e
    if frame.empty:
        raise DataValidationError(f"{path}: no rows")
    return frame


def load_schema_file(path: Path) -> Schema:
    """A schema file (YAML or JSON): `label`, and `features` listing the columns whose kind,
    categories or optionality are declared rather than inferred."""
    try:
        raw = yaml.safe_load(path.read_text())
        if not isinstance(raw, dict):
            raise ValueError("the file must hold a mapping with 'label' and 'features'")
        return Schema.from_dict(raw)
    except OSError as e:
        raise DataValidationError(f"{path}: cannot read the schema file ({e.strerror})") from e
    except (yaml.YAMLError, ValueError) as e:
        raise DataValidationError(f"{path}: not a schema file ({e})") from e


def infer_schema(
    frame: pd.DataFrame, label: str = DEFAULT_LABEL, declared: Schema | None = None, source: str = "data"
) -> Schema:
    """The schema of a training frame: every column but the label is a feature, its kind inferred from
    its values (numbers → numeric, text → categorical, only 0/1 or true/false → boolean) unless
    `declared` names it; declared categories are the only ones allowed. Raises naming the problem."""
    if label not in frame.columns:
        raise DataValidationError(f"{source}: no label column {label!r} (name it with --label)")
    given = {f.name: f for f in declared.features} if declared else {}
    absent = [name for name in given if name not in frame.columns]
    if absent:
        raise DataValidationError(f"{source}: declared feature(s) {', '.join(absent)} not in the data")
    features = tuple(
        _infer_feature(frame[column], given.get(column), source)
        for column in frame.columns
        if column != label
    )
    if not features:
        raise DataValidationError(f"{source}: no feature columns besides the label {label!r}")
    return Schema(features, label)


def _infer_feature(column: pd.Series, declared: Feature | None, source: str) -> Feature:
    name = str(column.name)
    present = column.dropna()
    if present.empty:
        raise DataValidationError(f"{source}: column {name} has no values")
    optional = (declared is not None and declared.optional) or len(present) < len(column)
    kind = declared.kind if declared else _kind_of(present, name, source)
    categories: tuple[str, ...] = ()
    if kind == "categorical":
        seen = tuple(sorted(present.astype(str).unique()))
        if declared and declared.categories:
            unknown = sorted(set(seen) - set(declared.categories))
            if unknown:
                raise DataValidationError(
                    f"{source}: column {name} holds {', '.join(map(repr, unknown[:5]))}, not among its "
                    "declared categories"
                )
            seen = declared.categories
        elif len(seen) == len(present) > 100:
            raise DataValidationError(
                f"{source}: column {name} has a different value on every row (an identifier?): drop it"
            )
        categories = seen
    return Feature(name, kind, categories, optional)


def _kind_of(present: pd.Series, name: str, source: str) -> Kind:
    if _as_boolean(present) is not None:
        return "boolean"
    if pd.api.types.is_numeric_dtype(present):
        return "numeric"
    numbers = pd.to_numeric(present, errors="coerce")
    if numbers.notna().mean() >= MAX_TEXT_SHARE_OF_NUMBERS:
        first = present[numbers.isna()].iloc[0]
        raise DataValidationError(
            f"{source}: column {name} holds numbers but {int(numbers.isna().sum())} value(s) are not "
            f"(first {first!r}); fix them or declare {name} categorical in --schema"
        )
    return "categorical"


def _as_boolean(values: pd.Series) -> pd.Series | None:
    """0/1, true/false (any case) or bool values as float 0/1; None when they are anything else."""
    if pd.api.types.is_bool_dtype(values):
        return values.astype(np.float64)
    if pd.api.types.is_numeric_dtype(values):
        return values.astype(np.float64) if set(np.unique(values)) <= {0, 1} else None
    words = values.astype(str).str.strip().str.lower().map(BOOLEAN_WORDS)
    return words if words.notna().all() else None


def validate(
    frame: pd.DataFrame, schema: Schema, source: str = "data", labelled: bool = True
) -> pd.DataFrame:
    """The frame's schema columns (and label) with values normalised — numbers as float64, booleans as
    0/1, categories as text, missing optional values as NaN/None — or raise naming the first problem."""
    expected = [*schema.names, schema.label] if labelled else list(schema.names)
    missing = [c for c in expected if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{source}: missing column(s) {', '.join(missing)}")
    if frame.empty:
        raise DataValidationError(f"{source}: no rows")
    out = pd.DataFrame(index=range(len(frame)))
    for feature in schema.features:
        out[feature.name] = _normalised(frame[feature.name].reset_index(drop=True), feature, source)
    if labelled:
        labels = _as_boolean(frame[schema.label].dropna())
        if labels is None or len(labels) < len(frame):
            found = sorted(set(frame[schema.label].astype(str)) - {"0", "1", "True", "False"})[:5]
            raise DataValidationError(
                f"{source}: column {schema.label} must hold 0 or 1 (or true/false), found {found}"
            )
        out[schema.label] = labels.to_numpy(np.int64)
    return out


def _normalised(column: pd.Series, feature: Feature, source: str) -> pd.Series:
    name = feature.name
    present = column.notna()
    if not feature.optional and not present.all():
        row = int(np.argmin(present.to_numpy()))
        raise DataValidationError(
            f"{source}: {int((~present).sum())} missing value(s), first in column {name} at row {row + 1} "
            "(declare it optional in --schema if values may be missing)"
        )
    if feature.kind == "categorical":
        return column.astype(str).where(present, None)
    if feature.kind == "boolean":
        values = _as_boolean(column[present])
        if values is None:
            raise DataValidationError(f"{source}: column {name} must hold 0/1 or true/false")
        return values.reindex(column.index)
    values = pd.to_numeric(column, errors="coerce").astype(np.float64)
    bad = present & ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad.to_numpy()))
        raise DataValidationError(
            f"{source}: {int(bad.sum())} non-numeric or infinite value(s), first in column {name} at "
            f"row {row + 1} ({column.iloc[row]!r})"
        )
    return values


def fingerprint(frame: pd.DataFrame) -> str:
    """A short content hash, logged with every training run."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()[:16]


@dataclass(frozen=True)
class Split:
    """Encoded features (float32, schema order) and int labels of the three parts, with the schema."""

    schema: Schema
    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    x_holdout: np.ndarray
    y_holdout: np.ndarray
    holdout_frame: pd.DataFrame
    """The holdout's raw rows, for a model of another schema to encode in its own way."""


def split(frame: pd.DataFrame, schema: Schema, holdout: float = 0.2, valid: float = 0.15) -> Split:
    """Train / validation (threshold choice) / holdout (gate), each row placed by a hash of its values.

    `frame` is validated (`validate`). A row keeps its part whatever else the data holds, so when
    retraining adds rows to the champion's data, none of the champion's training rows reaches the new
    holdout the two are compared on (a shuffled split would leak them and favour the champion). Each
    class is spread over the parts in the same shares, in expectation."""
    x = schema.encode(frame)
    y = frame[schema.label].to_numpy(np.int64)
    if y.sum() < 10:
        raise DataValidationError(f"only {int(y.sum())} fraud rows: at least 10 are needed to train")
    digest = pd.util.hash_pandas_object(frame[[*schema.names, schema.label]], index=False).to_numpy()
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
    holdout_frame = frame[test].reset_index(drop=True)
    return Split(schema, x[train], y[train], x[validation], y[validation], x[test], y[test], holdout_frame)


@dataclass(frozen=True)
class Dataset:
    """A built-in generator of seeded transactions, its label and its drift scenarios."""

    generate: Callable[..., pd.DataFrame]
    label: str
    fraud_rate: float
    scenarios: Mapping[str, Any]


DATASETS: dict[str, Dataset] = {
    "creditcard": Dataset(synthetic.generate, synthetic.LABEL, synthetic.FRAUD_RATE, synthetic.SCENARIOS),
    "paysim": Dataset(paysim.generate, paysim.LABEL, paysim.FRAUD_RATE, paysim.SCENARIOS),
}
DEFAULT_DATASET = "creditcard"
SYNTHETIC = "synthetic"
SOURCE_JOIN = " + "


def synthetic_source(
    rows: int,
    seed: int,
    scenario: str | None = None,
    fraud_rate: float | None = None,
    dataset: str = DEFAULT_DATASET,
) -> str:
    """The data-source string that `load_source` turns back into the same generated data."""
    source = f"{SYNTHETIC}:rows={rows},seed={seed}"
    if dataset != DEFAULT_DATASET:
        source += f",dataset={dataset}"
    if fraud_rate is not None:
        source += f",fraud_rate={fraud_rate}"
    return f"{source},scenario={scenario}" if scenario else source


@dataclass(frozen=True)
class TrainingData:
    """A validated training frame and its schema."""

    frame: pd.DataFrame
    schema: Schema


def load_training_data(
    source: str,
    registry: Registry | None = None,
    label: str | None = None,
    declared: Schema | None = None,
) -> TrainingData:
    """Load a data source, infer its schema (the label: `label`, else the built-in data set's, else
    `Class`) and validate it."""
    frame = load_source(source, registry, declared)
    label = label or (declared.label if declared else None) or source_label(source)
    schema = infer_schema(frame, label, declared, source)
    frame = validate(frame, schema, source)
    if frame[schema.label].nunique() == 1:
        only = "fraud" if frame[schema.label].iloc[0] else "legitimate"
        raise DataValidationError(f"{source}: column {schema.label} holds one class only (all {only})")
    return TrainingData(frame, schema)


def source_label(source: str) -> str:
    """The label column of a data source: its built-in data set's, or `Class`."""
    first = source.split(SOURCE_JOIN, 1)[0]
    if not first.startswith(f"{SYNTHETIC}:"):
        return DEFAULT_LABEL
    return DATASETS[_synthetic_options(first)[0]].label


def load_source(
    source: str, registry: Registry | None = None, declared: Schema | None = None
) -> pd.DataFrame:
    """The raw frame of a data source: a CSV path, `synthetic:rows=N,seed=S[,dataset=D]
    [,fraud_rate=R][,scenario=NAME]` (generated data), `runs:/<run id>/<file>` (a CSV logged to the
    registry's MLflow store), or several of these joined by ` + ` (concatenated in order, exact
    duplicate rows dropped). Categorical columns `declared` are read as text."""
    if SOURCE_JOIN in source:
        parts = [load_source(part, registry, declared) for part in source.split(SOURCE_JOIN)]
        return pd.concat(parts, ignore_index=True).drop_duplicates(ignore_index=True)
    text = text_dtypes(declared) if declared else None
    if source.startswith("runs:/"):
        if registry is None:
            raise DataValidationError(f"data source {source} needs an MLflow store to download from")
        return load_table(registry.download(source), text)
    if not source.startswith(f"{SYNTHETIC}:"):
        return load_table(Path(source), text)
    name, rows, seed, fraud_rate, scenario = _synthetic_options(source)
    return DATASETS[name].generate(rows=rows, seed=seed, fraud_rate=fraud_rate, scenario=scenario)


def text_dtypes(schema: Schema) -> dict[str, str]:
    """`load_table` dtypes reading the schema's categorical columns as text (a code `007` stays `007`)."""
    return {f.name: "str" for f in schema.features if f.kind == "categorical"}


def _synthetic_options(source: str) -> tuple[str, int, int, float, str | None]:
    """dataset, rows, seed, fraud rate and scenario of a `synthetic:` source."""
    try:
        options = dict(part.split("=", 1) for part in source.split(":", 1)[1].split(","))
        rows, seed = int(options.pop("rows")), int(options.pop("seed"))
        name = options.pop("dataset", DEFAULT_DATASET)
        dataset = DATASETS[name]
        scenario = options.pop("scenario", None)
        fraud_rate = float(options.pop("fraud_rate", dataset.fraud_rate))
        if options:
            raise ValueError(f"unknown option(s) {', '.join(options)}")
    except (KeyError, ValueError) as e:
        raise DataValidationError(
            f"data source {source!r} is not synthetic:rows=N,seed=S[,dataset={'|'.join(DATASETS)}]"
            f"[,fraud_rate=R][,scenario=NAME] ({e})"
        ) from e
    if scenario is not None and scenario not in dataset.scenarios:
        raise DataValidationError(f"unknown scenario {scenario!r}; known: {', '.join(dataset.scenarios)}")
    return name, rows, seed, fraud_rate, scenario
