"""A model's feature schema: names, types and categories, inferred from its training data and stored
with it (the bundle's card), so that no component outside the built-in data sets names a feature.

Every component scores, audits and tests one float32 matrix `[N, k]` in schema order, the *encoded*
form: numeric features as they are, booleans as 0/1, a categorical feature as the index of its value
among the categories seen in training. NaN stands for "none of the known": a missing optional value,
or a category never seen in training (XGBoost's native categorical splits and the logistic model's
one-hot columns both treat it so). Raw values (text) exist only at the edges: data files, the wire
codec and the audit log.
"""

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from functools import cached_property
from typing import Any, Literal, get_args

import numpy as np

Kind = Literal["numeric", "categorical", "boolean"]
KINDS: tuple[str, ...] = get_args(Kind)
DEFAULT_LABEL = "Class"
BOOLEAN_WORDS: dict[str, float] = {"true": 1.0, "false": 0.0, "1": 1.0, "0": 0.0}
"""Text a boolean feature (or label) may hold, in any case."""


@dataclass(frozen=True)
class Feature:
    """One model input: its name, its kind, the categories seen in training and whether it may be
    missing."""

    name: str
    kind: Kind = "numeric"
    categories: tuple[str, ...] = ()
    optional: bool = False

    @cached_property
    def codes(self) -> dict[str, int]:
        return {category: code for code, category in enumerate(self.categories)}

    def encode(self, values: Iterable[Any]) -> np.ndarray:
        """Raw values of this feature (text for a categorical one) → float32 codes, NaN for unknown."""
        if self.kind == "boolean" and not isinstance(values, np.ndarray):
            values = np.array(values, object)  # a copy: the caller's frame is left as it was
            text = np.array([isinstance(v, str) for v in values], bool)
            values[text] = [BOOLEAN_WORDS.get(v.strip().lower(), np.nan) for v in values[text]]
        if self.kind != "categorical":
            return np.asarray(values, np.float32)
        codes = self.codes
        return np.fromiter((codes.get(v, np.nan) for v in values), np.float32)


@dataclass(frozen=True)
class Schema:
    """The model's inputs in order, and the name of the label column in its training data."""

    features: tuple[Feature, ...]
    label: str = DEFAULT_LABEL

    @classmethod
    def numeric(cls, names: Iterable[str], label: str = DEFAULT_LABEL) -> "Schema":
        return cls(tuple(Feature(name) for name in names), label)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def all_numeric(self) -> bool:
        """Every input is a number: the schema also accepts one `[N, k]` tensor in schema order."""
        return all(f.kind == "numeric" for f in self.features)

    @property
    def categorical(self) -> dict[int, int]:
        """Column index → number of training categories, for every categorical feature."""
        return {i: len(f.categories) for i, f in enumerate(self.features) if f.kind == "categorical"}

    def summary(self) -> str:
        """One line, e.g. `7 inputs (6 numeric, 1 categorical), label isFraud`."""
        counts = {kind: sum(f.kind == kind for f in self.features) for kind in KINDS}
        kinds = ", ".join(f"{n} {kind}" for kind, n in counts.items() if n)
        return f"{len(self)} inputs ({kinds}), label {self.label}"

    def __len__(self) -> int:
        return len(self.features)

    @cached_property
    def positions(self) -> dict[str, int]:
        """Feature name → column in the encoded matrix."""
        return {f.name: i for i, f in enumerate(self.features)}

    def encode(self, columns: Mapping[str, Any]) -> np.ndarray:
        """Raw columns by feature name (a DataFrame, or a dict of sequences) → encoded `[N, k]`."""
        return np.column_stack([f.encode(columns[f.name]) for f in self.features]).astype(np.float32)

    def raw(self, x: np.ndarray) -> list[list[Any]]:
        """Encoded rows back to raw values (categories as text, booleans as bool, NaN as None)."""
        columns: list[list[Any]] = []
        for i, f in enumerate(self.features):
            values = x[:, i]
            known = ~np.isnan(values)
            if f.kind == "categorical":
                names = np.asarray(f.categories, object)
                columns.append(np.where(known, names[np.where(known, values, 0).astype(int)], None).tolist())
            elif f.kind == "boolean":
                columns.append(np.where(known, values.astype(bool), None).tolist())
            else:
                columns.append(np.where(known, values.astype(np.float64), None).tolist())
        return [list(row) for row in zip(*columns, strict=True)]

    def differences(self, other: "Schema") -> list[str]:
        """How a client sending `self`'s inputs would fail with `other`: required inputs or kinds that
        differ (categories may differ: an unknown category is scored, not refused)."""
        mine = {f.name: f for f in self.features}
        theirs = {f.name: f for f in other.features}
        found = [f"{n} is not an input of the other" for n in mine if n not in theirs]
        found += [
            f"{n} is required but not sent" for n, f in theirs.items() if n not in mine and not f.optional
        ]
        found += [
            f"{n} is {f.kind} here, {theirs[n].kind} there"
            for n, f in mine.items()
            if n in theirs and f.kind != theirs[n].kind
        ]
        found += [
            f"{n} is optional here, required there"
            for n, f in mine.items()
            if n in theirs and f.optional and not theirs[n].optional
        ]
        return found

    def to_dict(self) -> dict[str, Any]:
        features = [{k: v for k, v in asdict(f).items() if v or k in ("name", "kind")} for f in self.features]
        return {"label": self.label, "features": features}

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> "Schema":
        """The inverse of `to_dict`; raises ValueError naming what is wrong."""
        features = raw.get("features")
        if not isinstance(features, list) or not features:
            raise ValueError("a schema needs a non-empty 'features' list")
        return cls(tuple(_feature(item) for item in features), str(raw.get("label", DEFAULT_LABEL)))


def _feature(item: Any) -> Feature:
    if isinstance(item, str):
        return Feature(item)
    if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
        raise ValueError(f"a feature must be a name or an object with a 'name', not {item!r}")
    kind = item.get("kind", "numeric")
    if kind not in KINDS:
        raise ValueError(f"feature {item['name']}: kind {kind!r} is not one of {', '.join(KINDS)}")
    unknown = set(item) - {"name", "kind", "categories", "optional"}
    if unknown:
        raise ValueError(f"feature {item['name']}: unknown key(s) {', '.join(sorted(unknown))}")
    categories = tuple(str(c) for c in item.get("categories", ()))
    return Feature(item["name"], kind, categories, bool(item.get("optional", False)))
