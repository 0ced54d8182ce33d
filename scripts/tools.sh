#!/usr/bin/env bash
# Installs the chart-tier tools into a project-owned cache, building them from Go modules:
#   helm, helm-docs, kube-apiserver, etcd, promql-check -> $FRAUD_CACHE_DIR/bin
#   KServe, Gateway API, prometheus-operator CRDs  -> $FRAUD_CACHE_DIR/crds/<source>
#   Kubernetes OpenAPI v3 spec (built-in schemas)  -> $FRAUD_CACHE_DIR/openapi/kubernetes
# Idempotent: each item is keyed by its pinned version and skipped when present.
# Usage: scripts/tools.sh [all|helm|helm-docs|kube-apiserver|etcd|promql-check|crds|openapi]...  (default: all)
# Prints `export PATH=...` hints on success; exits non-zero with one line on failure.
set -euo pipefail

HELM_VERSION=v3.22.0
HELM_DOCS_VERSION=v1.14.2
KUBERNETES_VERSION=v1.32.13
ETCD_VERSION=v3.5.35
KSERVE_VERSION=v0.20.0
GATEWAY_API_VERSION=v1.5.1
PROMETHEUS_OPERATOR_VERSION=v0.85.0

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE="${FRAUD_CACHE_DIR:-$HOME/.cache/fraud-detection}"
BIN="$CACHE/bin"
export GOMODCACHE="$CACHE/go/mod" GOCACHE="$CACHE/go/build" GOFLAGS="-mod=mod -buildvcs=false"
export CGO_ENABLED=0
[[ -d /usr/local/go/bin ]] && PATH="$PATH:/usr/local/go/bin"

step=""
log() { printf '[tools] %s\n' "$*" >&2; }
die() { printf 'tools.sh: %s failed: %s\n' "${step:-setup}" "$*" >&2; step=""; exit 1; }
trap 'rc=$?; [[ $rc -ne 0 && -n $step ]] && printf "tools.sh: %s failed (exit %s); details: %s\n" "$step" "$rc" "${LOG:-stderr}" >&2' EXIT

# An older local Go fetches the toolchain the modules ask for through the module proxy (GOTOOLCHAIN=auto).
command -v go >/dev/null || die "Go toolchain not found (need go >= 1.21 on PATH or in /usr/local/go/bin)"
mkdir -p "$BIN" "$CACHE/tools" "$CACHE/crds" "$CACHE/openapi" "$CACHE/logs"
LOG="$CACHE/logs/tools.log"   # the Go toolchain's own output goes here, not to the terminal
: >"$LOG"

# moddir MODULE@VERSION -> prints the extracted module directory (downloads on first use).
moddir() {
  local json
  json=$(go mod download -json "$1" 2>>"$LOG") || { printf '%s\n' "$json" >>"$LOG"; return 1; }
  sed -n 's/^\t"Dir": "\(.*\)",$/\1/p' <<<"$json"
}

# cached NAME VERSION : true (and bin/NAME linked) when that version is already built.
cached() {
  local exe="$CACHE/tools/$1-$2/$1"; step="$1 $2"
  [[ -x $exe ]] || return 1
  ln -sfn "$exe" "$BIN/$1"; log "$1 $2: cached"
}

# build NAME VERSION PKG GOMOD_BODY [LDFLAGS] : builds PKG inside a throwaway wrapper module.
build() {
  local name=$1 version=$2 pkg=$3 gomod=$4 ldflags=${5:-} dest="$CACHE/tools/$1-$2" work
  step="$name $version"; log "$step: building (first run only, takes minutes)"
  work=$(mktemp -d); mkdir -p "$dest"
  printf 'module fraud.local/tools/%s\n\ngo 1.24\n\n%s\n' "$name" "$gomod" >"$work/go.mod"
  (cd "$work" && GOWORK=off nice -n 10 go build -trimpath -ldflags "-s -w $ldflags" -o "$dest/$name.tmp" "$pkg") \
    >>"$LOG" 2>&1 || { rm -rf "$work"; die "go build $pkg (details: $LOG)"; }
  rm -rf "$work"; mv "$dest/$name.tmp" "$dest/$name"; ln -sfn "$dest/$name" "$BIN/$name"
  log "$step: done"
}

