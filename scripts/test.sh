#!/usr/bin/env bash
# The whole test suite, in the project's virtualenv (.venv/, made by scripts/install.sh). The tests start
# their own throwaway PostgreSQL cluster; nothing else is needed. Arguments go to pytest.
# pytest's exit code 5 ("no tests ran") is a failure here.
#   VENV=DIR bash scripts/test.sh ...   runs in another virtualenv that install.sh made (e.g. --lowest DIR)
#
# pytest runs with a minimal, explicit PATH: the virtualenv's bin/ and the system directories only, and
# without an activated virtualenv's or PYTHONPATH's leftovers. A tool that only a used machine has
# (installed by hand into ~/.local/bin or /usr/local/bin, or reachable only through an activated
# virtualenv) is then not found here either, as it would not be on a new machine. The rest of the
# environment passes through: it is the machine's configuration (proxies, CA bundles, package indexes),
# which a new machine has too.
set -uo pipefail
cd "$(dirname "$0")/.."
venv="${VENV:-.venv}"
if [ "$venv" = .venv ]; then
  bash scripts/install.sh || exit 1
fi
venv_bin="$(cd "$venv/bin" && pwd)"
env -u PYTHONPATH -u PYTHONHOME -u VIRTUAL_ENV PATH="$venv_bin:/usr/sbin:/usr/bin:/sbin:/bin" \
  "$venv_bin/python" -m pytest -q "$@"
rc=$?
if [ "$rc" -eq 5 ]; then
  echo "no tests ran: failing" >&2
  exit 1
fi
exit "$rc"
