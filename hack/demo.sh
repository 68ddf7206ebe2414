#!/usr/bin/env bash
# The README's main job: install what is missing, then run the local demo.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash hack/bootstrap.sh
export PATH="$HOME/.cache/lpm/bin:$PATH"
exec deno task demo "$@"
