#!/usr/bin/env bash
# The lower-bound pass: a fresh virtualenv (.venv-lowest/) with the lowest version of every direct
# dependency that pyproject.toml allows, then the suite without its long end-to-end, soak and stress
# runs. A lower bound that fails here is raised in pyproject.toml, never kept.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh --lowest .venv-lowest
.venv-lowest/bin/python -m pip list --format=freeze 2>/dev/null \
  | grep -iE '^(pyyaml|pydantic|psycopg|click|structlog|pglast|prometheus-client|httpx|pytest|hypothesis)==' >&2
# Left out, to keep the pass quick: what tests our own code with no library in the way (the dialect's
# property tests, the stand-ins' SQL, the hostile-input property run against the database) and the
# packaging test, which builds and installs the wheel with the newest tools, and the fleet's multi-process
# tests (three controller replicas, the controller's timing), whose libraries the fleet's CLI, runner and
# generator tests already cover here (the first pass runs them all); and the two GitOps tests that pip-install
# this checkout into new virtualenvs (pre-commit's try-repo, the action's install step), packaging like the
# shipping test.
VENV=.venv-lowest exec bash scripts/test.sh -m "not slow and not soak and not stress" -p no:cacheprovider \
  --ignore=tests/unit/test_cron.py --ignore=tests/standins \
  --ignore=tests/integration/security/test_hostile_property.py --ignore=tests/integration/shipping/test_shipping.py \
  --ignore=tests/integration/fleet/test_fleet_shards.py --ignore=tests/integration/fleet/test_fleet_controller.py \
  --ignore=tests/gitops/test_precommit.py --ignore=tests/gitops/test_action_install.py "$@"
