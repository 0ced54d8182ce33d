"""The feature schema every component agrees on: the public credit-card fraud data set's columns."""

FEATURES: tuple[str, ...] = ("Time", *(f"V{i}" for i in range(1, 29)), "Amount")
"""The 30 model inputs, in canonical order."""

LABEL = "Class"
"""Ground truth column: 1 = fraud, 0 = legitimate."""

COLUMNS: tuple[str, ...] = (*FEATURES, LABEL)
N_FEATURES = len(FEATURES)
