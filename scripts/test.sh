#!/usr/bin/env bash
# The whole test suite. The tests start their own throwaway PostgreSQL cluster; nothing else is needed.
# pytest's exit code 5 ("no tests ran") is a failure here.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh || exit 1
python3 -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests ran: failing" >&2
  exit 1
fi
exit "$rc"
