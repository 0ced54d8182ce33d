#!/usr/bin/env bash
# Installs the cluster add-ons into the kind cluster from locally built images, with the charts and
# CRDs that ship inside the Go modules of each project (no chart or container registry needed):
#   Envoy Gateway (+ Gateway API CRDs), GatewayClass `envoy`, Gateway kserve/kserve-ingress-gateway
#   KServe (CRDs + controller, Standard mode) with an openssl-made webhook certificate
#   prometheus-operator CRDs (so the chart's PodMonitor/PrometheusRule apply), Prometheus, Pushgateway
# Idempotent. Usage: scripts/kind/addons.sh
set -euo pipefail
source "$(dirname "$0")/lib.sh"

export KUBECONFIG="$KUBECONFIG_FILE"
HERE=$(cd "$(dirname "$0")" && pwd)
K() { "$KBIN/kubectl" "$@"; }
HELM="$CACHE/bin/helm"
[[ -x $HELM ]] || "$ROOT/scripts/tools.sh" helm crds >/dev/null
[[ -d $CACHE/crds/prometheus-operator ]] || "$ROOT/scripts/tools.sh" crds >/dev/null

install_gateway() {
  local src dir="$KCACHE/charts/gateway-helm-$ENVOY_GATEWAY_VERSION"
  if [[ ! -f $dir/values.yaml ]]; then
    src=$(moddir "github.com/envoyproxy/gateway@$ENVOY_GATEWAY_VERSION")/charts/gateway-helm
    rm -rf "$dir"; mkdir -p "$(dirname "$dir")"; cp -r "$src" "$dir"; chmod -R u+w "$dir"
    sed -e "s#\${GatewayImage}#$EG_IMAGE#; s#\${GatewayImagePullPolicy}#IfNotPresent#" \
      "$dir/values.tmpl.yaml" >"$dir/values.yaml"
    sed -i "s/^version: .*/version: ${ENVOY_GATEWAY_VERSION#v}/; s/^appVersion: .*/appVersion: \"$ENVOY_GATEWAY_VERSION\"/" "$dir/Chart.yaml"
  fi
  log "Envoy Gateway $ENVOY_GATEWAY_VERSION"
  "$HELM" upgrade --install eg "$dir" -n envoy-gateway-system --create-namespace \
    --set global.images.envoyProxy.image="$ENVOY_IMAGE" --set global.images.envoyProxy.pullPolicy=IfNotPresent \
    --set topologyInjector.enabled=false --wait --timeout 5m >/dev/null || die "helm install Envoy Gateway failed"
  K create namespace kserve --dry-run=client -o yaml | K apply -f - >/dev/null
  { sed "s#\${ENVOY_IMAGE}#$ENVOY_IMAGE#; s#\${GATEWAY_PORT}#$GATEWAY_PORT#" "$HERE/manifests/gateway.yaml"; echo ---; cat "$ROOT/k8s/gateway-policies.yaml"; } \
    | K apply -f - >/dev/null || die "applying the Gateway failed"
  K -n envoy-gateway-system wait --for=condition=Available deploy \
    -l gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway --timeout=180s >/dev/null 2>&1 \
    || { sleep 10; K -n envoy-gateway-system wait --for=condition=Available deploy \
      -l gateway.envoyproxy.io/owning-gateway-name=kserve-ingress-gateway --timeout=180s >/dev/null; } \
    || die "the Envoy data plane of Gateway kserve/kserve-ingress-gateway is not available"
}

