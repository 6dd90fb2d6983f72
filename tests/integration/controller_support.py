"""Helpers for the controller tests (tests/integration/controller/): `reconcile --watch` as a real process.

`Watcher` starts the controller in its own interpreter (stdout and stderr captured to files, stderr parsed
as structlog JSON lines), talks to its HTTP endpoints and always kills it in `close()`. `wait_until` polls
a condition with a deadline; `hold_reconciler_lock` holds the apply's advisory lock from a test session.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import httpx
import psycopg
import yaml
from prometheus_client.parser import text_string_to_metric_families

from reconciler.engine.transaction import LOCK_KEY
from tests.fix_db import free_port
from tests.integration.apply_support import MANIFEST, ROOT, SECRETS_ENV, query, wait_until

T = TypeVar("T")


def write_atomically(path: Path, data: dict[str, Any] | str) -> None:
    """Replace `path` in one rename, so the controller never reads a half-written manifest."""
    text = data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def copy_manifest(tmp_path: Path, name: str = "scheduler.yaml") -> Path:
    path = tmp_path / name
    path.write_text(MANIFEST.read_text())
    return path


class Watcher:
    """One `reconcile --watch` process."""

    def __init__(self, url: str, manifest: Path, *args: str, interval: str = "1s", workdir: Path,
                 name: str = "watch", env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.stderr_path = workdir / f"{name}.stderr"
        self.stdout_path = workdir / f"{name}.stdout"
        env = {**os.environ, **SECRETS_ENV, **(env or {}), "DATABASE_URL": url}
        argv = [sys.executable, "-c", "from reconciler.cli.main import main; main()", "--watch", "-f", str(manifest),
                "--interval", interval, "--http-port", str(self.port), *args]
        self._out = self.stdout_path.open("wb")
        self._err = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=2.0)

    # --- process ---------------------------------------------------------------------------------
    def close(self) -> None:
        """Kill (if still running) and release everything; safe to call twice."""
        if self.proc.poll() is None:
            self.proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self.http.close()
        self._out.close()
        self._err.close()

    def send(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def alive(self) -> bool:
        return self.proc.poll() is None

    # --- logs ------------------------------------------------------------------------------------
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        """Every complete JSON log line so far (optionally only events called `name`)."""
        out = []
        for line in self.stderr().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue  # a line still being written
            if name is None or event.get("event") == name:
                out.append(event)
        return out

    def non_json_lines(self) -> list[str]:
        bad = []
        for line in self.stderr().splitlines():
            try:
                json.loads(line)
            except ValueError:
                bad.append(line)
        return bad

    def cycles(self, result: str | None = None) -> list[dict[str, Any]]:
        return [e for e in self.events("cycle_finished") if result is None or e.get("result") == result]

    def wait_cycles(self, count: int, timeout: float, result: str | None = None) -> list[dict[str, Any]]:
        """Wait until at least `count` cycle_finished events (with `result`) were logged."""
        self._check_alive()
        return wait_until(f"{count} cycle_finished (result={result}) in {self.stderr_path.name}:\n"
                          + self.stderr()[-3000:],
                          lambda: self._alive_and(len(self.cycles(result)) >= count and self.cycles(result)),
                          timeout)

    def wait_event(self, name: str, timeout: float, where: Callable[[dict[str, Any]], bool] = lambda e: True,
                   count: int = 1) -> list[dict[str, Any]]:
        return wait_until(f"{count} x {name} in {self.stderr_path.name}:\n" + self.stderr()[-3000:],
                          lambda: self._alive_and(len(m := [e for e in self.events(name) if where(e)]) >= count
                                                  and m),
                          timeout)

    def _alive_and(self, value: T) -> T:
        self._check_alive()
        return value

    def _check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise AssertionError(f"controller exited with {self.proc.returncode}:\n{self.stderr()[-3000:]}")

    # --- HTTP ------------------------------------------------------------------------------------
    def get(self, path: str) -> httpx.Response:
        return self.http.get(path)

    def status(self, path: str) -> int | None:
        try:
            return self.http.get(path).status_code
        except httpx.TransportError:
            return None

    def wait_http(self, timeout: float = 10.0) -> None:
        wait_until("the HTTP endpoint", lambda: self._alive_and(self.status("/healthz") is not None), timeout)

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """`/metrics` parsed by prometheus_client: {(sample name, sorted labels): value}."""
        response = self.get("/metrics")
        assert response.status_code == 200
        out = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
        return out


def metric(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextlib.contextmanager
def watcher(url: str, manifest: Path, *args: str, interval: str = "1s", workdir: Path,
            name: str = "watch", env: dict[str, str] | None = None) -> Iterator[Watcher]:
    w = Watcher(url, manifest, *args, interval=interval, workdir=workdir, name=name, env=env)
    try:
        yield w
    finally:
        w.close()


@contextlib.contextmanager
def hold_reconciler_lock(superuser_url: str) -> Iterator[psycopg.Connection[Any]]:
    """Hold the advisory lock every apply takes, from a separate session, until the block ends."""
    conn = psycopg.connect(superuser_url, autocommit=True, application_name="controller test lock")
    try:
        conn.execute("SELECT pg_advisory_lock(%s, %s)", LOCK_KEY)
        yield conn
    finally:
        with contextlib.suppress(psycopg.Error):
            conn.execute("SELECT pg_advisory_unlock(%s, %s)", LOCK_KEY)
        conn.close()


def lock_waiters(superuser_url: str) -> int:
    """Sessions of the reconciler waiting for its advisory lock right now."""
    return query(superuser_url,
                 "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid"
                 " WHERE l.locktype = 'advisory' AND l.classid = %s AND l.objid = %s AND NOT l.granted"
                 " AND a.application_name = 'reconcile'", LOCK_KEY)[0][0]


def object_counts(superuser_url: str) -> dict[str, Any]:
    """How many of each managed object exist, and any name that appears twice."""
    return {
        "cron.job": query(superuser_url, "SELECT count(*) FROM cron.job")[0][0],
        "cron.job names": query(superuser_url, "SELECT count(DISTINCT jobname) FROM cron.job")[0][0],
        "scheduled_jobs": query(superuser_url, "SELECT count(*) FROM public.scheduled_jobs")[0][0],
        "scheduled_jobs names": query(superuser_url,
                                      "SELECT count(DISTINCT job_name) FROM public.scheduled_jobs")[0][0],
        "vault.secrets": query(superuser_url, "SELECT count(*) FROM vault.secrets")[0][0],
        "vault.secrets names": query(superuser_url, "SELECT count(DISTINCT name) FROM vault.secrets")[0][0],
    }


def schedule_of(superuser_url: str, job: str) -> str | None:
    rows = query(superuser_url, "SELECT schedule FROM public.scheduled_jobs WHERE job_name = %s", (job,))
    return rows[0][0] if rows else None


def trigger_active(superuser_url: str, name: str = "master-scheduler") -> bool | None:
    rows = query(superuser_url, "SELECT active FROM cron.job WHERE jobname = %s", (name,))
    return rows[0][0] if rows else None


def disable_trigger(superuser_url: str, name: str = "master-scheduler") -> None:
    query(superuser_url, "SELECT cron.alter_job(jobid, active := false) FROM cron.job WHERE jobname = %s", (name,))


def set_schedule(superuser_url: str, job: str, schedule: str) -> None:
    query(superuser_url, "UPDATE public.scheduled_jobs SET schedule = %s WHERE job_name = %s", (schedule, job))


def tamper_secret(superuser_url: str, name: str, value: str) -> None:
    query(superuser_url, "SELECT vault.update_secret(id, %s) FROM vault.secrets WHERE name = %s", (value, name))