install_helm() {
  cached helm "$HELM_VERSION" && return
  # Like helm's Makefile: the default Kubernetes version of `helm template`/`lint` follows client-go.
  local dir minor p=helm.sh/helm/v3
  dir=$(moddir "$p@$HELM_VERSION") || die "go mod download $p (details: $LOG)"
  minor=$(sed -n 's#^\tk8s.io/client-go v0\.\([0-9]*\)\..*#\1#p' "$dir/go.mod")
  [[ -n $minor ]] || die "client-go version not found in $p go.mod"
  build helm "$HELM_VERSION" $p/cmd/helm "require $p $HELM_VERSION" \
    "-X $p/internal/version.version=$HELM_VERSION -X $p/pkg/chartutil.k8sVersionMajor=1 \
     -X $p/pkg/chartutil.k8sVersionMinor=$minor -X $p/pkg/lint/rules.k8sVersionMajor=1 \
     -X $p/pkg/lint/rules.k8sVersionMinor=$minor"
}

install_helm_docs() {
  # Renders the chart README's values table from the `# --` comments in values.yaml.
  cached helm-docs "$HELM_DOCS_VERSION" || build helm-docs "$HELM_DOCS_VERSION" \
    github.com/norwoodj/helm-docs/cmd/helm-docs "require github.com/norwoodj/helm-docs $HELM_DOCS_VERSION" \
    "-X main.version=${HELM_DOCS_VERSION#v}"
}

install_etcd() {
  # The etcd 3.5 server module replaces its siblings with relative paths, so it is built
  # through a wrapper module that requires it at the release version.
  cached etcd "$ETCD_VERSION" || build etcd "$ETCD_VERSION" go.etcd.io/etcd/server/v3 \
    "require go.etcd.io/etcd/server/v3 $ETCD_VERSION"
}

