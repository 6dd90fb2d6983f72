"""Helpers for the reliability tests (tests/integration/reliability/): crash, lock and load.

The reconciler runs as a real subprocess (so it can be SIGKILLed, or its backend terminated), with the
test-only fault hook of reconciler/util/faults.py switched on through RECONCILER_FAULT. The state of the
database is compared as `state()`: apply_support.dump() minus what legitimately differs between two
equivalent applies (generated ids, timestamps, cron jobids, history ids), so "before", "after a clean
apply" and "after a kill" can be compared for equality.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from bench.common import manifest_file
from localdb import create_app_tables
from reconciler import __version__
from reconciler.engine.apply import ApplyContext, apply, read_and_plan
from reconciler.engine.sources import resolve_secrets
from reconciler.kinds.base import PlanOptions
from reconciler.manifest import load_manifest
from tests.integration.apply_support import MANIFEST, ROOT, SECRETS_ENV, dump, query, wait_until

#: Columns whose values differ between two equivalent applies (defaults from sequences and clocks).
VOLATILE = frozenset({"id", "created_at", "updated_at", "first_applied", "last_applied", "applied_at"})


def big_manifest(directory: Path, n_jobs: int = 1000) -> Path:
    """scheduler.yaml with its 13 jobs padded to n_jobs generated ones (bench/common.py)."""
    return manifest_file(n_jobs, directory)


def _rows(rows: list[tuple[Any, ...]] | None) -> list[Any] | None:
    if rows is None:
        return None
    out = []
    for (text,) in rows:
        row = json.loads(text)
        out.append({k: v for k, v in row.items() if k not in VOLATILE})
    return sorted(out, key=lambda r: json.dumps(r, sort_keys=True))


def state(superuser_url: str) -> dict[str, Any]:
    """Every table an apply touches, without the values that differ between equivalent applies."""
    raw = dump(superuser_url)
    out = dict(raw)
    for table in ("public.scheduled_jobs", "public.job_executions", "reconciler.managed", "reconciler.history"):
        if table in raw:
            out[table] = _rows(raw[table])
    if "secrets" in raw:  # id, name, description, digest, updated_at
        out["secrets"] = [row[1:4] for row in raw["secrets"]]
    if "cron.job" in raw:  # jobid, jobname, schedule, command, active, database, username
        out["cron.job"] = sorted(row[1:] for row in raw["cron.job"])
    return out


def describe_difference(got: dict[str, Any], *candidates: dict[str, Any]) -> str:
    """Which sections of `got` differ from each candidate: enough to see a half-done apply at a glance."""
    lines = []
    for i, want in enumerate(candidates):
        keys = sorted(k for k in set(got) | set(want) if got.get(k) != want.get(k))
        sizes = {k: (_size(got.get(k)), _size(want.get(k))) for k in keys}
        lines.append(f"candidate {i}: differs in {sizes}")
    return "; ".join(lines)


def _size(value: Any) -> Any:
    return len(value) if isinstance(value, list) else value


def reset_to_audited(resetter: Any, url: str) -> None:
    """Back to the audited_db starting point: nothing installed, empty app tables owned by postgres."""
    resetter.reset()
    with psycopg.connect(url, autocommit=True) as conn:
        create_app_tables(conn)


def spawn(url: str, *args: str, manifest: Path = MANIFEST, fault: str | None = None,
          extra_env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """`reconcile -f manifest ARGS` in its own interpreter, with RECONCILER_FAULT=fault when given."""
    env = {**os.environ, **SECRETS_ENV, "DATABASE_URL": url, **(extra_env or {})}
    env.pop("RECONCILER_FAULT", None)
    if fault:
        env["RECONCILER_FAULT"] = fault
    return subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli.main import main; main()", "-f", str(manifest), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def run(url: str, *args: str, manifest: Path = MANIFEST, fault: str | None = None,
        timeout: float = 60) -> tuple[int, str, str]:
    proc = spawn(url, *args, manifest=manifest, fault=fault)
    stdout, stderr = proc.communicate(timeout=timeout)
    return proc.returncode, stdout, stderr


def wait_for_point(proc: subprocess.Popen[str], name: str) -> None:
    """Read a RECONCILER_FAULT=trace run's stderr until it reaches the point `name`."""
    assert proc.stderr is not None
    while True:
        line = proc.stderr.readline()
        assert line, f"the apply ended before point {name}"
        if line.startswith("fault-point ") and line.split()[-1] == name:
            return


def paused_at(url: str, point: str, resume_file: Path, *args: str) -> subprocess.Popen[str]:
    """`reconcile --apply ARGS` in its own process, held at `point` until `resume_file` is created."""
    proc = spawn(url, "--apply", *args, fault=f"trace,wait-at:{point}:{resume_file}")
    wait_for_point(proc, point)
    return proc


def trace_points(stderr: str) -> list[tuple[int, str]]:
    """The `fault-point N NAME` lines a RECONCILER_FAULT=trace run wrote."""
    out = []
    for line in stderr.splitlines():
        if line.startswith("fault-point "):
            _, number, name = line.split(" ", 2)
            out.append((int(number), name))
    return out


def reconciler_backends(superuser_url: str) -> list[tuple[int, str, str | None]]:
    """(pid, state, wait_event_type) of every session the reconciler has open."""
    return query(superuser_url, "SELECT pid, coalesce(state, ''), wait_event_type FROM pg_stat_activity"
                                " WHERE application_name = 'reconcile' AND pid <> pg_backend_pid()")


def wait_backends_gone(superuser_url: str, timeout: float = 30) -> None:
    """A killed client's backend notices and rolls back on its own; wait until it has gone."""
    wait_until("the killed reconciler's backends to go", lambda: not reconciler_backends(superuser_url), timeout, 0.02)


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.02) -> Any:
    """apply_support.wait_until, arguments in this module's order."""
    return wait_until(what, predicate, timeout, interval)


class InProcess:
    """The library API with one manifest loaded once: a converging apply and a plan, without a subprocess."""

    def __init__(self, url: str, manifest: Path) -> None:
        self.url = url
        self.manifest = load_manifest([str(manifest)])
        self.values = resolve_secrets(self.manifest, SECRETS_ENV)

    def apply(self, lock_timeout: float = 30) -> Any:
        return apply(self.url, self.manifest, self.values, PlanOptions(),
                     ApplyContext(lock_timeout=lock_timeout, command="--apply", version=__version__))

    def plan_is_empty(self) -> bool:
        _, plan = read_and_plan(self.url, self.manifest, self.values, PlanOptions())
        return plan.is_empty


def one_line(stderr: str) -> str:
    """stderr must be exactly one `error: ...` line (warnings from manifest loading aside)."""
    lines = [line for line in stderr.splitlines() if not line.startswith(("warning: ", "fault-point "))]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def assert_clean_output(texts: Sequence[str]) -> None:
    for text in texts:
        assert "Traceback" not in text, text
        assert "40P01" not in text and "deadlock" not in text.lower(), text
