#!/usr/bin/env bash
# Builds, from Go modules, every binary the air-gapped cluster needs, into $FRAUD_CACHE_DIR/kind/bin:
#   kubernetes  kubelet kubeadm kubectl kube-apiserver kube-controller-manager kube-scheduler kube-proxy
#   pause       (C, static, from the Kubernetes module)   etcd   coredns   kind
#   kserve      KServe manager (controller + webhooks)     gateway  Envoy Gateway
#   skaffold    the developer loop (skaffold.yaml)
# Idempotent: each item is keyed by its pinned version and skipped when present.
# Usage: scripts/kind/build-bins.sh [all|kubernetes|pause|etcd|coredns|kind|kserve|gateway|skaffold]...
set -euo pipefail
source "$(dirname "$0")/lib.sh"
command -v go >/dev/null || die "Go toolchain not found (need go >= 1.24)"

# gobuild NAME VERSION GOMOD_BODY LDFLAGS PKG... : builds PKGs in a throwaway wrapper module into
# $KCACHE/tools/NAME-VERSION/ and links each resulting binary into $KBIN.
gobuild() {
  local name=$1 version=$2 gomod=$3 ldflags=$4; shift 4
  local dest="$KCACHE/tools/$name-$version" work t0=$SECONDS
  if [[ -f $dest/.done ]]; then log "$name $version: cached"; link "$dest"; return; fi
  log "$name $version: building (first run only)"
  work=$(mktemp -d); rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  printf 'module fraud.local/kind/%s\n\ngo 1.24\n\n%s\n' "$name" "$gomod" >"$work/go.mod"
  (cd "$work" && GOWORK=off CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.tmp/" "$@") \
    || { rm -rf "$work"; die "$name $version: go build failed"; }
  rm -rf "$work" "$dest"; mv "$dest.tmp" "$dest"; touch "$dest/.done"; link "$dest"
  log "$name $version: built in $((SECONDS - t0)) s"
}
link() { local f; for f in "$1"/*; do [[ -x $f ]] && ln -sfn "$f" "$KBIN/$(basename "$f")"; done; return 0; }

build_kubernetes() {
  # k8s.io/kubernetes replaces its staging modules with local paths: pin each to its published
  # v0.X.Y instead, and stamp the version (else kubeadm sees v0.0.0).
  local dir m reps="" v0="v0.${KUBERNETES_VERSION#v1.}" p=k8s.io/kubernetes/cmd
  dir=$(moddir "k8s.io/kubernetes@$KUBERNETES_VERSION") || die "go mod download k8s.io/kubernetes"
  for m in $(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$dir/go.mod"); do
    reps+="replace $m => $m $v0"$'\n'
  done
  gobuild kubernetes "$KUBERNETES_VERSION" "require k8s.io/kubernetes $KUBERNETES_VERSION"$'\n'"$reps" \
    "-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$(cut -d. -f2 <<<"$KUBERNETES_VERSION") -X k8s.io/component-base/version.gitTreeState=clean" \
    $p/kubelet $p/kubeadm $p/kubectl $p/kube-apiserver $p/kube-controller-manager $p/kube-scheduler $p/kube-proxy
}

build_pause() {
  local dest="$KCACHE/tools/pause-$KUBERNETES_VERSION" dir
  if [[ -f $dest/.done ]]; then log "pause: cached"; return; fi
  need_packages gcc libc6-dev || exit 1
  dir=$(moddir "k8s.io/kubernetes@$KUBERNETES_VERSION") || die "go mod download k8s.io/kubernetes"
  mkdir -p "$dest"
  gcc -Os -Wall -Werror -static -DVERSION="$PAUSE_TAG" -o "$dest/pause" "$dir/build/pause/linux/pause.c" \
    || die "gcc pause.c failed"
  strip "$dest/pause"; touch "$dest/.done"; log "pause: built"
}

build_etcd() {
  gobuild etcd "$ETCD_VERSION" "require go.etcd.io/etcd/server/v3 $ETCD_VERSION" "" go.etcd.io/etcd/server/v3
  # `go build` names the binary after the package directory (server): link it as etcd.
  ln -sfn "$KCACHE/tools/etcd-$ETCD_VERSION/server" "$KBIN/etcd"; rm -f "$KBIN/server"
}

build_coredns() {
  # CoreDNS' main package is the module root; it builds with the default plugin set.
  local dir
  dir=$(moddir "github.com/coredns/coredns@$COREDNS_VERSION") || die "go mod download coredns"
  local dest="$KCACHE/tools/coredns-$COREDNS_VERSION" work t0=$SECONDS
  if [[ -f $dest/.done ]]; then log "coredns: cached"; link "$dest"; return; fi
  log "coredns $COREDNS_VERSION: building"
  work=$(mktemp -d); cp -r "$dir/." "$work/"; chmod -R u+w "$work"
  mkdir -p "$dest"
  (cd "$work" && GOWORK=off CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w" -o "$dest/coredns" .) \
    || { rm -rf "$work"; die "coredns build failed"; }
  rm -rf "$work"; touch "$dest/.done"; link "$dest"; log "coredns: built in $((SECONDS - t0)) s"
}

build_kind() {
  gobuild kind "$KIND_VERSION" "require sigs.k8s.io/kind $KIND_VERSION" "" sigs.k8s.io/kind
}

build_in_copy() {
  # build_in_copy NAME VERSION MODULE LDFLAGS PKG... : modules whose go.mod has replace directives
  # are built inside a copy of the downloaded module.
  local name=$1 version=$2 mod=$3 ldflags=$4; shift 4
  local dest="$KCACHE/tools/$name-$version" work dir t0=$SECONDS
  if [[ -f $dest/.done ]]; then log "$name $version: cached"; link "$dest"; return; fi
  log "$name $version: building (first run only)"
  dir=$(moddir "$mod@$version") || die "go mod download $mod@$version"
  work=$(mktemp -d); cp -r "$dir/." "$work/"; chmod -R u+w "$work"; rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  (cd "$work" && GOWORK=off CGO_ENABLED=0 $NICE go build -trimpath -ldflags "-s -w $ldflags" -o "$dest.tmp/" "$@") \
    || { rm -rf "$work"; die "$name $version: go build failed"; }
  rm -rf "$work" "$dest"; mv "$dest.tmp" "$dest"; touch "$dest/.done"; link "$dest"
  log "$name $version: built in $((SECONDS - t0)) s"
}

build_kserve() { build_in_copy kserve "$KSERVE_VERSION" github.com/kserve/kserve "" ./cmd/manager; }
build_gateway() {
  build_in_copy envoy-gateway "$ENVOY_GATEWAY_VERSION" github.com/envoyproxy/gateway \
    "-X github.com/envoyproxy/gateway/internal/cmd/version.envoyGatewayVersion=$ENVOY_GATEWAY_VERSION" ./cmd/envoy-gateway
}

build_skaffold() {
  build_in_copy skaffold "$SKAFFOLD_VERSION" github.com/GoogleContainerTools/skaffold/v2 \
    "-X github.com/GoogleContainerTools/skaffold/v2/pkg/skaffold/version.version=$SKAFFOLD_VERSION" ./cmd/skaffold
}

main() {
  local what=("$@"); [[ ${#what[@]} -eq 0 || ${what[0]} == all ]] && what=(kubernetes pause etcd coredns kind kserve gateway skaffold)
  for w in "${what[@]}"; do
    case $w in
      kubernetes|pause|etcd|coredns|kind|kserve|gateway|skaffold) "build_$w" ;;
      *) die "unknown item '$w'" ;;
    esac
  done
}
main "$@"
