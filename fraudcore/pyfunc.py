"""MLflow pyfunc wrapper so a registered version also works with plain `mlflow.pyfunc.load_model`."""

from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from fraudcore.bundle import load_bundle

BUNDLE_ARTIFACT = "bundle"


class BundlePyfunc(mlflow.pyfunc.PythonModel):
    """Scores a DataFrame with the model's feature columns (raw values); returns fraud probabilities."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        self.bundle = load_bundle(Path(context.artifacts[BUNDLE_ARTIFACT]))

    def predict(
        self, context: mlflow.pyfunc.PythonModelContext, model_input: pd.DataFrame, params=None
    ) -> np.ndarray:
        x = self.bundle.card.schema.encode(model_input)
        return self.bundle.scorer.predict_proba(x)
