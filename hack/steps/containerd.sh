#!/usr/bin/env bash
# containerd (daemon + runc shim) from its Go module. containerd 2.1+ serves
# the CRI CheckpointContainer call and restores a container whose image is a
# checkpoint image. (CRI-O was the first choice, but the Go module proxy
# refuses github.com/cri-o/cri-o, and Debian does not package it.)
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="containerd-$CONTAINERD_VERSION"
if cache_ready "$name"; then log "containerd: cached"; exit 0; fi
log "containerd $CONTAINERD_VERSION: building (cold: about 5-10 min on 2 cores)"
staging=$(cache_staging "$name")
ld="-s -w -X github.com/containerd/containerd/v2/version.Version=$CONTAINERD_VERSION"
for cmd in containerd containerd-shim-runc-v2 ctr; do
  with_heartbeat "containerd-build-$cmd" env GOBIN="$staging/bin" \
    go install -trimpath -tags "no_btrfs no_devmapper no_zfs" -ldflags "$ld" \
    "github.com/containerd/containerd/v2/cmd/$cmd@$CONTAINERD_VERSION"
done
grep -q "${CONTAINERD_VERSION#v}" <<<"$("$staging/bin/containerd" --version)" || die "built containerd reports the wrong version"
cache_publish "$name" "$staging"
log "containerd: built"
