"""Where the milliseconds of one no-op `reconcile --dry-run` go, measured in a fresh process.

Runs, in the order the command does them, what `reconcile --dry-run -f MANIFEST` runs, with a clock
around each step, and prints the steps as JSON ({step: milliseconds}); `bench/cli.py` runs it N times
and reports the medians. Imports are timed in the order the command meets them, each step only with
what the earlier ones left unloaded (pydantic and PyYAML count apart from the reconciler's own models).
The YAML step is the loader's parse of the file; "validation" is the rest of `load_manifest` (pydantic,
cross-checks, warnings), measured on a second load whose YAML part is subtracted.

Run: python bench/phases.py MANIFEST   (DATABASE_URL and the manifest's secret sources in the environment)
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402

_steps: dict[str, float] = {}
_last = STARTED


def _step(name: str) -> None:
    global _last
    now = time.perf_counter()
    _steps[name] = (now - _last) * 1000
    _last = now


def main() -> None:
    manifest_path = sys.argv[1]
    import click  # noqa: F401

    _step("import click")
    import psycopg  # noqa: F401

    _step("import psycopg")
    import pydantic  # noqa: F401
    import pydantic.main  # noqa: F401
    import yaml  # noqa: F401

    _step("import pydantic, PyYAML")
    import reconciler.manifest  # noqa: F401

    _step("import reconciler.manifest (models)")
    from reconciler import cli, db, run
    from reconciler.apply import make_plan
    from reconciler.kinds.base import PlanOptions
    from reconciler.manifest import load_manifest
    from reconciler.manifest.yaml import parse_file
    from reconciler.trigger_sql import render_command

    _step("import the rest of reconciler")
    from reconciler.allocation import paused_gc

    with paused_gc():
        parse_file(manifest_path)
    _step("YAML")
    manifest = load_manifest([manifest_path])
    _step("validation")
    _steps["validation"] -= _steps["YAML"]  # load_manifest parsed the file again
    with run.session(manifest, os.environ, None) as session:
        _step("secrets")
        conn = db.connect(session.url, autocommit=True)
        _step("connect")
        conn.execute("BEGIN READ ONLY")
        with paused_gc():
            live = db.read_live(conn, manifest, session.planes)
        conn.execute("ROLLBACK")
        conn.close()
        _step("queries")
        with paused_gc():
            plan = make_plan(manifest, live, session.secret_values, render_command, PlanOptions())
        _step("plan")
        cli._render(plan, "text", False, manifest_path)
        _step("render")
    print(json.dumps(_steps))


if __name__ == "__main__":
    main()
