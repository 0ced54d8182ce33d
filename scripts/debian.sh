# Debian packages and the mirror, for the project's scripts (sourced, not run).
# shellcheck shell=bash

# need_packages PKG... : installs the Debian packages that are not installed yet (apt-get update
# first, only when something is missing). Without root it names the command to run instead.
need_packages() {
  local missing=() p
  for p in "$@"; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
  done
  [[ ${#missing[@]} -eq 0 ]] && return 0
  if [[ $EUID -ne 0 ]]; then
    printf '%s: missing Debian packages; install them with: sudo apt-get install %s\n' \
      "$(basename "$0")" "${missing[*]}" >&2
    return 1
  fi
  local log; log=$(mktemp)
  printf '[apt] installing %s\n' "${missing[*]}" >&2
  if { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      "${missing[@]}"; } >"$log" 2>&1; then
    rm -f "$log"
  else
    tail -n 5 "$log" >&2
    printf '%s: apt-get install %s failed (log: %s)\n' "$(basename "$0")" "${missing[*]}" "$log" >&2
    return 1
  fi
}

# debian_mirror : the Debian mirror this host's apt uses, or nothing (debootstrap then uses its own
# default).
debian_mirror() {
  grep -hsE '^(URIs:|deb )' /etc/apt/sources.list /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list \
    | grep -m1 -E 'debian/?$|debian ' | sed -E 's/^URIs: //; s/^deb (\[[^]]*\] )?//; s/ .*//' || true
}
