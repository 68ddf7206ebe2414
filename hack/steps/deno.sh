#!/usr/bin/env bash
# Deno from its npm package (the package ships the prebuilt binary).
source "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"

name="deno-$DENO_VERSION"
if ! cache_ready "$name"; then
  log "deno $DENO_VERSION: installing from npm"
  staging=$(cache_staging "$name")
  run_logged deno-npm npm install --prefix "$staging/npm" --no-audit --no-fund "deno@$DENO_VERSION"
  exe=$(find "$staging/npm/node_modules" -type f -name deno -perm -u+x | grep -v '/bin/deno$' | head -n1 || true)
  [[ -n "$exe" ]] || exe=$(find "$staging/npm/node_modules" -type f -name deno -perm -u+x | head -n1)
  [[ -n "$exe" ]] || die "no deno binary inside the npm package (log: $LPM_LOGS/deno-npm.log)"
  mkdir -p "$staging/bin"; cp "$exe" "$staging/bin/deno"; rm -rf "$staging/npm"
  grep -q "deno $DENO_VERSION" <<<"$("$staging/bin/deno" --version)" || die "deno binary does not report $DENO_VERSION"
  cache_publish "$name" "$staging"
fi
mkdir -p "$LPM_CACHE/bin"
# Relinked only when it changes (see link() in bootstrap.sh).
[[ "$(readlink "$LPM_CACHE/bin/deno" 2>/dev/null)" == "$LPM_CACHE/$name/bin/deno" ]] ||
  ln -sf "$LPM_CACHE/$name/bin/deno" "$LPM_CACHE/bin/deno"
log "deno $DENO_VERSION: ready"
