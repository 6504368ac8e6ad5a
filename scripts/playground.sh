#!/usr/bin/env bash
# The tiproxy playground (docs/playground.md):
#   ./scripts/playground.sh [--backends N]   etcd, an N-node MariaDB Galera cluster (3 by default) and
#                                            tiproxy on 127.0.0.1:6000 with migration on; Ctrl-C stops it
#   ./scripts/playground.sh scale-out        add a Galera node to the running playground
#   ./scripts/playground.sh scale-in [ADDR]  drain a node, wait until it has no sessions, remove it
# Starting installs what is missing and builds first (TIPROXY_PLAYGROUND_SETUP=skip skips that, for
# callers that just did it); the scale commands only talk to the running playground.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
# Only starting (no command, or options only) needs the setup.
if [[ ( -z "${1:-}" || "${1:-}" == -* ) && "${TIPROXY_PLAYGROUND_SETUP:-}" != skip ]]; then
  bash scripts/install-deps.sh
  npm run --silent build
fi
exec node --import tsx scripts/playground.ts "$@"
