#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine: PostgreSQL 15 with Debian's pg_cron,
# and the Python package with its test extra. Idempotent; used by demo.sh, test.sh and .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
[ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || need_apt+=(postgresql-15-cron)
[ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's package may start its own cluster on 5432; ours never uses it, and it is left alone.

python3 -m pip install --quiet --disable-pip-version-check -e '.[test]'
