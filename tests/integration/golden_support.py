"""The golden cases' machinery (tests/integration/apply/cases/, run by apply/test_golden.py), shared with the
export, CLI and no-leak tests: load a case, bring the database to its live state, run the CLI in-process,
snapshot what the reconciler could change.

The CLI runs as a user would run it from the repository root: the tests that use `invoke` change to ROOT
(test_golden's `_run_from_root`), so the manifest paths in the output do not depend on where pytest runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import yaml
from click.testing import CliRunner

from localdb import create_app_tables
from reconciler.cli.main import main
from tests.fix_db import DbTarget

ROOT = Path(__file__).resolve().parents[2]
CASES_DIR = ROOT / "tests" / "integration" / "apply" / "cases"
CASE_NAMES = sorted(p.name for p in CASES_DIR.iterdir() if (p / "case.yaml").is_file())
#: When an apply was recorded (the drift section's title, JSON's last_applied): the one thing that varies.
APPLIED_AT = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
#: The throwaway cluster's port and socket directory, in the database a plan names: they vary per run.
CLUSTER_PORT = re.compile(r'(\(port |"port": )\d+')
SOCKET_DIRECTORY = re.compile(r'"host": "/[^"]*"')
#: Fixed, recognisable values for every secret source of scheduler.yaml.
SECRET_ENV = {
    "SUPABASE_URL": "https://golden.example.test",
    "SUPABASE_SERVICE_ROLE_KEY": "golden-service-role-key",
    "CRON_SECRET": "golden-cron-secret",
}
CASE_KEYS = {"setup", "manifest", "args", "role", "description", "steps"}
SETUPS = ("audited", "applied", "empty")


@dataclass(frozen=True)
class Case:
    name: str
    setup: str
    manifest: str | None = None  # relative to ROOT (the tests run from there)
    args: tuple[str, ...] = ()
    role: str = "postgres"
    #: Commands run after the setup and before live.sql (`reconcile down --apply`, a pruning apply);
    #: "{dir}" in an argument is the case folder, relative to ROOT.
    steps: tuple[tuple[str, ...], ...] = ()

    @property
    def dir(self) -> Path:
        return CASES_DIR / self.name

    @property
    def cli_args(self) -> list[str]:
        return (["-f", self.manifest] if self.manifest else []) + list(self.args)

    def url(self, target: DbTarget) -> str:
        return target.superuser_url if self.role == "superuser" else target.url


def load_case(name: str) -> Case:
    folder = CASES_DIR / name
    data = yaml.safe_load((folder / "case.yaml").read_text()) or {}
    unknown = set(data) - CASE_KEYS
    assert not unknown, f"{name}/case.yaml: unknown keys {sorted(unknown)}"
    assert data.get("setup") in SETUPS, f"{name}/case.yaml: setup must be one of {SETUPS}"
    assert data.get("role", "postgres") in ("postgres", "superuser"), f"{name}/case.yaml: bad role"
    manifest = data.get("manifest")
    if manifest is not None:
        assert (folder / manifest).is_file(), f"{name}: manifest {manifest} not found"
        manifest = str((folder / manifest).relative_to(ROOT))
    where = str(folder.relative_to(ROOT))
    steps = tuple(tuple(str(a).replace("{dir}", where) for a in step) for step in data.get("steps", ()))
    return Case(name, data["setup"], manifest, tuple(str(a) for a in data.get("args", ())),
                data.get("role", "postgres"), steps)


@dataclass
class Run:
    """One CliRunner invocation: what a user would see."""

    args: list[str]
    exit_code: int
    stdout: str
    stderr: str
    logs: list[Mapping[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return f"reconcile {' '.join(self.args)} -> {self.exit_code}\n--- stdout\n{self.stdout}--- stderr\n{self.stderr}"


def invoke(args: Sequence[str], url: str | None, env: Mapping[str, str] | None = None) -> Run:
    """Run `reconcile ARGS` in-process with DATABASE_URL=url and the secret sources of `env`.

    A Python exception other than SystemExit is a bug in the CLI (it would print a traceback): re-raised.
    """
    full_env: dict[str, str | None] = {"DATABASE_URL": url, **(SECRET_ENV if env is None else env)}
    result = CliRunner().invoke(main, list(args), env=full_env, prog_name="reconcile")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Run(list(args), result.exit_code, result.stdout, result.stderr)


def superuser_conn(target: DbTarget) -> psycopg.Connection[Any]:
    return psycopg.connect(target.superuser_url, autocommit=True)


def prepare(case: Case, target: DbTarget, env: Mapping[str, str] | None = None) -> Run | None:
    """Bring the reset (empty) database to the case's live state; returns the setup's apply, if any."""
    run = None
    if case.setup in ("audited", "applied"):
        with psycopg.connect(target.url, autocommit=True) as conn:
            create_app_tables(conn)
    if case.setup == "applied":
        run = invoke(["--apply"], case.url(target), env)
        assert run.exit_code == 0, f"setup apply failed:\n{run}"
    for step in case.steps:
        done = invoke(step, case.url(target), env)
        assert done.exit_code == 0, f"setup step failed:\n{done}"
    live_sql = (case.dir / "live.sql").read_text()
    if live_sql.strip():
        with superuser_conn(target) as conn:
            conn.execute(live_sql)  # type: ignore[arg-type]
    return run


_SNAPSHOT_TABLES = {
    "public.scheduled_jobs": "SELECT job_name, job_type, schedule, endpoint, description, is_active, id::text"
                             " FROM public.scheduled_jobs ORDER BY id",
    "vault.secrets": "SELECT id::text, name, description, secret, updated_at::text FROM vault.secrets ORDER BY id",
    "cron.job": "SELECT jobid, jobname, schedule, command, active, username FROM cron.job ORDER BY jobid",
    "reconciler.managed": "SELECT to_jsonb(m) FROM reconciler.managed m ORDER BY kind, key",
    "reconciler.history": "SELECT id FROM reconciler.history ORDER BY id",
}


def snapshot(target: DbTarget) -> dict[str, Any]:
    """Everything the reconciler could change, to prove a refused apply changed nothing."""
    with superuser_conn(target) as conn:
        out: dict[str, Any] = {
            "extensions": conn.execute("SELECT extname, extnamespace::regnamespace::text FROM pg_extension"
                                       " ORDER BY 1").fetchall(),
            "relations": conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1").fetchall(),
        }
        for relation, query in _SNAPSHOT_TABLES.items():
            exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,)).fetchone()
            out[relation] = conn.execute(query).fetchall() if exists and exists[0] else None
    return out


def expected_blocking(expected_json: Mapping[str, Any]) -> bool:
    return any(f["severity"] == "error" for f in expected_json["findings"])


@dataclass
class CaseRuns:
    """Everything one golden case printed, for the comparisons here and the leak checks."""

    setup: Run | None = None
    plans: dict[str, Run] = field(default_factory=dict)
    apply: Run | None = None
    after: Run | None = None

    def all(self) -> Iterator[Run]:
        if self.setup is not None:
            yield self.setup
        yield from self.plans.values()
        if self.apply is not None:
            yield self.apply
        if self.after is not None:
            yield self.after


def run_case(case: Case, target: DbTarget, env: Mapping[str, str] | None = None,
             formats: Sequence[str] = ("text", "json")) -> CaseRuns:
    """Set up, plan in each format, apply, re-plan. Asserts only what holds for any secret values."""
    runs = CaseRuns(setup=prepare(case, target, env))
    url = case.url(target)
    for fmt in formats:
        run = invoke(["--dry-run", "--format", fmt, *case.cli_args], url, env)
        assert run.exit_code == 0, str(run)
        runs.plans[fmt] = run
    blocking = expected_blocking(json.loads(runs.plans["json"].stdout)) if "json" in runs.plans else False
    before = snapshot(target) if blocking else None
    runs.apply = invoke(["--apply", *case.cli_args], url, env)
    if blocking:
        assert runs.apply.exit_code == 1, str(runs.apply)
        if "text" in runs.plans:  # the refused plan is shown, findings and fixes included
            assert runs.apply.stdout == runs.plans["text"].stdout, str(runs.apply)
        lines = runs.apply.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: refusing to apply: "), str(runs.apply)
        assert snapshot(target) == before, "a refused apply changed the database"
        return runs
    assert runs.apply.exit_code == 0, str(runs.apply)
    runs.after = invoke(["--dry-run", "--detailed-exitcode", "--format", "json", *case.cli_args], url, env)
    assert runs.after.exit_code == 0, f"plan not empty after apply:\n{runs.after}"
    if "json" in runs.plans:  # what was never ours is still there, untouched (also with --prune)
        assert _unmanaged(runs.after) == _unmanaged(runs.plans["json"]), str(runs.after)
    return runs


def _unmanaged(run: Run) -> list[tuple[str, str]]:
    return [(c["kind"], c["key"]) for c in json.loads(run.stdout)["changes"] if c["action"] == "unmanaged"]


def prepare_applied(case: Case, target: DbTarget) -> None:
    """`applied` setup without a case folder (no live.sql)."""
    with psycopg.connect(target.url, autocommit=True) as conn:
        create_app_tables(conn)
    run = invoke(["--apply"], case.url(target))
    assert run.exit_code == 0, str(run)
