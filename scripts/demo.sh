#!/usr/bin/env bash
# The main job on a fresh machine: a local Supabase-like database in the runbook's audited state
# (tables empty, no extensions), then reconcile --dry-run, --apply, and a second plan that is empty.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
# shellcheck disable=SC1091  # the project virtualenv scripts/install.sh made: reconcile, localdb
. .venv/bin/activate

python3 -m localdb up --with-app-tables >/dev/null
export DATABASE_URL="$(python3 -m localdb url)"
# Demo values; in production these come from your secret store (see README: secret sources).
# project_url points at the local run-scheduled-jobs stand-in started below (localdb/edge.py).
export SUPABASE_URL="http://127.0.0.1:54321"
export SUPABASE_SERVICE_ROLE_KEY="${SUPABASE_SERVICE_ROLE_KEY:-demo-service-role-key}"
# A second run keeps the secret of the first (its Edge Function stand-in and vault hold it already).
if [ -z "${CRON_SECRET:-}" ] && [ -f .localdb/demo.env ]; then
  CRON_SECRET="$(python3 -c 'import sys; from dotenv import dotenv_values; print(dotenv_values(sys.argv[1]).get("CRON_SECRET") or "")' .localdb/demo.env)"
fi
export CRON_SECRET="${CRON_SECRET:-$(python3 -c 'import secrets; print(secrets.token_urlsafe(32))')}"

echo "== reconcile validate"
reconcile validate
echo
echo "== reconcile --dry-run   (against $DATABASE_URL)"
reconcile --dry-run
echo
echo "== reconcile --apply"
reconcile --apply
echo
echo "== reconcile --dry-run --detailed-exitcode   (a second run plans nothing: exit 0)"
reconcile --dry-run --detailed-exitcode
echo
echo "== the Edge Function stand-in run-scheduled-jobs on :54321, accepting the same CRON_SECRET"
python3 -m localdb edge stop >/dev/null   # a stand-in from an earlier run may hold another secret
python3 -m localdb edge start --port 54321 --secret-env CRON_SECRET
echo
echo "== reconcile verify --wait 90s   (pg_cron 1.4 fires at minute boundaries: up to a minute)"
reconcile verify --wait 90s

# The demo's values for a new shell: a git-ignored dotenv file only its owner can read.
ENV_FILE="$PWD/.localdb/demo.env"
bash scripts/write-env-file.sh "$ENV_FILE" DATABASE_URL SUPABASE_URL SUPABASE_SERVICE_ROLE_KEY CRON_SECRET
echo
echo "The local database and the Edge Function stand-in keep running; their values are in .localdb/demo.env"
echo "(git-ignored, mode 0600). In a new shell, this one line makes reconcile work (the file stays the only"
echo "place of the secrets; variables you set yourself win over it):"
echo
printf '  cd %q && . .venv/bin/activate && export RECONCILE_ENV_FILE=%q\n' "$PWD" "$ENV_FILE"
echo
echo "then e.g. reconcile --dry-run (plans nothing), reconcile history, reconcile verify. Stop everything with:"
echo "  python3 -m localdb down"
