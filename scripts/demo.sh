#!/usr/bin/env bash
# The model lifecycle on one machine, told step by step, on a built-in data set (DATASET=creditcard,
# the default, or paysim). State lives in .fraud/demo (wiped first).
set -euo pipefail
cd "$(dirname "$0")/.."

DATASET=${DATASET:-creditcard}
case $DATASET in
  creditcard) STORY="two days of card transactions (the public data set's size and schema, seeded)"
    FIRST=(--model logistic) FIRST_STORY="a logistic regression"
    WAVE=new-fraud-pattern WAVE_STORY="a wave of a fraud pattern the champion has never seen" ;;
  paysim) STORY="a month of mobile-money transfers (PaySim style: the transaction type is text)"
    # A linear model cannot see an emptied account; and at 0.13 % fraud a PR-AUC floor of 0.3 fits.
    FIRST=(--model xgboost --max-depth 3 --rounds 60) FIRST_STORY="a shallow XGBoost"
    export FRAUD_GATE_MIN_PR_AUC=0.3
    WAVE=type-mix-shift WAVE_STORY="the mix of transaction types changes: far more transfers" ;;
  *) echo "unknown DATASET $DATASET (creditcard or paysim)" >&2; exit 2 ;;
esac
export FRAUD_HOME=.fraud/demo
unset MLFLOW_TRACKING_URI
FRAUD=.venv/bin/fraud
LABEL=$(.venv/bin/python -c "import sys; from training.data import DATASETS; print(DATASETS[sys.argv[1]].label)" "$DATASET")
DATA=$FRAUD_HOME/data/transactions.csv

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

SERVE_PORT=${FRAUD_DEMO_PORT:-18080}
URL=http://127.0.0.1:$SERVE_PORT
# Its own port, so a `make postgres` cluster (54329) can keep running next to the demo.
export FRAUD_PG_DIR=$FRAUD_HOME/postgres FRAUD_PG_PORT=${FRAUD_PG_PORT:-54328}
SERVER=

serve() {  # serve @champion in the background (audit log on); wait until ready
  $FRAUD serve --model-uri "models:/fraud-detector@champion" --port "$SERVE_PORT" --role champion \
    >"$FRAUD_HOME/serve.log" 2>&1 &
  SERVER=$!
  for _ in $(seq 180); do curl -sf "$URL/v2/health/ready" >/dev/null && return; sleep 1; done
  echo "the predictor did not start; see $FRAUD_HOME/serve.log" >&2; exit 1
}
stop_serving() { [[ -z $SERVER ]] || { kill "$SERVER" 2>/dev/null; wait "$SERVER" 2>/dev/null || true; SERVER=; }; }

scripts/postgres.sh destroy >/dev/null 2>&1 || true
rm -rf "$FRAUD_HOME"
trap 'stop_serving; scripts/postgres.sh stop >/dev/null 2>&1 || true' EXIT

step "1. Generate $STORY"
$FRAUD data generate --dataset "$DATASET" --out "$DATA"
$FRAUD data check "$DATA" --label "$LABEL"

step "2. Train $FIRST_STORY: the first version to pass the gate becomes @champion"
$FRAUD train "${FIRST[@]}" --data "$DATA" --label "$LABEL"

step "3. Train XGBoost: it passes the gate against the champion and becomes @challenger"
$FRAUD train --model xgboost --data "$DATA" --label "$LABEL"

step "4. A deliberately weak model (one stump) is registered but rejected by the gate"
if $FRAUD train --model xgboost --data "$DATA" --label "$LABEL" --rounds 1 --max-depth 1; then
  echo "the weak model was not rejected" >&2; exit 1
fi

step "5. The registry: versions, aliases, metrics and gate verdicts"
$FRAUD models list

step "6. Promote the challenger after the gate compares it with the champion on the same holdout"
$FRAUD models promote @challenger
$FRAUD models list

step "7. Serve the champion with the KServe predictor; every scored transaction goes to a PostgreSQL audit log"
FRAUD_AUDIT_DSN=$(scripts/postgres.sh start)
export FRAUD_AUDIT_DSN
serve
echo "GET $URL/v2/models/fraud-detector  (the inputs this model takes, from its schema)"
curl -s "$URL/v2/models/fraud-detector" >"$FRAUD_HOME/metadata.json"
.venv/bin/python -c 'import json, sys; print([(i["name"], i["datatype"]) for i in json.load(open(sys.argv[1]))["inputs"]])' \
  "$FRAUD_HOME/metadata.json"
.venv/bin/python - "$DATA" "$FRAUD_HOME/metadata.json" >"$FRAUD_HOME/request.json" <<'PY'
import csv, json, sys
rows = [row for _, row in zip(range(3), csv.DictReader(open(sys.argv[1])))]
types = {"FP32": float, "FP64": float, "BYTES": str, "BOOL": lambda v: v.lower() in ("1", "true")}
inputs = [
    {"name": i["name"], "shape": [len(rows)], "datatype": i["datatype"],
     "data": [types[i["datatype"]](row[i["name"]]) for row in rows]}
    for i in json.load(open(sys.argv[2]))["inputs"] if len(i["shape"]) == 1
]
print(json.dumps({"inputs": inputs}))
PY
echo "POST $URL/v2/models/fraud-detector/infer  (three transactions, one tensor per feature, Open Inference Protocol v2)"
curl -s -i -H 'content-type: application/json' -H 'x-request-id: demo-1' \
  "$URL/v2/models/fraud-detector/infer" -d @"$FRAUD_HOME/request.json" | grep -iv '^date\|^server'
echo

step "8. Normal traffic: 2,000 transactions, then a drift check against the champion's training sample"
$FRAUD data generate --dataset "$DATASET" --rows 2000 --seed 101 --out "$FRAUD_HOME/data/clean.csv"
$FRAUD traffic send "$FRAUD_HOME/data/clean.csv" --url "$URL" --labels-out "$FRAUD_HOME/data/clean-labels.csv"
$FRAUD drift --no-fail-on-drift --out "$FRAUD_HOME/reports/clean"

step "9. Traffic changes: $WAVE_STORY"
$FRAUD data generate --dataset "$DATASET" --rows 2000 --seed 102 --scenario "$WAVE" --out "$FRAUD_HOME/data/wave.csv"
$FRAUD traffic send "$FRAUD_HOME/data/wave.csv" --url "$URL" --labels-out "$FRAUD_HOME/data/wave-labels.csv"

step "10. Chargebacks arrive: attach the ground truth to the logged transactions"
$FRAUD labels ingest "$FRAUD_HOME/data/clean-labels.csv"
$FRAUD labels ingest "$FRAUD_HOME/data/wave-labels.csv"

step "11. The drift check catches it (exit 4), names the columns and shows the champion on the labelled rows"
if $FRAUD drift --out "$FRAUD_HOME/reports/wave"; then echo "drift was not detected" >&2; exit 1; fi

step "12. Drift-triggered retraining on the training data plus the labelled traffic: a gated @challenger"
$FRAUD retrain --only-on-drift

step "13. Promote the challenger (re-gated on the same holdout) and serve the new champion"
$FRAUD models promote @challenger
stop_serving
serve
$FRAUD traffic send "$FRAUD_HOME/data/wave.csv" --url "$URL"

step "Summary"
$FRAUD models list
echo "drift reports: $FRAUD_HOME/reports/{clean,wave}/drift.html   audit log: $FRAUD_AUDIT_DSN"
