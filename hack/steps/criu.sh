#!/usr/bin/env bash
# CRIU >= 4.2 in a private root. Linux 6.16 restricted SO_PASSCRED/SO_PASSSEC
# to Unix and netlink sockets; CRIU 4.1.1 (Debian 13) treats the refusal as
# fatal, so no process with a TCP or UDP socket can be dumped on newer kernels.
# CRIU 4.2 fixed it. Source: Debian unstable ("sid"), pinned to the exact
# package version below, extracted with its own libc and loader into
# ~/.cache/lpm/criu-<version>/root and run through that loader, so nothing of
# the system is upgraded. The apt step adds the unstable suite with pin 40.
# Self-test: `criu check`, then dump and restore of a process that holds a
# listening TCP socket and a UDP socket; its in-memory count must continue.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="criu-$CRIU_DEB_VERSION-sid"
root="$LPM_CACHE/$name/root"
bin="$LPM_CACHE/bin"
mkdir -p "$bin"

if ! cache_ready "$name"; then
  log "criu: downloading criu $CRIU_DEB_VERSION from Debian unstable"
  staging=$(cache_staging "$name")
  # criu's own packages at the pinned version; its libraries at whatever
  # unstable serves with them (the loader and libc come from the same suite).
  pkgs=("criu=$CRIU_DEB_VERSION" "libcompel1=$CRIU_DEB_VERSION" libprotobuf-c1 libnl-3-200 libnet9
    libnftables1 libnftnl11 libmnl0 libjansson4 libxtables12 libgnutls30t64 libp11-kit0 libidn2-0
    libunistring5 libtasn1-6 libnettle8t64 libhogweed6t64 libgmp10 libffi8 libbsd0 libmd0 libuuid1
    libc6 libgcc-s1)
  mkdir -p "$staging/debs" "$staging/root"
  if ! (cd "$staging/debs" && apt-get download -t unstable "${pkgs[@]}") >"$LPM_LOGS/criu-download.log" 2>&1; then
    tail -n 20 "$LPM_LOGS/criu-download.log" >&2
    die "cannot download criu $CRIU_DEB_VERSION from Debian unstable (apt-cache policy criu shows what is served; bump CRIU_DEB_VERSION in hack/lib.sh if unstable moved on)"
  fi
  for deb in "$staging"/debs/*.deb; do dpkg-deb -x "$deb" "$staging/root"; done
  rm -rf "$staging/debs"
  lp="$staging/root/usr/lib/x86_64-linux-gnu:$staging/root/lib/x86_64-linux-gnu"
  missing=$("$staging/root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$lp" --list \
    "$staging/root/usr/sbin/criu" 2>&1 | grep "not found" || true)
  [[ -z "$missing" ]] || die "criu $CRIU_DEB_VERSION lacks libraries in its root: $missing"
  cache_publish "$name" "$staging"
fi

lp="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
install_file "$bin/criu" <<W
#!/bin/sh
exec "$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$lp" "$root/usr/sbin/criu" "\$@"
W
grep -q "Version: $CRIU_VERSION" <<<"$("$bin/criu" --version)" || die "criu wrapper does not report $CRIU_VERSION"
out=$("$bin/criu" check 2>&1) || { echo "$out" >&2; die "criu check failed (see above)"; }
grep -q "Looks good" <<<"$out" || { echo "$out" >&2; die "criu check did not say 'Looks good'"; }

# Node CRIU options: runc tells CRIU to read /etc/criu/runc.conf. containerd's
# CRI checkpoint never asks for --tcp-established, so without this CRIU
# refuses to dump any process with a connected TCP socket (every server with a
# client). The connection cannot follow the pod to its new address anyway:
# dump it (tcp-established) and restore it closed (tcp-close), so the client
# sees a reset and reconnects. A file that is not lpm's is left alone.
conf=/etc/criu/runc.conf
marker="# Managed by lpm (hack/steps/criu.sh)"
if [[ ! -f "$conf" ]] || head -n1 "$conf" | grep -qF "$marker"; then
  mkdir -p /etc/criu
  printf '%s\ntcp-established\ntcp-close\n' "$marker" >"$conf.tmp" && mv "$conf.tmp" "$conf"
elif ! grep -q "^tcp-established" "$conf" || ! grep -q "^tcp-close" "$conf"; then
  log "criu: WARNING: $conf is not lpm's and lacks tcp-established/tcp-close: pods with open TCP connections will not checkpoint"
fi

# Smoke: dump and restore a process holding TCP and UDP sockets.
smoke() {
  local dir; dir=$(mktemp -d /tmp/lpm-criu-smoke.XXXXXX)
  local port=$((20000 + RANDOM % 20000))
  local pid ok=1 first second
  setsid /usr/bin/python3 "$LPM_ROOT/hack/smoke/criu_sockets.py" "$port" </dev/null >/dev/null 2>&1 &
  pid=$!; disown "$pid"
  for _ in $(seq 50); do first=$(socat -T1 - "TCP:127.0.0.1:$port" 2>/dev/null) && break; sleep 0.1; done
  if [[ -z "$first" ]]; then
    kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; die "criu smoke: the socket workload did not answer"
  fi
  mkdir -p "$dir/img"
  if ! "$bin/criu" dump -t "$pid" -D "$dir/img" -o dump.log >/dev/null 2>&1; then
    grep -E "^\(?[0-9. ]*\)? *Error" "$dir/img/dump.log" >&2 || tail -n 5 "$dir/img/dump.log" >&2
    kill -9 "$pid" 2>/dev/null; rm -rf "$dir"; die "criu smoke: dump of a process with TCP and UDP sockets failed"
  fi
  if ! "$bin/criu" restore -d -D "$dir/img" -o restore.log >/dev/null 2>&1; then
    tail -n 5 "$dir/img/restore.log" >&2; rm -rf "$dir"; die "criu smoke: restore failed"
  fi
  second=$(socat -T1 - "TCP:127.0.0.1:$port" 2>/dev/null || true)
  kill -9 "$pid" 2>/dev/null || true
  rm -rf "$dir"
  [[ "$second" == "$((first + 1))" ]] ||
    die "criu smoke: restored workload answered '$second' after '$first' (its count did not continue)"
  log "criu: smoke dump/restore of TCP+UDP sockets ok (count $first -> $second)"
}
smoke
log "criu $CRIU_VERSION ($CRIU_DEB_VERSION from Debian unstable) ready: criu check says Looks good"
