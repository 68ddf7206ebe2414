#!/usr/bin/env bash
# Shared helpers for the bootstrap steps: progress lines, logs, and an atomic
# install into the cache so a failed build never leaves a tool that looks good.
set -euo pipefail

LPM_ROOT="${LPM_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}"
LPM_CACHE="${LPM_CACHE:-$HOME/.cache/lpm}"
LPM_LOGS="${LPM_LOGS:-$LPM_CACHE/logs}"
mkdir -p "$LPM_CACHE" "$LPM_LOGS"

# Pinned versions: one place, every step reads them from here.
K8S_VERSION="${K8S_VERSION:-v1.34.4}"
DENO_VERSION="${DENO_VERSION:-2.9.6}"
# CRIU from Debian unstable (hack/steps/criu.sh): 4.2 or newer dumps sockets on kernels >= 6.16.
CRIU_VERSION="4.2.1"
CRIU_DEB_VERSION="4.2.1-1"
ETCD_VERSION="3.5.16"
CHECKPOINTCTL_VERSION="1.3.0"
MINIO_VERSION="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
CONTAINERD_VERSION="${CONTAINERD_VERSION:-v2.2.9}"

_t0=$(date +%s)

# log MSG: a progress line with the bootstrap's elapsed time.
log() { printf '[lpm bootstrap +%4ss] %s\n' "$(($(date +%s) - _t0))" "$*" >&2; }

# die MSG: stop with a message.
die() { log "ERROR: $*"; exit 1; }

# run_logged STEP CMD...: run CMD with its output in $LPM_LOGS/STEP.log; on
# failure name the step and the log, and show its tail.
run_logged() {
  local step="$1"; shift
  local logf="$LPM_LOGS/$step.log"
  local start; start=$(date +%s)
  if ! "$@" >"$logf" 2>&1; then
    tail -n 30 "$logf" >&2 || true
    die "step '$step' failed after $(($(date +%s) - start))s; full log: $logf"
  fi
}

# with_heartbeat STEP CMD...: like run_logged, printing a line every 60 s so a
# long build shows it is alive.
with_heartbeat() {
  local step="$1"; shift
  local start; start=$(date +%s)
  ( while sleep 60; do log "  $step: still running ($(($(date +%s) - start))s)"; done ) &
  local hb=$!
  local rc=0
  run_logged "$step" "$@" || rc=$?
  kill "$hb" 2>/dev/null || true
  wait "$hb" 2>/dev/null || true
  return "$rc"
}

# install_file DEST: writes stdin to DEST atomically (temp file + rename), and
# only when the content differs: concurrent bootstraps (tests running side by
# side) must never see a half-written wrapper.
install_file() {
  local dest="$1" tmp
  tmp=$(mktemp "$dest.XXXXXX")
  cat >"$tmp"
  chmod +x "$tmp"
  if cmp -s "$tmp" "$dest"; then rm -f "$tmp"; else mv -f "$tmp" "$dest"; fi
}

# cache_ready NAME-VERSION: true when that cache entry was completed.
cache_ready() { [[ -f "$LPM_CACHE/$1/.complete" ]]; }

# cache_publish NAME-VERSION STAGING_DIR: move a finished staging dir into the
# cache and mark it complete (the marker is written last).
cache_publish() {
  local name="$1" staging="$2"
  rm -rf "$LPM_CACHE/$name"
  mv "$staging" "$LPM_CACHE/$name"
  date -u +%FT%TZ >"$LPM_CACHE/$name/.complete"
}

# cache_staging NAME-VERSION: a fresh staging dir next to the cache entry.
cache_staging() {
  local d="$LPM_CACHE/.staging-$1"
  rm -rf "$d"; mkdir -p "$d"; echo "$d"
}

# Go builds keep their module and build caches under the lpm cache so a
# clean clone reuses them.
export GOMODCACHE="${GOMODCACHE:-$LPM_CACHE/go/mod}"
export GOCACHE="${GOCACHE:-$LPM_CACHE/go/build}"
export GOFLAGS="${GOFLAGS:--mod=mod}"
export GOTOOLCHAIN=local
