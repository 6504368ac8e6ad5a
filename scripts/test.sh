#!/usr/bin/env bash
# The single test command: installs what is missing, builds when a build exists, runs every test.
# Extra arguments are substrings that select test files (see scripts/test.mjs).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

bash scripts/install-deps.sh
if [[ -f scripts/build.mjs ]]; then
  npm run --silent build
fi
# Types are part of the suite: a type error fails CI like a failing test.
npx --no-install tsc --noEmit -p .
node scripts/test.mjs "$@"
