#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine: PostgreSQL 15 with Debian's pg_cron, PGXS
# and a C compiler (localdb builds its supautils stand-in) with apt,
# and the package with its test extra into the project's own virtualenv, `.venv/` in the repository
# (never the machine's interpreter). Idempotent; used by demo.sh, test.sh and .ci/run.
#
#   bash scripts/install.sh             apt packages, then .venv/ (created if missing, kept if present)
#   bash scripts/install.sh --fresh     .venv/ deleted and made again: the newest versions the ranges allow
#   bash scripts/install.sh --lowest DIR
#                                       a fresh virtualenv at DIR with the lowest versions the ranges allow
#                                       (uv's --resolution lowest-direct), for the lower-bound test pass
#
# Afterwards: `. .venv/bin/activate` (or call .venv/bin/reconcile). localdb/ and the tests are development
# tooling, not part of the wheel: a .pth file puts the repository on the virtualenv's path instead.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=keep
venv=.venv
case "${1:-}" in
  --fresh) mode=fresh ;;
  --lowest) mode=lowest; venv="${2:?--lowest needs a directory}" ;;
  "") ;;
  *) echo "usage: scripts/install.sh [--fresh | --lowest DIR]" >&2; exit 1 ;;
esac

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

need_apt=()
[ -x /usr/lib/postgresql/15/bin/postgres ] || need_apt+=(postgresql-15)
[ -f /usr/lib/postgresql/15/lib/pg_cron.so ] || need_apt+=(postgresql-15-cron)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# pgxs.mk alone comes with the client package; the server headers are what the build needs.
[ -f /usr/include/postgresql/15/server/postgres.h ] || need_apt+=(postgresql-server-dev-15)
command -v make >/dev/null || need_apt+=(make)
command -v gcc >/dev/null || need_apt+=(gcc)
[ -x /usr/sbin/pgbouncer ] || need_apt+=(pgbouncer)
[ -x /usr/bin/promtool ] || need_apt+=(prometheus)
# Node.js and npm run the GitHub Actions validator (@action-validator/cli, below) in the tests.
[ -x /usr/bin/node ] || need_apt+=(nodejs)
[ -x /usr/bin/npm ] || need_apt+=(npm)
# Debian's kubernetes-client (kubectl 1.20 with kustomize v2.0.3) renders deploy/kustomize/ in the tests.
# Where another package already owns /usr/bin/kubectl (Google's kubectl, say), apt cannot install it
# beside that one, so Debian's package is unpacked into .tools/kubernetes-client/ instead (tests use it).
kubectl_unpack=no
if ! dpkg-query -W -f='${Status}' kubernetes-client 2>/dev/null | grep -q "ok installed"; then
  if [ ! -e /usr/bin/kubectl ]; then need_apt+=(kubernetes-client)
  elif [ ! -x .tools/kubernetes-client/usr/bin/kubectl ]; then kubectl_unpack=yes; fi
fi
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} with apt-get" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# Debian's package may start its own cluster on 5432; ours never uses it, and it is left alone.
if [ "$kubectl_unpack" = yes ]; then
  echo "unpacking Debian's kubernetes-client into .tools/kubernetes-client/" >&2
  download=$(mktemp -d)
  chmod 0755 "$download"  # apt's download runs as the _apt user
  (cd "$download" && { apt-get download -qq kubernetes-client 2>/dev/null \
                       || { $SUDO apt-get update -qq && apt-get download -qq kubernetes-client; }; })
  mkdir -p .tools/kubernetes-client
  dpkg-deb -x "$download"/kubernetes-client_*.deb .tools/kubernetes-client
  rm -rf "$download"
fi
# The GitHub Actions validator for action.yml and the example workflows, from the npm registry, into the
# project's own .tools/node_modules/ (git-ignored); kept when present.
if [ ! -f .tools/node_modules/@action-validator/cli/package.json ]; then
  echo "installing @action-validator/cli into .tools/ with npm" >&2
  /usr/bin/npm install --prefix .tools --no-audit --no-fund --silent @action-validator/cli@0.6.0 >/dev/null
fi

if [ "$mode" != keep ]; then rm -rf "$venv"; fi
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip --quiet --disable-pip-version-check)
if [ "$mode" = lowest ]; then
  # The lowest version of every direct dependency (runtime and test extra) that the ranges in
  # pyproject.toml allow; transitive ones resolve as usual.
  "${pip[@]}" install uv
  "$venv/bin/uv" pip install --quiet --python "$venv/bin/python" --resolution lowest-direct -e '.[test]'
else
  "${pip[@]}" install -e '.[test]'
fi
site=$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
printf '%s\n' "$PWD" > "$site/scheduler_reconciler_dev.pth"
echo "installed scheduler-reconciler (editable, with the test extra) into $venv/" >&2
