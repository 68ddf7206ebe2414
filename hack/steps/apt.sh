#!/usr/bin/env bash
# Debian packages from bookworm (the machine's suite), plus the trixie (pin 50)
# and unstable (pin 40) suites, added with low pins so that only what we ask for
# by suite comes from them (into private roots, never installed).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

PACKAGES=(
  docker.io docker-registry skopeo curl jq iproute2 iptables zstd pigz busybox-static
  conmon runc containernetworking-plugins libseccomp-dev libgpgme-dev libbtrfs-dev pkg-config
  socat conntrack ethtool kmod util-linux python3
  # libcrypto.so.3 (libssl3) is the agent's AES-GCM (storage/aes_gcm.ts); the images carry openssl.
  openssl libssl3
  # The memory toucher (testing/memory_toucher.c): a static program built for the pre-copy test
  # and the migration benchmark.
  gcc libc6-dev
)

# add_suite NAME SUITE CODENAME PIN: a Debian suite apt may download from by
# name only (pin below 100: nothing installed or upgraded from it by default).
add_suite() {
  local name="$1" suite="$2" codename="$3" pin="$4"
  [[ -f "/etc/apt/sources.list.d/lpm-$name.sources" ]] && return 0
  log "apt: adding the $suite suite with pin priority $pin"
  printf 'Types: deb\nURIs: http://deb.debian.org/debian\nSuites: %s\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
    "$suite" >"/etc/apt/sources.list.d/lpm-$name.sources"
  printf 'Package: *\nPin: release n=%s\nPin-Priority: %s\n' "$codename" "$pin" \
    >"/etc/apt/preferences.d/lpm-$name"
  rm -f "$LPM_CACHE/.apt-updated"
}
add_suite trixie trixie trixie 50
add_suite unstable unstable sid 40

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
apt_update() {
  run_logged apt-update apt-get update
  touch "$LPM_CACHE/.apt-updated"
}
# The private roots download from trixie and unstable: their lists must be there.
if [[ ! -f "$LPM_CACHE/.apt-updated" ]] || ! grep -q trixie <<<"$(apt-cache madison criu)" ||
  ! grep -q unstable <<<"$(apt-cache madison criu)"; then
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
