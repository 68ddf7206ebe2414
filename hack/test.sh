#!/usr/bin/env bash
# The README's test command: install what is missing, then run every test
# against a freshly started real environment. Ends with "N passed, N failed, N skipped".
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash hack/bootstrap.sh
export PATH="$HOME/.cache/lpm/bin:$PATH"
exec deno task test "$@"