# webhook_cert NAMESPACE SERVICE SECRET : a CA and a serving certificate for SERVICE, stored as a
# kubernetes.io/tls Secret (with ca.crt); prints the CA in base64 for the webhooks' caBundle.
webhook_cert() {
  local ns=$1 svc=$2 secret=$3 d
  d="$KCACHE/certs/$svc"
  if [[ ! -f $d/tls.crt ]]; then
    mkdir -p "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=$svc-ca" \
      -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=$svc.$ns.svc" -keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null
    printf 'subjectAltName=DNS:%s,DNS:%s.%s,DNS:%s.%s.svc,DNS:%s.%s.svc.cluster.local\n' \
      "$svc" "$svc" "$ns" "$svc" "$ns" "$svc" "$ns" >"$d/ext.cnf"
    openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 3650 \
      -extfile "$d/ext.cnf" -out "$d/tls.crt" 2>/dev/null || die "openssl failed"
  fi
  K -n "$ns" create secret generic "$secret" --type=kubernetes.io/tls --from-file=tls.crt="$d/tls.crt" \
    --from-file=tls.key="$d/tls.key" --from-file=ca.crt="$d/ca.crt" --dry-run=client -o yaml | K apply -f - >/dev/null
  base64 -w0 "$d/ca.crt"
}

install_kserve() {
  local mod; mod=$(moddir "github.com/kserve/kserve@$KSERVE_VERSION")
  log "KServe $KSERVE_VERSION CRDs"
  "$HELM" template kserve-crd "$mod/charts/kserve-crd" | K apply --server-side --force-conflicts -f - >/dev/null \
    || die "KServe CRDs failed"
  local ca; ca=$(webhook_cert kserve kserve-webhook-server-service kserve-webhook-server-cert)
  log "KServe controller (Standard mode, Gateway API)"
  # cert-manager objects are left out: the certificate above replaces them. The metrics proxy
  # sidecar (kube-rbac-proxy) is dropped: nothing here scrapes the controller.
  "$HELM" template kserve "$mod/charts/kserve-resources" -n kserve -f "$ROOT/k8s/kserve-values.yaml" \
    --set kserve.controller.imagePullPolicy=IfNotPresent \
    | awk 'BEGIN{RS="\n---\n"; ORS="\n---\n"} !/\nkind: (Certificate|Issuer)\n/ && !/^kind: (Certificate|Issuer)\n/' \
    >"$KCACHE/kserve-resources.yaml"
  local i
  for i in 1 2 3 4 5 6; do
    K apply --server-side --force-conflicts -f "$KCACHE/kserve-resources.yaml" >/dev/null 2>"$KCACHE/kserve-apply.err" && break
    sleep 10
  done
  [[ $i -lt 6 ]] || { cat "$KCACHE/kserve-apply.err" >&2; die "applying KServe failed"; }
  local w
  for w in $(K get mutatingwebhookconfigurations,validatingwebhookconfigurations -o name | grep -i kserve); do
    K get "$w" -o json | jq --arg ca "$ca" '.webhooks |= map(.clientConfig.caBundle = $ca)' | K replace -f - >/dev/null
  done
  if K -n kserve get deploy kserve-controller-manager -o jsonpath='{.spec.template.spec.containers[*].name}' | grep -qw kube-rbac-proxy; then
    K -n kserve patch deploy kserve-controller-manager --type=json \
      -p '[{"op":"remove","path":"/spec/template/spec/containers/1"}]' >/dev/null
  fi
  K -n kserve rollout status deploy/kserve-controller-manager --timeout=5m >/dev/null || die "KServe controller not ready"
}

install_monitoring() {
  log "prometheus-operator CRDs, Prometheus, Pushgateway"
  K apply --server-side --force-conflicts -f "$CACHE/crds/prometheus-operator/" >/dev/null || die "prometheus-operator CRDs failed"
  sed "s#\${PROMETHEUS_PORT}#$PROMETHEUS_PORT#" "$HERE/manifests/monitoring.yaml" | K apply -f - >/dev/null \
    || die "monitoring manifests failed"
  K -n monitoring rollout status deploy/prometheus deploy/pushgateway --timeout=3m >/dev/null || die "Prometheus not ready"
}

case ${1:-all} in
  all) install_gateway; install_kserve; install_monitoring ;;
  gateway) install_gateway ;; kserve) install_kserve ;; monitoring) install_monitoring ;;
  *) die "usage: $0 [all|gateway|kserve|monitoring]" ;;
esac
log "add-ons ready"
