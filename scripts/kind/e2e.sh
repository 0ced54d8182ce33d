#!/usr/bin/env bash
# End-to-end tier on a local kind cluster, with or without a container registry.
#   scripts/kind/e2e.sh up     docker engine, binaries and images (built once, cached), cluster, add-ons
#   scripts/kind/e2e.sh test [PATH...]   the e2e suite (pytest -m e2e; default tests/e2e) against the
#                              running cluster
#   scripts/kind/e2e.sh run    up, then test (what `make e2e` runs); a passing `run` writes the stamp
#                              that marks this machine's cache as complete
#   scripts/kind/e2e.sh faults the fault suite (pytest -m faults) after up; figures in $FRAUD_CACHE_DIR/kind/faults.md
#   scripts/kind/e2e.sh down   delete the cluster (the cache stays)
#   scripts/kind/e2e.sh ci     run, when the stamp shows a complete cache here (only the project's own
#                              images are rebuilt); otherwise print one line saying why and exit 0,
#                              because a cold build of every image does not fit in CI's time
# Timings of every phase go to $FRAUD_CACHE_DIR/kind/timings.log.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
HERE=$(cd "$(dirname "$0")" && pwd)

# What a run tested, for timings.log and the stamp: the e2e tooling, the chart, the images' sources.
INPUTS=(scripts/kind tests/e2e charts docker k8s skaffold.yaml pyproject.toml uv.lock fraudcore model_server jobs cli training)
inputs_hash() { (cd "$ROOT" && git ls-files -s -- "${INPUTS[@]}" && git diff HEAD -- "${INPUTS[@]}") | sha256sum | cut -c1-16; }

timed() {
  local what=$1 t0=$SECONDS rc=0; shift
  "$@" || rc=$?
  [[ $rc -eq 0 ]] || { log "$what failed (exit $rc) after $((SECONDS - t0)) s"; return $rc; }
  printf '%s %-10s %5d s  %s\n' "$(date -u +%FT%TZ)" "$what" $((SECONDS - t0)) "$(inputs_hash)" >>"$KCACHE/timings.log"
  log "$what: $((SECONDS - t0)) s"
}

images_needed() {
  echo "$POSTGRES_IMAGE $PROMETHEUS_IMAGE $PUSHGATEWAY_IMAGE $KSERVE_IMAGE $EG_IMAGE $ENVOY_IMAGE"
  echo "fraud-detection/predictor:${APP_TAG:-e2e} fraud-detection/jobs:${APP_TAG:-e2e}"
}

up() {
  # Explicit returns: `set -e` does not apply inside a function called from `up && …`.
  timed dockerd "$HERE/dockerd.sh" || return
  timed bins "$HERE/build-bins.sh" all || return
  timed images "$HERE/build-images.sh" all || return
  timed cluster "$HERE/cluster.sh" up || return
  # shellcheck disable=SC2046
  timed load "$HERE/cluster.sh" load $(images_needed) || return
  timed addons "$HERE/addons.sh" all
}

# test_ stamp|nostamp MARKERS [PATH...]
test_() {
  local stamp=$1 markers=$2 uv="$CACHE/uv-0.13.8/bin/uv" rc=0
  shift 2
  [[ -x $uv ]] || bash "$ROOT/scripts/bootstrap.sh" >/dev/null
  export FRAUD_E2E_KUBECONFIG="$KUBECONFIG_FILE" FRAUD_E2E_BIN="$KBIN" FRAUD_E2E_HELM="$CACHE/bin/helm"
  export FRAUD_E2E_NODE="$CLUSTER_NAME-control-plane" FRAUD_E2E_APP_TAG="${APP_TAG:-e2e}"
  export FRAUD_E2E_POSTGRES_IMAGE="$POSTGRES_IMAGE"
  export FRAUD_E2E_GATEWAY_URL="http://127.0.0.1:$GATEWAY_PORT" FRAUD_E2E_PROMETHEUS_URL="http://127.0.0.1:$PROMETHEUS_PORT"
  (cd "$ROOT" && timed e2e "$uv" run --frozen --all-extras pytest -m "$markers" -p no:cacheprovider \
     --no-cov -o addopts="-ra --strict-markers" -o timeout=2400 "${@:-tests/e2e}") || rc=$?
  if [[ $rc -eq 0 && $stamp == stamp ]]; then
    printf 'inputs %s\ncommit %s\npassed %s\n' "$(inputs_hash)" "$(git -C "$ROOT" rev-parse HEAD)" \
      "$(date -u +%FT%TZ)" >"$STAMP"
    log "e2e passed; stamp written to $STAMP"
  fi
  return $rc
}

ci() {
  local why=""
  if [[ ${FRAUD_E2E_CI:-1} == 0 ]]; then why="FRAUD_E2E_CI=0"
  elif [[ ! -f $STAMP ]]; then
    why="the image and tool cache is not complete on this machine (run 'make e2e' once, ~90 min cold)"
  elif ! command -v dockerd >/dev/null || [[ $(id -u) != 0 ]]; then why="no docker engine can be started here"
  fi
  if [[ -n $why ]]; then echo "e2e skipped: $why"; return 0; fi
  # The cache once passed here, so a failure now is a regression in the inputs (or the machine).
  up && test_ stamp "e2e and not faults"
}

# The fault suite (tests/e2e/test_faults.py), its figures to $KCACHE/faults.md.
faults() {
  export FRAUD_E2E_FAULTS_REPORT="$KCACHE/faults.md"
  printf '| fault (under constant load) | failed / total requests | recovery |\n| --- | --- | --- |\n' \
    >"$FRAUD_E2E_FAULTS_REPORT"
  test_ nostamp faults tests/e2e/test_faults.py || return
  cat "$FRAUD_E2E_FAULTS_REPORT"
}

case ${1:-} in
  up) up ;;
  test) shift; test_ nostamp "e2e and not faults" "$@" ;;
  run) shift; up; test_ stamp "e2e and not faults" "$@" ;;
  faults) up && faults ;;
  down) "$HERE/cluster.sh" down ;;
  ci) ci ;;
  *) die "usage: $0 up|test|run|faults|down|ci" ;;
esac
