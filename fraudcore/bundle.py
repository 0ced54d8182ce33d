"""The model bundle: a scorer plus everything stored with it (threshold, schema, metrics, reference).

A bundle is a directory that training writes and every consumer reads without training code:
`card.json` (the model card), `reference.npy` (a sample of training inputs for drift checks), the
scorer's own file (`model.ubj` for XGBoost, `lightgbm.txt` for LightGBM, `logistic.npz` for the
scaled logistic regression) and, for a tree model that converts, `model.onnx`: the same model for
ONNX Runtime, which the predictor uses for small batches once it reproduces the scorer's probabilities.
"""

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal, Protocol

import lightgbm as lgb
import numpy as np
import xgboost as xgb

from fraudcore.errors import UnavailableError
from fraudcore.schema import Schema

ModelKind = Literal["xgboost", "lightgbm", "logistic"]
CARD_FILE = "card.json"
REFERENCE_FILE = "reference.npy"
ONNX_FILE = "model.onnx"
ONNX_INPUT = "x"
"""The ONNX model's one input: the encoded float32 `[N, k]` matrix."""
ONNX_PROBABILITIES = "probabilities"
"""The ONNX model's output of class probabilities, `[N, 2]` (legitimate, fraud)."""


class Scorer(Protocol):
    """Turns an encoded float32 `[N, k]` matrix (`fraudcore.schema`) into fraud probabilities."""

    kind: ModelKind

    def predict_proba(self, x: np.ndarray) -> np.ndarray: ...

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Each encoded feature's share of the log-odds, float32 `[N, k + 1]` in schema order, the
        bias last; a row sums to logit(predict_proba) up to float error."""
        ...

    def save(self, path: Path) -> None: ...


class XGBoostScorer:
    """A binary:logistic booster scored with `inplace_predict` (no DMatrix copy)."""

    kind: ModelKind = "xgboost"
    file_name = "model.ubj"

    def __init__(self, booster: xgb.Booster) -> None:
        booster.set_param({"nthread": 1})
        self.booster = booster

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x, validate_features=False), np.float32)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Exact TreeSHAP values, computed by XGBoost on a DMatrix typed as in training."""
        types = self.booster.feature_types
        matrix = xgb.DMatrix(x, feature_types=types, enable_categorical=bool(types), nthread=1)
        contributions = self.booster.predict(matrix, pred_contribs=True)
        return np.asarray(contributions, np.float32).reshape(len(x), x.shape[1] + 1)  # 0 rows: 1-d

    def save(self, path: Path) -> None:
        self.booster.save_model(path / self.file_name)

    @classmethod
    def load(cls, path: Path) -> "XGBoostScorer":
        booster = xgb.Booster()
        booster.load_model(path / cls.file_name)
        return cls(booster)


class LightGBMScorer:
    """A binary LightGBM booster (categorical columns split natively on their codes, NaN missing),
    kept in LightGBM's text model format and scored on one thread per call."""

    kind: ModelKind = "lightgbm"
    file_name = "lightgbm.txt"

    def __init__(self, booster: lgb.Booster) -> None:
        self.booster = booster

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.predict(x, num_threads=1), np.float32)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Per-feature log-odds contributions in schema order, then the bias: `[N, k + 1]` float32."""
        if not len(x):  # LightGBM divides by the row count
            return np.zeros((0, x.shape[1] + 1), np.float32)
        return np.asarray(self.booster.predict(x, pred_contrib=True, num_threads=1), np.float32)

    def save(self, path: Path) -> None:
        self.booster.save_model(path / self.file_name)

    @classmethod
    def load(cls, path: Path) -> "LightGBMScorer":
        return cls(lgb.Booster(model_file=path / cls.file_name))


class LogisticScorer:
    """Standard-scaled logistic regression on one-hot encoded categories, scored with plain numpy.

    `categorical` maps an encoded column to its number of categories: such a column becomes that
    many 0/1 columns (an unknown category, NaN, none of them). A missing numeric value is replaced
    by its training mean, which adds nothing to the score.
    """

    kind: ModelKind = "logistic"
    file_name = "logistic.npz"

    def __init__(
        self, mean: np.ndarray, scale: np.ndarray, coef: np.ndarray, intercept: float,
        categorical: dict[int, int] | None = None,
    ) -> None:  # fmt: skip
        self.categorical = dict(categorical or {})
        # Fold the scaler into the weights: sigmoid(((x - mean) / scale) @ coef + b).
        self.weights = (coef / scale).astype(np.float64)
        self.bias = float(intercept - np.dot(mean / scale, coef))
        self._mean = mean
        self._parts = (mean, scale, coef, intercept)
        self._fold = _fold(len(mean), self.categorical)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        x = one_hot(x, self.categorical)
        missing = np.isnan(x)
        z = np.where(missing, self._mean, x) if missing.any() else x
        z = z @ self.weights + self.bias
        return (1.0 / (1.0 + np.exp(-np.clip(z, -50, 50)))).astype(np.float32)

    def contributions(self, x: np.ndarray) -> np.ndarray:
        """Coefficient times scaled input per model column, a category's one-hot columns summed into
        its feature, the intercept as the bias. A missing value contributes nothing: a missing number
        sits at its mean already, and a missing or unknown category's offset (none of its columns
        set) goes to the row's bias so that the row still sums to its log-odds."""
        z = one_hot(x, self.categorical)
        parts = np.nan_to_num((z - self._mean) * self.weights)
        folded = parts @ self._fold
        bias = np.full(len(x), self._parts[3], np.float64)
        columns = list(self.categorical)
        if columns:
            unknown = np.isnan(x[:, columns])
            bias += np.where(unknown, folded[:, columns], 0.0).sum(axis=1)
            folded[:, columns] = np.where(unknown, 0.0, folded[:, columns])
        return np.column_stack([folded, bias]).astype(np.float32)

    def save(self, path: Path) -> None:
        mean, scale, coef, intercept = self._parts
        categorical = np.array(sorted(self.categorical.items()), np.int64).reshape(-1, 2)
        np.savez(
            path / self.file_name,
            mean=mean,
            scale=scale,
            coef=coef,
            intercept=intercept,
            categorical=categorical,
        )

    @classmethod
    def load(cls, path: Path) -> "LogisticScorer":
        with np.load(path / cls.file_name) as parts:
            categorical = {int(i): int(n) for i, n in parts["categorical"]} if "categorical" in parts else {}
            return cls(parts["mean"], parts["scale"], parts["coef"], float(parts["intercept"]), categorical)


