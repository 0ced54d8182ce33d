#!/usr/bin/env bash
# The model lifecycle on one machine, told step by step. State lives in .fraud/demo (wiped first).
set -euo pipefail
cd "$(dirname "$0")/.."

export FRAUD_HOME=.fraud/demo
unset MLFLOW_TRACKING_URI
FRAUD=.venv/bin/fraud
DATA=$FRAUD_HOME/data/transactions.csv

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

rm -rf "$FRAUD_HOME"

step "1. Generate two days of card transactions (the public data set's size and schema, seeded)"
$FRAUD data generate --out "$DATA"
$FRAUD data check "$DATA"

step "2. Train a logistic regression: the first version to pass the gate becomes @champion"
$FRAUD train --model logistic --data "$DATA"

step "3. Train XGBoost: it passes the gate against the champion and becomes @challenger"
$FRAUD train --model xgboost --data "$DATA"

step "4. A deliberately weak model (one stump) is registered but rejected by the gate"
if $FRAUD train --model xgboost --data "$DATA" --rounds 1 --max-depth 1; then
  echo "the weak model was not rejected" >&2; exit 1
fi

step "5. The registry: versions, aliases, metrics and gate verdicts"
$FRAUD models list

step "6. Promote the challenger after the gate compares it with the champion on the same holdout"
$FRAUD models promote @challenger
$FRAUD models list
