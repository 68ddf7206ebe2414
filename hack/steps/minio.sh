#!/usr/bin/env bash
# A real MinIO server built from its Go module, pinned by module version.
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="minio-$MINIO_VERSION"
if cache_ready "$name"; then log "minio: cached"; exit 0; fi
log "minio $MINIO_VERSION: building (cold: about 10-15 min on 2 cores)"
staging=$(cache_staging "$name")
with_heartbeat minio-build env GOBIN="$staging/bin" CGO_ENABLED=0 \
  go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$MINIO_VERSION"
"$staging/bin/minio" --version >/dev/null || die "built minio does not run"
cache_publish "$name" "$staging"
log "minio: built"
