#!/usr/bin/env bash
# Builds the project's images with the local docker engine.
#   docker/build.sh [base|predictor|jobs|all]      (default: all = predictor + jobs)
# Environment:
#   IMAGE_REPO_PREFIX  repository prefix (default fraud-detection)  -> fraud-detection/predictor
#   IMAGE_TAG          tag (default: short git commit, "-dirty" when the tree has changes)
#   BASE_IMAGE         Python 3.11 base (default python:3.11-slim-bookworm); set BASE_IMAGE=local
#                      to build one from Debian packages with debootstrap (no registry needed).
#   IMAGE              when set (as by Skaffold's custom builder), the full name of the one image built.
#   DEV_SYNC           true: /app belongs to the server's user (10001), so `skaffold dev` can sync
#                      sources into a running container (the kind profile sets it); default false.
# The build context is the repository's tracked files only (git ls-files), never .venv or caches.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PREFIX=${IMAGE_REPO_PREFIX:-fraud-detection}
TAG=${IMAGE_TAG:-$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- . 2>/dev/null || echo -dirty)}
BASE_IMAGE=${BASE_IMAGE:-python:3.11-slim-bookworm}
# The tag names what the base holds beyond minbase (libgomp1: LightGBM's OpenMP runtime), so a base
# made before it was added is built again rather than reused.
LOCAL_BASE=${PREFIX}/python-base:3.11-bookworm-gomp

die() { echo "docker/build.sh: $*" >&2; exit 1; }
source "$ROOT/scripts/debian.sh"
command -v docker >/dev/null || die "docker not found"
docker info >/dev/null 2>&1 || die "no docker engine answers (start dockerd first)"

# A Debian bookworm root filesystem with CPython 3.11 (Debian's python3), imported as an image.
build_base() {
  need_packages debootstrap || exit 1
  local rootfs log; rootfs=$(mktemp -d); log=$(mktemp)
  echo "[build] base image $LOCAL_BASE (debootstrap bookworm, log: $log)" >&2
  # shellcheck disable=SC2046
  debootstrap --variant=minbase --include=python3,python3-venv,python-is-python3,ca-certificates,libgomp1 \
    bookworm "$rootfs" $(debian_mirror) >"$log" 2>&1 || { rm -rf "$rootfs"; tail -n 5 "$log" >&2; die "debootstrap failed"; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8 PATH=/usr/local/bin:/usr/bin:/bin' --change 'CMD ["python3"]' \
    - "$LOCAL_BASE" >/dev/null || { rm -rf "$rootfs"; die "docker import failed"; }
  rm -rf "$rootfs" "$log"
}

# build_context : the tracked files as a tar stream, plus build-ca.pem, the certificate authorities
# this host trusts (a TLS-inspecting proxy's too). Only the Dockerfiles' build stage reads it, for
# pip; the final images keep their own Debian bundle.
build_context() {
  local ctx; ctx=$(mktemp -d)
  (cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | tar --null -T - -cf "$ctx/context.tar")
  cp /etc/ssl/certs/ca-certificates.crt "$ctx/build-ca.pem" 2>/dev/null || : >"$ctx/build-ca.pem"
  tar -C "$ctx" -rf "$ctx/context.tar" build-ca.pem
  cat "$ctx/context.tar"; rm -rf "$ctx"
}

build_image() {
  local name=$1 image=${IMAGE:-$PREFIX/$1:$TAG} base=$BASE_IMAGE
  if [[ $base == local ]]; then
    docker image inspect "$LOCAL_BASE" >/dev/null 2>&1 || build_base
    base=$LOCAL_BASE
  fi
  echo "[build] $image (base $base)" >&2
  local previous; previous=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
  local owner=0:0; [[ ${DEV_SYNC:-false} == true ]] && owner=10001:10001
  build_context | docker build -f "docker/$name.Dockerfile" --build-arg "BASE_IMAGE=$base" \
    --build-arg "APP_OWNER=$owner" -t "$image" - || die "building $image failed"
  # A rebuild under the same tag leaves the old image behind untagged (gigabytes per build).
  if [[ -n $previous && $previous != $(docker image inspect -f '{{.Id}}' "$image") ]]; then
    docker image rm "$previous" >/dev/null 2>&1 || true  # still used by a container or tag: keep it
  fi
  if [[ ${PUSH_IMAGE:-false} == true ]]; then docker push "$image" || die "pushing $image failed"; fi
  echo "$image"
}

case ${1:-all} in
  base) build_base ;;
  predictor|jobs) build_image "$1" ;;
  all) build_image predictor; build_image jobs ;;
  *) die "unknown target '$1' (expected base|predictor|jobs|all)" ;;
esac
