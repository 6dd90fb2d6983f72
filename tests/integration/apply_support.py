"""Helpers for the apply tests (tests/integration/apply/): run the CLI, edit manifests, dump state.

Everything here talks to the real throwaway database started by tests/fix_db.py; nothing is mocked.
`dump()` reads as the superuser so row-level security on cron.job hides nothing.
"""

from __future__ import annotations

import copy
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import psycopg
import yaml
from click.testing import CliRunner, Result

from reconciler.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
MANIFEST = ROOT / "scheduler.yaml"

#: Secret values fed through the environment; no output, plan file or history row may contain them.
SECRETS_ENV = {
    "SUPABASE_URL": "https://apply-marker-url-5b1e.example.test",
    "SUPABASE_SERVICE_ROLE_KEY": "apply-marker-service-role-9d27c4",
    "CRON_SECRET": "apply-marker-cron-secret-e83f10",
}
MARKERS = tuple(SECRETS_ENV.values())

JOB_NAMES = (
    "fetch_google_news", "fetch_rss_feeds", "detect_trend_events", "extract_trend_entities",
    "tag_trend_policy_domains", "tag_trend_geographies", "compute_org_relevance", "match_entity_watchlist",
    "update_org_affinities", "correlate_trends_campaigns", "decay_stale_affinities", "ttl_cleanup",
    "cleanup_old_cache",
)
SECRET_NAMES = ("cron_secret", "project_url", "service_role_key")
T = TypeVar("T")


def wait_until(what: str, check: Callable[[], T], timeout: float, interval: float = 0.05) -> T:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what} (last value: {value!r})")
        time.sleep(interval)


def reconcile(url: str, *args: str, manifest: Path | None = MANIFEST, env: dict[str, str] | None = None) -> Result:
    """`reconcile [-f manifest] ARGS` through click's CliRunner; stdout and stderr kept apart."""
    argv = list(args)
    if manifest is not None:
        argv = ["-f", str(manifest), *argv]
    return CliRunner().invoke(main, argv, env={**SECRETS_ENV, "DATABASE_URL": url, **(env or {})},
                              catch_exceptions=False)


def reconcile_sub(url: str, sub: str, *args: str, manifest: Path | None = MANIFEST) -> Result:
    """A sub-command (`down`, `history`): its own -f comes after the sub-command's name."""
    argv = [sub]
    if manifest is not None:
        argv += ["-f", str(manifest)]
    return CliRunner().invoke(main, [*argv, *args], env={**SECRETS_ENV, "DATABASE_URL": url},
                              catch_exceptions=False)


def spawn(url: str, *args: str, manifest: Path = MANIFEST) -> subprocess.Popen[str]:
    """The CLI in its own interpreter (for concurrency tests)."""
    import os

    env = {**os.environ, **SECRETS_ENV, "DATABASE_URL": url}
    return subprocess.Popen(
        [sys.executable, "-c", "from reconciler.cli.main import main; main()", "-f", str(manifest), *args],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def load_manifest_data(path: Path = MANIFEST) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())


