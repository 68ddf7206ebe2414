#!/usr/bin/env bash
# Debian packages from bookworm (the machine's suite), plus the trixie (pin 50)
# and unstable (pin 40) suites, added with low pins so that only what we ask for
# by suite comes from them (into private roots, never installed).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PACKAGES=(
  docker.io docker-registry skopeo curl jq iproute2 iptables zstd pigz busybox-static
  conmon runc containernetworking-plugins libseccomp-dev libgpgme-dev libbtrfs-dev pkg-config
  socat conntrack ethtool kmod util-linux python3
)

if [[ ! -f /etc/apt/sources.list.d/lpm-trixie.sources ]]; then
  log "apt: adding the trixie suite with pin priority 50"
  cat >/etc/apt/sources.list.d/lpm-trixie.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/lpm-trixie <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 50
PIN
  rm -f "$LPM_CACHE/.apt-updated"
fi

if [[ ! -f /etc/apt/sources.list.d/lpm-unstable.sources ]]; then
  log "apt: adding the unstable suite with pin priority 40"
  cat >/etc/apt/sources.list.d/lpm-unstable.sources <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: unstable
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
  cat >/etc/apt/preferences.d/lpm-unstable <<'PIN'
Package: *
Pin: release n=sid
Pin-Priority: 40
PIN
  rm -f "$LPM_CACHE/.apt-updated"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_update() {
  run_logged apt-update apt-get update
  touch "$LPM_CACHE/.apt-updated"
}
# The private roots download from trixie and unstable: their lists must be there.
if [[ ! -f "$LPM_CACHE/.apt-updated" ]] || ! apt-cache madison criu | grep -q trixie ||
  ! apt-cache madison criu | grep -q unstable; then
  log "apt: updating package lists"
  apt_update
fi
if ((${#missing[@]} == 0)); then log "apt: all packages present"; exit 0; fi
log "apt: installing ${missing[*]}"
# policy-rc.d keeps the package from starting a system dockerd: the harness
# runs a dockerd of its own.
printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d; chmod +x /usr/sbin/policy-rc.d
rc=0
DEBIAN_FRONTEND=noninteractive run_logged apt-install apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
rm -f /usr/sbin/policy-rc.d
exit "$rc"
