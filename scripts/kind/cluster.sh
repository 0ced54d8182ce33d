#!/usr/bin/env bash
# Creates or deletes the single-node kind cluster from the locally built node image.
#   scripts/kind/cluster.sh up|down|load IMAGE...|kubeconfig
# The kubeconfig is written to $FRAUD_CACHE_DIR/kind/kubeconfig-<cluster> (never ~/.kube/config).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

kind_() { "$KBIN/kind" "$@"; }
node() { echo "$CLUSTER_NAME-control-plane"; }

config() {
  cat <<YAML
kind: Cluster
apiVersion: kind.x-k8s.io/v1alpha4
name: $CLUSTER_NAME
networking:
  # Single node: a static ptp/host-local CNI config is baked into the node image (no kindnetd).
  disableDefaultCNI: true
  podSubnet: 10.244.0.0/16
nodes:
  - role: control-plane
    image: $NODE_IMAGE
    # Clients on this machine reach the cluster on loopback only, never on the node's bridge address.
    extraPortMappings:
      - {containerPort: $GATEWAY_PORT, hostPort: $GATEWAY_PORT, listenAddress: 127.0.0.1}
      - {containerPort: $PROMETHEUS_PORT, hostPort: $PROMETHEUS_PORT, listenAddress: 127.0.0.1}
YAML
}

# A node created before the port mappings existed cannot gain them: it is replaced.
maps_ports() {
  docker inspect -f '{{json .HostConfig.PortBindings}}' "$(node)" | grep -q "\"$GATEWAY_PORT/tcp\""
}

# load IMAGE... : copies images from the local engine into the node's containerd (what
# `kind load docker-image` does, without needing crictl in the node). Images already loaded into
# this node container (same image ID) are skipped.
load() {
  local n img id todo=() state
  n=$(node)
  state="$KCACHE/loaded-$(docker inspect -f '{{.Id}}' "$n" | cut -c1-12)"
  touch "$state"
  for img in "$@"; do
    id=$(docker image inspect -f '{{.Id}}' "$img") || die "image $img not found in the docker engine"
    grep -qxF "$img $id" "$state" || todo+=("$img")
  done
  [[ ${#todo[@]} -gt 0 ]] || { log "images already in $n"; return 0; }
  log "loading into $n: ${todo[*]}"
  docker save "${todo[@]}" | docker exec -i "$n" ctr --namespace=k8s.io images import --all-platforms \
    --snapshotter=overlayfs - >/dev/null || die "loading images into $n failed"
  for img in "${todo[@]}"; do echo "$img $(docker image inspect -f '{{.Id}}' "$img")" >>"$state"; done
  prune_replaced "$n"
}

# The node's containerd keeps an image reachable by its ID (`sha256:…`) after its tag moves to a
# newer build, and nothing here ever deletes it: every reload would leave gigabytes behind. Drop the
# ID and digest references that no tagged image shares; containerd then frees their content.
prune_replaced() {
  docker exec -i "$1" sh -s <<'SH' || die "pruning replaced images in $1 failed"
ctr -n k8s.io images ls | awk 'NR > 1' >/tmp/images
stale=$(awk 'NR == FNR { if ($1 !~ /^(sha256:|import-)/) tagged[$3] = 1; next }
             $1 ~ /^(sha256:|import-)/ && !($3 in tagged) { print $1 }' /tmp/images /tmp/images)
[ -z "$stale" ] || ctr -n k8s.io images rm $stale >/dev/null
SH
}

up() {
  if kind_ get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    # A node stopped with its engine (e.g. after a reboot) is started again; one that does not
    # come back is replaced.
    if [[ $(docker inspect -f '{{.State.Running}}' "$(node)") != true ]]; then
      log "starting the stopped node $(node)"; docker start "$(node)" >/dev/null || true
    fi
    kind_ get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG_FILE"
    local i
    for i in $(seq 60); do
      "$KBIN/kubectl" --kubeconfig "$KUBECONFIG_FILE" get --raw /readyz >/dev/null 2>&1 && break; sleep 2
    done
    if [[ $i -ge 60 ]]; then log "cluster $CLUSTER_NAME does not answer: recreating it"; down
    elif ! maps_ports; then log "cluster $CLUSTER_NAME has no ports on 127.0.0.1: recreating it"; down
    else log "cluster $CLUSTER_NAME is up"; return
    fi
  fi
  have_image "$NODE_IMAGE" || die "node image $NODE_IMAGE missing (scripts/kind/build-images.sh node)"
  local t0=$SECONDS
  config >"$KCACHE/kind-config.yaml"
  kind_ create cluster --config "$KCACHE/kind-config.yaml" --kubeconfig "$KUBECONFIG_FILE" --wait 180s \
    || die "kind create cluster failed (docker exec $(node) journalctl -u kubelet shows why)"
  log "cluster $CLUSTER_NAME up in $((SECONDS - t0)) s (KUBECONFIG=$KUBECONFIG_FILE)"
}

down() {
  kind_ delete cluster --name "$CLUSTER_NAME" --kubeconfig "$KUBECONFIG_FILE" || true
  rm -f "$KUBECONFIG_FILE"
}

case ${1:-} in
  up) up ;; down) down ;; load) shift; load "$@" ;; kubeconfig) echo "$KUBECONFIG_FILE" ;;
  *) die "usage: $0 up|down|load IMAGE...|kubeconfig" ;;
esac
