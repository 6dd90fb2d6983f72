#!/usr/bin/env bash
# Regenerates requirements.lock, the container image's exact runtime dependencies (versions and hashes
# for every platform), from the ranges in pyproject.toml: run it after changing a runtime dependency.
# Needs the project virtualenv (scripts/install.sh), which has uv.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/uv pip compile pyproject.toml --quiet --generate-hashes --universal --python-version 3.11 \
  --upgrade -o requirements.lock