def write_manifest(tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None = None,
                   name: str = "scheduler.yaml", base: dict[str, Any] | None = None) -> Path:
    """scheduler.yaml (or `base`) with `edit` applied, written to tmp_path/name."""
    data = copy.deepcopy(base if base is not None else load_manifest_data())
    if edit is not None:
        edit(data)
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def job(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(j for j in data["jobs"] if j["name"] == name)


def trigger(data: dict[str, Any], name: str) -> dict[str, Any]:
    return next(t for t in data["triggers"] if t["name"] == name)


def query(url: str, text: str, params: Sequence[Any] | None = None) -> list[tuple[Any, ...]]:
    with psycopg.connect(url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute(text, params)  # type: ignore[arg-type]
        return cur.fetchall() if cur.description is not None else []


def execute(url: str, text: str, params: Sequence[Any] | None = None) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(text, params)  # type: ignore[arg-type]


def _exists(cur: psycopg.Cursor[Any], relation: str) -> bool:
    cur.execute("SELECT to_regclass(%s) IS NOT NULL", (relation,))
    row = cur.fetchone()
    return bool(row and row[0])


def dump(superuser_url: str) -> dict[str, Any]:
    """Everything an apply may touch, as plain data: compare two dumps for equality."""
    out: dict[str, Any] = {}
    with psycopg.connect(superuser_url, autocommit=True) as conn, conn.cursor() as cur:
        cur.execute("SELECT extname::text, extversion, extnamespace::regnamespace::text FROM pg_extension ORDER BY 1")
        out["extensions"] = cur.fetchall()
        cur.execute("SELECT nspname::text FROM pg_namespace WHERE nspname IN ('reconciler', 'vault', 'net', 'cron')"
                    " ORDER BY 1")
        out["schemas"] = cur.fetchall()
        for table in ("public.scheduled_jobs", "public.job_executions"):
            if _exists(cur, table):
                cur.execute(f"SELECT row_to_json(t)::text FROM {table} t ORDER BY 1")  # noqa: S608
                out[table] = cur.fetchall()
                cur.execute("SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute"
                            " WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                            (table,))
                out[table + " columns"] = cur.fetchall()
            else:
                out[table] = None
        if _exists(cur, "vault.decrypted_secrets"):
            cur.execute("SELECT id::text, name, description, encode(sha256(convert_to(decrypted_secret, 'UTF8')), 'hex'),"
                        " updated_at FROM vault.decrypted_secrets ORDER BY name")
            out["secrets"] = cur.fetchall()
        if _exists(cur, "cron.job"):
            cur.execute("SELECT jobid, jobname::text, schedule, command, active, database, username::text"
                        " FROM cron.job ORDER BY jobid")
            out["cron.job"] = cur.fetchall()
        for table in ("reconciler.managed", "reconciler.history"):
            if _exists(cur, table):
                cur.execute(f"SELECT row_to_json(t)::text FROM {table} t ORDER BY 1")  # noqa: S608
                out[table] = cur.fetchall()
    return out


def jobid(superuser_url: str, name: str = "master-scheduler") -> int | None:
    rows = query(superuser_url, "SELECT jobid FROM cron.job WHERE jobname = %s", (name,))
    assert len(rows) <= 1, f"duplicate cron jobs named {name}: {rows}"
    return rows[0][0] if rows else None


def cron_job(superuser_url: str, name: str = "master-scheduler") -> dict[str, Any] | None:
    rows = query(superuser_url, "SELECT jobid, schedule, command, active, username::text FROM cron.job"
                                " WHERE jobname = %s", (name,))
    if not rows:
        return None
    jid, schedule, command, active, user = rows[0]
    return {"jobid": jid, "schedule": schedule, "command": command, "active": active, "username": user}


def jobs(superuser_url: str) -> dict[str, dict[str, Any]]:
    rows = query(superuser_url, "SELECT job_name, job_type, schedule, endpoint, description, is_active"
                                " FROM public.scheduled_jobs ORDER BY job_name")
    return {r[0]: dict(zip(("job_type", "schedule", "endpoint", "description", "is_active"), r[1:], strict=True))
            for r in rows}


def secret_digests(superuser_url: str) -> dict[str, str]:
    rows = query(superuser_url, "SELECT name, encode(sha256(convert_to(decrypted_secret, 'UTF8')), 'hex')"
                                " FROM vault.decrypted_secrets ORDER BY name")
    return dict(rows)


def history_rows(superuser_url: str) -> list[tuple[Any, ...]]:
    if not query(superuser_url, "SELECT to_regclass('reconciler.history') IS NOT NULL")[0][0]:
        return []
    return query(superuser_url, "SELECT id, command, summary, changes FROM reconciler.history ORDER BY id")


def one_line_error(result: Any, code: int = 1, *words: str) -> str:
    """A user error as the CLI promises it: exit `code`, nothing on stdout, exactly one line on stderr
    (naming each of `words`), no traceback. Returns that line."""
    text = f"exit {result.exit_code}\nstdout: {result.stdout}\nstderr: {result.stderr}"
    assert result.exit_code == code, text
    assert result.stdout == "", text
    assert result.stderr.endswith("\n") and result.stderr.count("\n") == 1, text
    assert "Traceback" not in result.stderr, text
    line = result.stderr.rstrip("\n")
    for word in words:
        assert word in line, text
    return line


def assert_ok(result: Result) -> None:
    assert result.exit_code == 0, f"exit {result.exit_code}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"


def assert_converged(url: str, manifest: Path = MANIFEST, *args: str) -> None:
    """The plan is empty: `--detailed-exitcode` exits 0."""
    result = reconcile(url, "--detailed-exitcode", *args, manifest=manifest)
    assert result.exit_code == 0, f"plan not empty (exit {result.exit_code}):\n{result.stdout}\n{result.stderr}"
    assert "No changes." in result.stdout


def assert_no_markers(text: str) -> None:
    for marker in MARKERS:
        assert marker not in text
