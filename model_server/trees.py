"""A numpy evaluator for small batches of an XGBoost `binary:logistic` model.

XGBoost's `inplace_predict` costs a few hundred microseconds per call whatever the batch size, which
dominates single-row scoring. Walking all trees at once with numpy costs a fraction of that for a
handful of rows; for larger batches XGBoost itself is faster. The evaluator is used only after it
reproduces XGBoost's scores on the model's reference sample to within `TOLERANCE`.
"""

import json
import logging
from collections.abc import Callable

import numpy as np
import xgboost as xgb

from fraudcore.schema import Schema

logger = logging.getLogger(__name__)

TOLERANCE = 1e-6
"""Largest absolute difference from XGBoost's probabilities the evaluator may show."""

SMALL_BATCH_ROWS = 64
"""Batches up to this many rows go to the numpy evaluator, larger ones to XGBoost."""


class TreeEnsemble:
    """All trees as flat node arrays; a row's position in every tree advances one level per step.

    Leaves point to themselves, so `depth` steps bring every row to a leaf in every tree. A split
    sends a row left when `x[feature] < threshold` (both float32), as XGBoost does. A missing value
    (NaN) would always go right, not where XGBoost's default direction sends it, so the evaluator
    serves only schemas in which no encoded value can be NaN (`verified_ensemble`).
    """

    def __init__(
        self, roots: np.ndarray, features: np.ndarray, thresholds: np.ndarray, children: np.ndarray,
        values: np.ndarray, depth: int, base_margin: float, n_features: int,
    ) -> None:  # fmt: skip
        self.roots, self.features, self.thresholds = roots, features, thresholds
        self.children, self.values, self.depth = children, values, depth
        self.base_margin, self.n_features = base_margin, n_features

    @classmethod
    def from_booster(cls, booster: xgb.Booster) -> "TreeEnsemble | None":
        """The evaluator for a booster, or None when the model uses something it does not cover."""
        learner = json.loads(booster.save_raw("json"))["learner"]
        model = learner["gradient_booster"].get("model", {})
        base_scores = np.atleast_1d(np.asarray(json.loads(learner["learner_model_param"]["base_score"])))
        if (
            learner["objective"]["name"] != "binary:logistic"
            or learner["gradient_booster"]["name"] != "gbtree"
            or len(base_scores) != 1
            or any(any(t["split_type"]) or t["categories"] for t in model["trees"])
        ):
            return None
        roots, features, thresholds, left, right = [], [], [], [], []
        offset, depth = 0, 0
        for tree in model["trees"]:
            lefts, rights = np.asarray(tree["left_children"]), np.asarray(tree["right_children"])
            nodes = np.arange(len(lefts))
            leaf = lefts == -1
            roots.append(offset)
            features.append(np.where(leaf, 0, tree["split_indices"]))
            thresholds.append(np.asarray(tree["split_conditions"], np.float32))
            left.append(np.where(leaf, nodes, lefts) + offset)
            right.append(np.where(leaf, nodes, rights) + offset)
            depth = max(depth, _depth(lefts, rights))
            offset += len(lefts)
        all_left, all_right = np.concatenate(left), np.concatenate(right)
        is_leaf = all_left == np.arange(offset)
        split_values = np.concatenate(thresholds)
        # children[2 * node + went_left]: the right child at even, the left child at odd positions.
        children = np.empty(2 * offset, np.intp)
        children[0::2], children[1::2] = all_right, all_left
        base = float(base_scores[0])
        return cls(
            roots=np.asarray(roots, np.intp),
            features=np.concatenate(features).astype(np.intp),
            thresholds=split_values,
            children=children,
            values=np.where(is_leaf, split_values, 0).astype(np.float32),
            depth=depth,
            base_margin=float(np.log(base / (1 - base))),
            n_features=booster.num_features(),
        )

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Fraud probabilities for a float32 `[N, n_features]` matrix."""
        flat = np.ascontiguousarray(x, np.float32).ravel()
        row_start = (np.arange(len(x), dtype=np.intp) * self.n_features)[:, None]
        node = np.tile(self.roots, (len(x), 1))
        for _ in range(self.depth):
            went_left = flat.take(row_start + self.features.take(node)) < self.thresholds.take(node)
            node = self.children.take(2 * node + went_left)
        margin = self.values.take(node).sum(axis=1, dtype=np.float64) + self.base_margin
        return (1.0 / (1.0 + np.exp(-margin))).astype(np.float32)


def _depth(lefts: np.ndarray, rights: np.ndarray) -> int:
    depth, level = 0, [0]
    while True:
        level = [c for n in level if lefts[n] != -1 for c in (lefts[n], rights[n])]
        if not level:
            return depth
        depth += 1


def verified_ensemble(
    booster: xgb.Booster, predict: Callable[[np.ndarray], np.ndarray], reference: np.ndarray, schema: Schema
) -> TreeEnsemble | None:
    """The numpy evaluator of `booster` if no value of `schema` can be missing (no optional and no
    categorical feature: an unknown category is NaN too) and it reproduces `predict` on `reference`,
    else None."""
    if any(f.optional or f.kind == "categorical" for f in schema.features):
        logger.info("small-batch tree evaluator not used: the schema allows missing values")
        return None
    ensemble = TreeEnsemble.from_booster(booster)
    if ensemble is None:
        logger.info("small-batch tree evaluator not used: the model has features it does not cover")
        return None
    difference = float(np.abs(ensemble.predict_proba(reference) - predict(reference)).max())
    if difference > TOLERANCE:
        logger.warning("small-batch tree evaluator not used: it differs from XGBoost by %.3g", difference)
        return None
    logger.info("batches of up to %d rows use the numpy tree evaluator", SMALL_BATCH_ROWS)
    return ensemble
