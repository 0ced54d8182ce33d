#!/usr/bin/env bash
# Installs the cluster add-ons the chart needs, in order, with helm and kubectl (needs the public
# chart registries). Versions are the set KServe v0.20 is tested with.
#   k8s/install-addons.sh [--with-monitoring]
set -euo pipefail
cd "$(dirname "$0")"

CERT_MANAGER_VERSION=v1.17.0
ENVOY_GATEWAY_VERSION=v1.8.1
KSERVE_VERSION=v0.20.0

step() { printf '[addons] %s\n' "$*" >&2; }

step "cert-manager $CERT_MANAGER_VERSION (KServe's webhook certificates)"
helm repo add jetstack https://charts.jetstack.io --force-update >/dev/null
helm upgrade -i cert-manager jetstack/cert-manager --version "$CERT_MANAGER_VERSION" \
  -n cert-manager --create-namespace --set crds.enabled=true --wait

step "Envoy Gateway $ENVOY_GATEWAY_VERSION (also installs the Gateway API CRDs)"
helm upgrade -i eg oci://docker.io/envoyproxy/gateway-helm --version "$ENVOY_GATEWAY_VERSION" \
  -n envoy-gateway-system --create-namespace --wait

step "KServe $KSERVE_VERSION, Standard mode, Gateway API"
helm upgrade -i kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "$KSERVE_VERSION" \
  -n kserve --create-namespace --wait
helm upgrade -i kserve oci://ghcr.io/kserve/charts/kserve-resources --version "$KSERVE_VERSION" \
  -n kserve -f kserve-values.yaml --wait

step "GatewayClass envoy and Gateway kserve/kserve-ingress-gateway"
kubectl apply -f gateway.yaml -f gateway-policies.yaml

if [[ ${1:-} == --with-monitoring ]]; then
  step "kube-prometheus-stack and Pushgateway in namespace monitoring"
  helm repo add prometheus-community https://prometheus-community.github.io/helm-charts --force-update >/dev/null
  helm upgrade -i kube-prometheus-stack prometheus-community/kube-prometheus-stack \
    -n monitoring --create-namespace -f monitoring/kube-prometheus-stack-values.yaml --wait
  helm upgrade -i prometheus-pushgateway prometheus-community/prometheus-pushgateway \
    -n monitoring -f monitoring/pushgateway-values.yaml --wait
fi
step "done: helm install fraud charts/fraud-detection -n fraud --create-namespace"
