"""Where the milliseconds of one no-op `reconcile --dry-run` go, measured in a fresh process.

Runs, in the order the command does them, what `reconcile --dry-run -f MANIFEST` runs, with a clock
around each step, and prints the steps as JSON ({step: milliseconds}); `bench/cli.py` runs it N times
and reports the medians. Imports are timed in the order the command meets them, each step only with
what the earlier ones left unloaded (pydantic and PyYAML count apart from the reconciler's own models).
The YAML step is the loader's parse of the file inside the one `load_manifest`; "validation" is the
rest of it (pydantic, cross-checks, warnings).

Run: python bench/phases.py MANIFEST   (DATABASE_URL and the manifest's secret sources in the environment)
"""

from __future__ import annotations

import time

STARTED = time.perf_counter()

import gc  # noqa: E402
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
    gc.disable()  # as the console script (reconciler.cli.console) imports: collector paused, then frozen out
    import click  # noqa: F401

    _step("import click")
    gc.freeze()
    gc.enable()  # the command imports psycopg later, after the freeze, with the collector running
    import psycopg  # noqa: F401

    gc.disable()
    _step("import psycopg")
    import pydantic  # noqa: F401
    import pydantic.main  # noqa: F401
    import yaml  # noqa: F401

    _step("import pydantic, PyYAML")
    import reconciler.manifest  # noqa: F401

    _step("import reconciler.manifest (models)")
    import reconciler.manifest.load as loading
    from reconciler.cli import main as cli
    from reconciler.engine import db
    from reconciler.engine import session as run
    from reconciler.engine.apply import make_plan
    from reconciler.kinds.base import PlanOptions
    from reconciler.manifest import load_manifest
    from reconciler.util.gc_pause import paused_gc

    gc.freeze()
    gc.enable()
    _step("import the rest of reconciler")
    parse_file, yaml_ms = loading.parse_file, []

    def timed_parse_file(path: str) -> object:  # the YAML part of the one load, as the command runs it
        started = time.perf_counter()
        try:
            return parse_file(path)
        finally:
            yaml_ms.append((time.perf_counter() - started) * 1000)

    loading.parse_file = timed_parse_file  # type: ignore[assignment]
    manifest = load_manifest([manifest_path])
    _step("validation")
    _steps["YAML"] = sum(yaml_ms)
    _steps["validation"] = _steps.pop("validation") - _steps["YAML"]  # after YAML in the report's order
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
            plan = make_plan(manifest, live, session.secret_values, PlanOptions())
        _step("plan")
        cli._render(plan, "text", False, manifest_path)
        _step("render")
    print(json.dumps(_steps))


if __name__ == "__main__":
    main()
