#!/usr/bin/env bash
# Starts a working playground on this machine: two MariaDB servers and tiproxy on 127.0.0.1:6000,
# and prints how to connect. Installs what is missing first. Ctrl-C stops everything it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"
bash scripts/install-deps.sh
npm run --silent build
exec node --import tsx scripts/playground.ts "$@"
