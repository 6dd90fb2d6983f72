"""Reads the evidence `reconcile verify` judges: the I/O half of the verify package.

Where it sits: `cli_verify.py` opens one autocommit connection and calls `Reader.read()` once, or once a
second with --wait; each call runs a handful of small queries in one read-only transaction (no session
state, so it works through a transaction-mode pooler) and returns a `verify.evidence.Evidence`
(without the plan). A relation that is absent or not readable is recorded in `Evidence.unavailable`
instead of failing the whole command.

Secrets stay in the database: queued request URLs are cut down to their path in SQL (the base URL is
the project_url secret), and nothing reads vault.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import psycopg
from psycopg import errors as pgerr
from psycopg.pq import TransactionStatus

from reconciler import db
from reconciler.verify.checks import lookback
from reconciler.verify.evidence import (
    DEFAULT_TIMEOUT_MS,
    CronJob,
    CronRun,
    DeclaredTrigger,
    Evidence,
    ExecutionRow,
    HttpResponse,
    ObservedRequest,
    ScheduledJob,
    TableStats,
    TextField,
)

if TYPE_CHECKING:
    from reconciler.manifest import Manifest

__all__ = ["Reader", "declared_triggers"]

ROW_LIMIT = 2000
RELATIONS = ("cron.job", "cron.job_run_details", "net.http_request_queue", "net._http_response",
             "public.scheduled_jobs", "public.job_executions")

_HEAD = """
SELECT now(), current_database(), current_setting('pg_net.database_name', true),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r WHERE to_regclass(r) IS NOT NULL),
       ARRAY(SELECT r FROM unnest(%(relations)s::text[]) r
              WHERE to_regclass(r) IS NOT NULL AND has_table_privilege(r, 'SELECT'))
"""
_CRON_JOBS = "SELECT jobid, jobname::text, schedule, command, active FROM cron.job ORDER BY jobid"
_RUNS = f"""
SELECT jobid, runid, status, left(return_message, 500), start_time, end_time
  FROM cron.job_run_details
 WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = ANY(%(names)s)) AND start_time IS NOT NULL
   AND (start_time >= %(since)s
        OR runid IN (SELECT max(runid) FROM cron.job_run_details
                      WHERE jobid IN (SELECT jobid FROM cron.job WHERE jobname = ANY(%(names)s)) GROUP BY jobid))
 ORDER BY start_time DESC
 LIMIT {ROW_LIMIT}
"""
_RESPONSES = f"""
SELECT id, status_code, timed_out, left(error_msg, 500), created
  FROM net._http_response WHERE created >= %s ORDER BY created DESC LIMIT {ROW_LIMIT}
"""
# Only the path: scheme and authority (the project_url secret) and the query are cut off in the database.
_QUEUE = f"""
SELECT id, split_part(split_part(regexp_replace(url, '^[A-Za-z][A-Za-z0-9+.-]*://[^/?#]*', ''), '?', 1), '#', 1)
  FROM net.http_request_queue ORDER BY id LIMIT {ROW_LIMIT}
"""
_EXECUTIONS = f"""
SELECT s.job_name, e.started_at::timestamptz, e.status, left(e.error_message, 500)
  FROM public.job_executions e LEFT JOIN public.scheduled_jobs s ON s.id = e.job_id
 WHERE e.started_at >= %s ORDER BY e.started_at DESC LIMIT {ROW_LIMIT}
"""
_SCHEDULED = "SELECT to_jsonb(s) FROM public.scheduled_jobs s"
_STATS = {
    "cron.job_run_details": "SELECT count(*), min(start_time) FROM cron.job_run_details",
    "net._http_response": "SELECT count(*), min(created) FROM net._http_response",
}


def declared_triggers(manifest: Manifest) -> tuple[DeclaredTrigger, ...]:
    """The manifest's triggers as verify sees them: endpoint path and display form, never a secret value."""
    from reconciler.manifest import SecretRef

    out = []
    for trig in manifest.triggers:
        post = trig.http_post
        if post is None:
            out.append(DeclaredTrigger(trig.name, trig.schedule))
            continue
        if isinstance(post.url, SecretRef):
            path = urlsplit("http://x" + post.url.append).path if post.url.append.startswith("/") else post.url.append
            endpoint = f"{post.url.prepend}{{{post.url.secret}}}{post.url.append}"
        else:
            parts = urlsplit(str(post.url))
            path = parts.path
            endpoint = f"{parts.scheme}://{parts.hostname or ''}{f':{parts.port}' if parts.port else ''}{parts.path}"
        secret = None
        for header, value in post.headers.items():
            if header.lower() == "x-cron-secret" and isinstance(value, SecretRef):
                secret = value.secret
        timeout = post.timeout_milliseconds or DEFAULT_TIMEOUT_MS
        out.append(DeclaredTrigger(trig.name, trig.schedule, path or "/", endpoint, secret, int(timeout)))
    return tuple(out)