install_kube_apiserver() {
  cached kube-apiserver "$KUBERNETES_VERSION" && return
  # k8s.io/kubernetes replaces its staging modules with local paths; the wrapper pins each
  # staging module to the matching published v0.X.Y instead.
  local dir m reps="" v0="v0.${KUBERNETES_VERSION#v1.}"
  dir=$(moddir "k8s.io/kubernetes@$KUBERNETES_VERSION") || die "go mod download k8s.io/kubernetes (details: $LOG)"
  for m in $(sed -n 's#^\t\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$dir/go.mod"); do
    reps+="replace $m => $m $v0"$'\n'
  done
  local vf="-X k8s.io/component-base/version.gitVersion=$KUBERNETES_VERSION"
  build kube-apiserver "$KUBERNETES_VERSION" k8s.io/kubernetes/cmd/kube-apiserver \
    "require k8s.io/kubernetes $KUBERNETES_VERSION"$'\n'"$reps" \
    "$vf -X k8s.io/client-go/pkg/version.gitVersion=$KUBERNETES_VERSION"
}

install_promql_check() {
  # Our own small Go program (scripts/promql-check) around Prometheus' PromQL parser; keyed by
  # the hash of its sources so an edit rebuilds it.
  local src="$ROOT/scripts/promql-check" version dest
  version=$(cat "$src/go.mod" "$src/go.sum" "$src/main.go" | sha256sum | cut -c1-12)
  cached promql-check "$version" && return
  step="promql-check $version"; log "$step: building"
  dest="$CACHE/tools/promql-check-$version"; mkdir -p "$dest"
  (cd "$src" && GOWORK=off nice -n 10 go build -trimpath -ldflags "-s -w" -o "$dest/promql-check.tmp" .) \
    >>"$LOG" 2>&1 || die "go build scripts/promql-check (details: $LOG)"
  mv "$dest/promql-check.tmp" "$dest/promql-check"; ln -sfn "$dest/promql-check" "$BIN/promql-check"
  log "$step: done"
}

# copy_yaml SRC_DIR DEST_DIR : copies *.yaml of one directory (no recursion) into a versioned dir.
copy_yaml() {
  local src=$1 dest=$2
  [[ -d "$src" ]] || die "expected directory $src in the module"
  rm -rf "$dest.tmp"; mkdir -p "$dest.tmp"
  find "$src" -maxdepth 1 -name '*.yaml' ! -name 'kustomization.yaml' -exec cp {} "$dest.tmp/" \;
  chmod -R u+w "$dest.tmp"; rm -rf "$dest"; mv "$dest.tmp" "$dest"
}

install_crds() {
  local d
  step="KServe CRDs $KSERVE_VERSION"
  if [[ ! -d "$CACHE/crds/kserve-$KSERVE_VERSION" ]]; then
    log "$step: downloading"; d=$(moddir "github.com/kserve/kserve@$KSERVE_VERSION") || die "go mod download (details: $LOG)"
    copy_yaml "$d/config/crd/full" "$CACHE/crds/kserve-$KSERVE_VERSION"
  fi
  step="Gateway API CRDs $GATEWAY_API_VERSION"
  if [[ ! -d "$CACHE/crds/gateway-api-$GATEWAY_API_VERSION" ]]; then
    log "$step: downloading"; d=$(moddir "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION") || die "go mod download (details: $LOG)"
    copy_yaml "$d/config/crd/standard" "$CACHE/crds/gateway-api-$GATEWAY_API_VERSION"
  fi
  step="prometheus-operator CRDs $PROMETHEUS_OPERATOR_VERSION"
  if [[ ! -d "$CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION" ]]; then
    log "$step: downloading"
    d=$(moddir "github.com/prometheus-operator/prometheus-operator@$PROMETHEUS_OPERATOR_VERSION") || die "go mod download (details: $LOG)"
    copy_yaml "$d/example/prometheus-operator-crd" "$CACHE/crds/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
  fi
  for src in kserve-$KSERVE_VERSION gateway-api-$GATEWAY_API_VERSION prometheus-operator-$PROMETHEUS_OPERATOR_VERSION; do
    ln -sfn "$src" "$CACHE/crds/${src%-v*}"
  done
  log "CRDs: ready in $CACHE/crds"
}

install_openapi() {
  step="Kubernetes OpenAPI $KUBERNETES_VERSION"
  local dest="$CACHE/openapi/kubernetes-$KUBERNETES_VERSION" d
  if [[ ! -d "$dest" ]]; then
    log "$step: downloading"; d=$(moddir "k8s.io/kubernetes@$KUBERNETES_VERSION") || die "go mod download (details: $LOG)"
    rm -rf "$dest.tmp"; cp -r "$d/api/openapi-spec/v3" "$dest.tmp"; chmod -R u+w "$dest.tmp"; mv "$dest.tmp" "$dest"
  fi
  ln -sfn "kubernetes-$KUBERNETES_VERSION" "$CACHE/openapi/kubernetes"
  log "OpenAPI: ready in $CACHE/openapi/kubernetes"
}

main() {
  local what=("$@"); [[ ${#what[@]} -eq 0 || ${what[0]} == all ]] && what=(helm helm-docs etcd kube-apiserver promql-check crds openapi)
  for w in "${what[@]}"; do
    case $w in
      helm) install_helm ;; helm-docs) install_helm_docs ;; etcd) install_etcd ;; kube-apiserver) install_kube_apiserver ;;
      promql-check) install_promql_check ;;
      crds) install_crds ;; openapi) install_openapi ;;
      *) step="arguments"; die "unknown item '$w' (expected all|helm|helm-docs|etcd|kube-apiserver|promql-check|crds|openapi)" ;;
    esac
  done
  step=""
  log "all set: export PATH=\"$BIN:\$PATH\" FRAUD_CACHE_DIR=\"$CACHE\""
}

main "$@"
