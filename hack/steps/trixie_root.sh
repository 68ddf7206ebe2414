#!/usr/bin/env bash
# etcd 3.5.16 and checkpointctl 1.3.0 from Debian 13, extracted into a private
# root and run through that root's own loader, so nothing of the system is
# upgraded. CRIU comes from hack/steps/criu.sh (Debian unstable).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="trixie-root-etcd$ETCD_VERSION-cpctl$CHECKPOINTCTL_VERSION"
bin="$LPM_CACHE/bin"
mkdir -p "$bin"

write_wrappers() {
  local root="$LPM_CACHE/$name/root"
  local lp="$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu"
  local tool
  for tool in etcd:usr/bin/etcd etcdctl:usr/bin/etcdctl checkpointctl:usr/bin/checkpointctl; do
    install_file "$bin/${tool%%:*}" <<W
#!/bin/sh
exec "$root/usr/lib64/ld-linux-x86-64.so.2" --library-path "$lp" "$root/${tool#*:}" "\$@"
W
  done
}

if ! cache_ready "$name"; then
  log "trixie root: downloading etcd $ETCD_VERSION, checkpointctl $CHECKPOINTCTL_VERSION"
  staging=$(cache_staging "$name")
  pkgs=(libc6 libgcc-s1 etcd-server etcd-client checkpointctl)
  mkdir -p "$staging/debs" "$staging/root"
  run_logged trixie-download bash -c "cd '$staging/debs' && apt-get download -t trixie ${pkgs[*]}"
  for deb in "$staging"/debs/*.deb; do dpkg-deb -x "$deb" "$staging/root"; done
  rm -rf "$staging/debs"
  cache_publish "$name" "$staging"
fi
write_wrappers
# Read the whole output first: with pipefail, grep -q quitting early makes the
# writer die of SIGPIPE and the check fail at random.
grep -q "$ETCD_VERSION" <<<"$("$bin/etcd" --version)" || die "etcd wrapper does not report $ETCD_VERSION"
"$bin/checkpointctl" version >/dev/null 2>&1 || "$bin/checkpointctl" --help >/dev/null || die "checkpointctl does not run"
log "trixie root: etcd $ETCD_VERSION, checkpointctl $CHECKPOINTCTL_VERSION ready"
