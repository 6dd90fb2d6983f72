#!/usr/bin/env bash
# The whole test suite, in the project's virtualenv (.venv/, made by scripts/install.sh). The tests start
# their own throwaway PostgreSQL cluster; nothing else is needed. Arguments go to pytest.
# pytest's exit code 5 ("no tests ran") is a failure here.
#   VENV=DIR bash scripts/test.sh ...   runs in another virtualenv that install.sh made (e.g. --lowest DIR)
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
if [ "$venv" = .venv ]; then
  bash scripts/install.sh || exit 1
fi
"$venv/bin/python" -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests ran: failing" >&2
  exit 1
fi
exit "$rc"