def _ts(value: Any) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    try:
        value = datetime.fromisoformat(str(value))
    except ValueError:
        return None
    # A `timestamp without time zone` column in an application table: the server stores UTC (Supabase).
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _texts(source: str, key: str, row: dict[str, Any], prefix: str = "") -> list[TextField]:
    out = []
    for column, value in row.items():
        if isinstance(value, str):
            out.append(TextField(source, key, prefix + column, value))
        elif isinstance(value, dict):
            out += _texts(source, key, value, f"{prefix}{column}.")
        elif isinstance(value, list):
            out += _texts(source, key, {str(i): v for i, v in enumerate(value)}, f"{prefix}{column}.")
    return out


class Reader:
    """Reads evidence over one connection; remembers queued requests across polls (first-seen times)."""

    def __init__(self, conn: psycopg.Connection[Any], declared: Sequence[DeclaredTrigger]) -> None:
        self.conn = conn
        self.declared = tuple(declared)
        self.check_start: datetime | None = None
        self._seen: dict[int, tuple[str, datetime]] = {}

    def _begin(self) -> Any:
        """BEGIN READ ONLY and the head query in one round trip; returns the head row."""
        # Read-only per transaction, not per session (`SET default_transaction_read_only`): behind a
        # transaction-mode pooler a session setting stays in the server session for the next client.
        with db.translated("reading the verify evidence"):
            with self.conn.pipeline():
                self.conn.execute("BEGIN READ ONLY")
                cur = self.conn.cursor()
                cur.execute(_HEAD, {"relations": list(RELATIONS)})
            return cur.fetchone()

    def _end(self) -> None:
        if self.conn.info.transaction_status != TransactionStatus.IDLE:
            with contextlib.suppress(psycopg.Error):
                self.conn.execute("ROLLBACK")

    def _rows(self, query: str, params: Any, relation: str, unavailable: dict[str, str]) -> list[tuple[Any, ...]]:
        try:
            with self.conn.cursor() as cur:
                cur.execute(query, params)
                return cur.fetchall()
        except (pgerr.InsufficientPrivilege, pgerr.UndefinedTable, pgerr.UndefinedColumn,
                pgerr.InvalidSchemaName, pgerr.UndefinedFunction) as e:
            unavailable[relation] = " ".join(str(e.diag.message_primary or e).split())
            self._end()  # the error ended the transaction; the next relation is read in a new one
            with db.translated("starting a read-only transaction"):
                self.conn.execute("BEGIN READ ONLY")
            return []
        except psycopg.Error as e:
            raise db.translate(e, f"reading {relation}") from e

    def _fetch(self, queries: dict[str, tuple[str, str, Any]], readable: set[str],
               unavailable: dict[str, str]) -> dict[str, list[tuple[Any, ...]]]:
        """Every query, `name -> (relation, query, params)`, in one round trip with the transaction's end.

        Queries on relations the role may read go in one pipeline; the rest (rare: a relation that
        exists but is not readable) run one by one, so each failure is recorded for its relation alone.
        An unexpected error in the pipeline falls back to that slower path for all of them.
        """
        results: dict[str, list[tuple[Any, ...]]] = {}
        piped = {n: q for n, q in queries.items() if q[0] in readable}
        try:
            with self.conn.pipeline():
                cursors = {}
                for name, (_, query, params) in piped.items():
                    cursors[name] = cur = self.conn.cursor()
                    cur.execute(query, params)
                if len(piped) == len(queries):
                    self.conn.execute("ROLLBACK")
            results = {name: cur.fetchall() for name, cur in cursors.items()}
        except psycopg.Error:
            self._end()
            with db.translated("starting a read-only transaction"):
                self.conn.execute("BEGIN READ ONLY")
            piped = {}
        for name, (relation, query, params) in queries.items():
            if name not in piped:
                results[name] = self._rows(query, params, relation, unavailable)
        return results

    def read(self, *, full: bool = True) -> Evidence:
        """The evidence; `full=False` (the --wait polls) reads only what `verify.settled` looks at: the
        cron jobs, their runs, responses and the queue, not the application tables or the table sizes.
        Each call is one read-only transaction in two round trips (on the autocommit connection the
        Reader was given): the head, then every query in one pipeline."""
        try:
            return self._read(full)
        finally:
            self._end()

    def _read(self, full: bool) -> Evidence:
        unavailable: dict[str, str] = {}
        head = self._begin()
        assert head is not None
        now, database, pg_net_database, present, readable = head
        if self.check_start is None:
            self.check_start = now
        since = min(self.check_start, now - lookback(self.declared))
        for rel in RELATIONS:
            if rel not in present:
                unavailable[rel] = "does not exist"
        names = [t.name for t in self.declared]
        queries: dict[str, tuple[str, str, Any]] = {
            "cron_jobs": ("cron.job", _CRON_JOBS, None),
            "responses": ("net._http_response", _RESPONSES, (since,)),
            "queued": ("net.http_request_queue", _QUEUE, None),
        }
        if names and "cron.job" in readable:
            queries["runs"] = ("cron.job_run_details", _RUNS, {"names": names, "since": since})
        if full:
            queries["executions"] = ("public.job_executions", _EXECUTIONS, (since,))
            queries["scheduled"] = ("public.scheduled_jobs", _SCHEDULED, None)
            queries.update({f"stats:{rel}": (rel, query, None) for rel, query in _STATS.items()})
        fetched = self._fetch({n: q for n, q in queries.items() if q[0] not in unavailable}, set(readable),
                              unavailable)

        def rows(rel: str, name: str) -> list[tuple[Any, ...]]:
            return [] if rel in unavailable else fetched.get(name, [])

        cron_jobs = tuple(CronJob(*r) for r in rows("cron.job", "cron_jobs"))
        runs = tuple(CronRun(*r) for r in rows("cron.job_run_details", "runs"))
        responses = tuple(HttpResponse(*r) for r in rows("net._http_response", "responses"))
        queued = rows("net.http_request_queue", "queued")
        queued_ids = set()
        for rid, path in queued:
            queued_ids.add(rid)
            self._seen.setdefault(rid, (path, now))
        answered = {r.id for r in responses}
        requests = tuple(ObservedRequest(rid, path, first, rid in queued_ids)
                         for rid, (path, first) in sorted(self._seen.items())
                         if rid in queued_ids or rid in answered)
        if not full:
            return Evidence(now=now, check_start=self.check_start, declared=self.declared, cron_jobs=cron_jobs,
                            runs=runs, responses=responses, requests=requests, database=database,
                            pg_net_database=pg_net_database, unavailable=unavailable)
        executions = tuple(ExecutionRow(*r) for r in rows("public.job_executions", "executions"))
        scheduled, texts = [], []
        for (doc,) in rows("public.scheduled_jobs", "scheduled"):
            name = str(doc.get("job_name") or doc.get("id") or "?")
            scheduled.append(ScheduledJob(name, str(doc.get("schedule") or ""), bool(doc.get("is_active", True)),
                                          _ts(doc.get("last_run_at")), _ts(doc.get("created_at"))))
            texts += _texts("public.scheduled_jobs", name, doc)
        for job in cron_jobs:
            texts.append(TextField("cron.job", job.jobname or f"#{job.jobid}", "command", job.command))
        tables = []
        for rel in _STATS:
            got = rows(rel, f"stats:{rel}")
            if got:
                tables.append(TableStats(rel, int(got[0][0]), got[0][1]))
            else:
                tables.append(TableStats(rel, None, note=unavailable.get(rel, "")))
        return Evidence(
            now=now, check_start=self.check_start, declared=self.declared, cron_jobs=cron_jobs, runs=runs,
            responses=responses, requests=requests, executions=executions, scheduled_jobs=tuple(scheduled),
            tables=tuple(tables), texts=tuple(texts), database=database, pg_net_database=pg_net_database,
            unavailable=unavailable,
        )
