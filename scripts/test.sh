#!/usr/bin/env bash
# The whole test suite, in the project's virtualenv (.venv/, made by scripts/install.sh). The tests start
# their own throwaway PostgreSQL cluster; nothing else is needed. Arguments go to pytest.
# pytest's exit code 5 ("no tests ran") is a failure here.
#   VENV=DIR bash scripts/test.sh ...   runs in another virtualenv that install.sh made (e.g. --lowest DIR)
#
# pytest runs in a minimal, explicit environment: PATH is the virtualenv's bin/ and the system
# directories only, and only a few variables pass through. A tool that only a used machine has (installed
# by hand into ~/.local/bin or /usr/local/bin, or reachable only through an activated virtualenv) is then
# not found here either, as it would not be on a new machine.
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
if [ "$venv" = .venv ]; then
  bash scripts/install.sh || exit 1
fi
venv_bin="$(cd "$venv/bin" && pwd)"
passed=()
for name in HOME TMPDIR LANG LC_ALL TERM CI LOCALDB_KEEP PYTEST_ADDOPTS; do
  if [ -n "${!name+set}" ]; then passed+=("$name=${!name}"); fi
done
env -i "${passed[@]}" PATH="$venv_bin:/usr/sbin:/usr/bin:/sbin:/bin" "$venv_bin/python" -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests ran: failing" >&2
  exit 1
fi
exit "$rc"
