#!/usr/bin/env bash
# Makes sure a Docker engine answers. When none runs, starts dockerd in the background (log and
# pid under $FRAUD_CACHE_DIR/kind/dockerd). Where the capability bounding set lacks CAP_SYS_RESOURCE
# (some VMs and sandboxes), Docker 20.10 cannot start --privileged containers ("unable to apply
# caps: operation not permitted"), so the engine gets an OCI runtime wrapper as its default runtime
# that drops that one capability from container and exec specs before calling runc.
# Usage: scripts/kind/dockerd.sh   (needs root; installs docker.io, iptables and jq when missing)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

STATE="$KCACHE/dockerd"
mkdir -p "$STATE"

needs_wrapper() {
  # CAP_SYS_RESOURCE is capability 24.
  local bnd; bnd=$(sed -n 's/^CapBnd:\t//p' /proc/self/status)
  (( (0x$bnd >> 24 & 1) == 0 ))
}

write_wrapper() {
  local runc; runc=$(command -v runc) || die "runc not found (it comes with docker.io)"
  cat >"$STATE/runc-nosysresource" <<WRAP
#!/bin/sh
# OCI runtime wrapper: removes CAP_SYS_RESOURCE (absent from this host's bounding set) from the
# bundle's config.json and from exec process specs, then runs runc.
drop() { jq '(.. | objects | select(has("bounding")) | .[]?) |= (if type == "array" then map(select(. != "CAP_SYS_RESOURCE")) else . end)' "\$1" >"\$1.tmp" && mv "\$1.tmp" "\$1"; }
prev=""
for a in "\$@"; do
  case \$prev in
    --bundle|-b) [ -f "\$a/config.json" ] && drop "\$a/config.json" ;;
    --process|-p) [ -f "\$a" ] && drop "\$a" ;;
  esac
  case \$a in
    --bundle=*) b=\${a#--bundle=}; [ -f "\$b/config.json" ] && drop "\$b/config.json" ;;
    --process=*) p=\${a#--process=}; [ -f "\$p" ] && drop "\$p" ;;
  esac
  prev=\$a
done
exec $runc "\$@"
WRAP
  chmod +x "$STATE/runc-nosysresource"
}

if docker info >/dev/null 2>&1; then
  log "docker engine answers"; exit 0
fi
[[ $(id -u) == 0 ]] || die "no docker engine answers and starting one needs root"
need_packages docker.io iptables jq || exit 1

cfg="$STATE/daemon.json"
if needs_wrapper; then
  write_wrapper
  printf '{"default-runtime":"nosysresource","runtimes":{"nosysresource":{"path":"%s"}}}\n' \
    "$STATE/runc-nosysresource" >"$cfg"
  log "CAP_SYS_RESOURCE missing from the bounding set: runc wrapper is the default runtime"
else
  echo '{}' >"$cfg"
fi
log "starting dockerd (log: $STATE/dockerd.log)"
setsid dockerd --config-file "$cfg" >"$STATE/dockerd.log" 2>&1 </dev/null &
echo $! >"$STATE/pid"
for _ in $(seq 60); do docker info >/dev/null 2>&1 && { log "docker engine up"; exit 0; }; sleep 1; done
tail -5 "$STATE/dockerd.log" >&2
die "dockerd did not answer within 60 s"
