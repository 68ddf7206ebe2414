#!/usr/bin/env bash
# CRIU 4.1.1, etcd 3.5.16 and checkpointctl 1.3.0 from Debian 13, extracted
# into a private root and run through that root's own loader: Debian 12's
# CRIU 3.17 fails on this kernel, and nothing of the system is upgraded.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="trixie-root-criu$CRIU_VERSION-etcd$ETCD_VERSION-cpctl$CHECKPOINTCTL_VERSION"
bin="$LPM_CACHE/bin"
mkdir -p "$bin"

write_wrappers() {
  local root="$LPM_CACHE/$name/root"
  local lp="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
  local tool
  for tool in criu:usr/sbin/criu etcd:usr/bin/etcd etcdctl:usr/bin/etcdctl checkpointctl:usr/bin/checkpointctl; do
    cat >"$bin/${tool%%:*}" <<W
#!/bin/sh
exec "$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$lp" "$root/${tool#*:}" "\$@"
W
    chmod +x "$bin/${tool%%:*}"
  done
}

if ! cache_ready "$name"; then
  log "trixie root: downloading criu $CRIU_VERSION, etcd $ETCD_VERSION, checkpointctl $CHECKPOINTCTL_VERSION"
  staging=$(cache_staging "$name")
  pkgs=(criu libcompel1 libprotobuf-c1 libnl-3-200 libnet1 libnftables1 libnftnl11 libmnl0
    libjansson4 libxtables12 libgnutls30t64 libp11-kit0 libidn2-0 libunistring5 libtasn1-6
    libnettle8t64 libhogweed6t64 libgmp10 libffi8 libbsd0 libmd0 libuuid1 libc6 libgcc-s1
    etcd-server etcd-client checkpointctl)
  mkdir -p "$staging/debs" "$staging/root"
  run_logged trixie-download bash -c "cd '$staging/debs' && apt-get download -t trixie ${pkgs[*]}"
  for deb in "$staging"/debs/*.deb; do dpkg-deb -x "$deb" "$staging/root"; done
  rm -rf "$staging/debs"
  cache_publish "$name" "$staging"
fi
write_wrappers
"$bin/criu" --version | grep -q "$CRIU_VERSION" || die "criu wrapper does not report $CRIU_VERSION"
"$bin/etcd" --version | grep -q "$ETCD_VERSION" || die "etcd wrapper does not report $ETCD_VERSION"
"$bin/checkpointctl" version >/dev/null 2>&1 || "$bin/checkpointctl" --help >/dev/null || die "checkpointctl does not run"
# Self-test: CRIU must accept this kernel.
out=$("$bin/criu" check 2>&1) || { echo "$out" >&2; die "criu check failed (see above)"; }
echo "$out" | grep -q "Looks good" || { echo "$out" >&2; die "criu check did not say 'Looks good'"; }
log "trixie root: criu $CRIU_VERSION (criu check: Looks good), etcd $ETCD_VERSION, checkpointctl ready"
