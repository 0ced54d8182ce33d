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
YAML
}

# load IMAGE... : copies images from the local engine into the node's containerd (what
# `kind load docker-image` does, without needing crictl in the node).
load() {
  local n; n=$(node)
  [[ $# -gt 0 ]] || return 0
  log "loading into $n: $*"
  docker save "$@" | docker exec -i "$n" ctr --namespace=k8s.io images import --all-platforms --digests \
    --snapshotter=overlayfs - >/dev/null || die "loading images into $n failed"
}

up() {
  if kind_ get clusters 2>/dev/null | grep -qx "$CLUSTER_NAME"; then
    log "cluster $CLUSTER_NAME exists"; kind_ get kubeconfig --name "$CLUSTER_NAME" >"$KUBECONFIG_FILE"; return
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