def one_hot(x: np.ndarray, categorical: dict[int, int]) -> np.ndarray:
    """Encoded columns → float64 model columns: the numeric ones, then each category's 0/1 column."""
    x = x.astype(np.float64, copy=False)
    if not categorical:
        return x
    numeric = [i for i in range(x.shape[1]) if i not in categorical]
    return np.hstack([x[:, numeric], *(x[:, [i]] == np.arange(n) for i, n in categorical.items())])


SCORERS: dict[str, type[XGBoostScorer] | type[LightGBMScorer] | type[LogisticScorer]] = {
    "xgboost": XGBoostScorer,
    "lightgbm": LightGBMScorer,
    "logistic": LogisticScorer,
}


@dataclass(frozen=True)
class ModelCard:
    """What is known about a trained model; stored next to it and shown by `fraud models list`."""

    kind: ModelKind
    threshold: float
    metrics: dict[str, float]
    data_fingerprint: str
    data_source: str
    trained_at: str
    schema: Schema
    params: dict[str, str | int | float] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"schema": self.schema.to_dict()}

    @classmethod
    def from_dict(cls, raw: dict) -> "ModelCard":
        return cls(**{**raw, "schema": Schema.from_dict(raw["schema"])})


@dataclass
class Bundle:
    """A loaded bundle: the scorer, its card and where its files are."""

    scorer: Scorer
    card: ModelCard
    path: Path

    def reference(self) -> np.ndarray:
        """The reference sample of training inputs, encoded `[n, k]` float32."""
        return np.load(self.path / REFERENCE_FILE)

    def onnx(self) -> bytes | None:
        """The model exported to ONNX at training, when it converted."""
        path = self.path / ONNX_FILE
        return path.read_bytes() if path.exists() else None

    def decide(self, scores: np.ndarray) -> np.ndarray:
        """Fraud decisions at the threshold chosen at training time."""
        return scores >= self.card.threshold


def save_bundle(
    path: Path, scorer: Scorer, card: ModelCard, reference: np.ndarray, onnx: bytes | None = None
) -> None:
    """Write a bundle directory (created if missing)."""
    path.mkdir(parents=True, exist_ok=True)
    scorer.save(path)
    if onnx is not None:
        (path / ONNX_FILE).write_bytes(onnx)
    (path / CARD_FILE).write_text(json.dumps(card.to_dict(), indent=2))
    np.save(path / REFERENCE_FILE, reference.astype(np.float32))


def load_bundle(path: Path) -> Bundle:
    """Read a bundle directory; an incomplete or foreign directory raises UnavailableError."""
    try:
        card = ModelCard.from_dict(json.loads((path / CARD_FILE).read_text()))
        scorer = SCORERS[card.kind].load(path)
    except (OSError, KeyError, TypeError, ValueError, xgb.core.XGBoostError, lgb.basic.LightGBMError) as e:
        raise UnavailableError(f"{path} is not a readable model bundle: {e}") from e
    return Bundle(scorer=scorer, card=card, path=path)


def _fold(columns: int, categorical: dict[int, int]) -> np.ndarray:
    """The 0/1 `[model columns, encoded columns]` matrix summing `one_hot`'s columns per feature."""
    k = columns - sum(categorical.values()) + len(categorical)
    owners = [i for i in range(k) if i not in categorical]
    owners += [i for i, n in categorical.items() for _ in range(n)]
    fold = np.zeros((columns, k))
    fold[np.arange(columns), owners] = 1.0
    return fold
