#!/usr/bin/env bash
# Makes a fresh machine able to run the tests: system binaries the harness starts, then node_modules.
# Idempotent and quiet: a machine that already has everything prints one line.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# mariadbd lives in /usr/sbin, which a non-login shell may not have on PATH.
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

required=(mariadbd mariadb mariadb-install-db etcd etcdctl sysbench haproxy openssl rsync promtool chromium java)
missing=()
for bin in "${required[@]}"; do
  command -v "$bin" >/dev/null 2>&1 || missing+=("$bin")
done
# The Galera test cluster (local-cluster/galera.ts) needs the wsrep provider; its nodes use rsync SST.
[[ -f /usr/lib/galera/libgalera_smm.so ]] || missing+=(galera-4)
# MariaDB Connector/J: the bulk-execution test (test/kernel/session/mariadb-extensions.test.ts) runs it with java.
[[ -f /usr/share/java/mariadb-java-client.jar ]] || missing+=(libmariadb-java)

if ((${#missing[@]} > 0)); then
  if ((EUID != 0)); then
    echo "install-deps: missing ${missing[*]}; as root run: apt-get install -y mariadb-server mariadb-client galera-4 rsync etcd-server etcd-client sysbench haproxy openssl prometheus chromium default-jdk-headless libmariadb-java" >&2
    exit 1
  fi
  echo "install-deps: installing system packages (missing: ${missing[*]})"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    mariadb-server mariadb-client galera-4 rsync etcd-server etcd-client sysbench haproxy openssl prometheus chromium \
    default-jdk-headless libmariadb-java >/dev/null
fi

installed_npm=no
if [[ ! -d node_modules || ! -f node_modules/.package-lock.json ]] ||
   [[ -f package-lock.json && package-lock.json -nt node_modules/.package-lock.json ]]; then
  if [[ -f package-lock.json ]]; then
    npm ci --no-audit --no-fund --loglevel=error >/dev/null
  else
    npm install --no-audit --no-fund --loglevel=error >/dev/null
  fi
  installed_npm=yes
fi

# Node 24 for the test command's second pass (scripts/test.mjs): a binary from the npm registry, pinned
# by scripts/node24/package-lock.json, in its own node_modules so `npm run` never puts it first on PATH.
installed_node24=no
if [[ ! -f scripts/node24/node_modules/.package-lock.json ]] ||
   [[ scripts/node24/package-lock.json -nt scripts/node24/node_modules/.package-lock.json ]]; then
  (cd scripts/node24 && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  installed_node24=yes
fi

echo "install-deps: ok (system binaries present, npm install: ${installed_npm}, node 24 install: ${installed_node24})"
