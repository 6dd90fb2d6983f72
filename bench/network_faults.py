"""The network fault matrix: each phase of a dry run, an apply and a --watch cycle × reset / silent / slow.

`reconcile` runs as a real process against a throwaway cluster through localdb's fault proxy, which
injects the fault at a protocol message (so the matrix holds for a pipelined apply too):

    connect     the StartupMessage                       read        the capabilities query (the first read)
    begin+lock  BEGIN, timeouts and the advisory lock    statements  the job rows' INSERT
    copy        the first CopyData (the secret values)   history     the INSERT into reconciler.history
    commit      COMMIT reaches the server, its answer is cut or never comes (the outcome is unknown)
    verify      the verifying re-read (the second capabilities query)

Faults: `reset` (an RST at that message), `silent` (from that message on nothing is forwarded, both sockets
stay open: a half-open connection after a failover), `slow` (every round trip from the start costs
--slow seconds, split between the two directions). For every case it records the exit code, the time
to give up, the error line, and what the database holds afterwards: `before` (as it was), `after` (what
a clean apply leaves) or `MIXED`; the history rows; and what the next plan says (`--detailed-exitcode`:
0 nothing to do, 2 changes pending), which must agree with the state.

Run: python bench/network_faults.py [--answer-timeout 5] [--slow 1.5] [--only apply]   (a throwaway cluster)
The CI subset is tests/integration/reliability/test_network_faults.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import psycopg  # noqa: E402

from bench.common import ROOT, SECRETS_ENV, cluster, free_port, reset  # noqa: E402
from localdb.faultproxy import FaultProxy, Trigger, on_commit, on_message, on_query, on_startup  # noqa: E402
from reconciler.watch.lifecycle import SHUTDOWN_GRACE  # noqa: E402

MANIFEST = ROOT / "scheduler.yaml"

#: Each phase as the protocol message where its fault is injected.
PHASES: dict[str, Callable[[], Trigger]] = {
    "connect": on_startup,
    "read": lambda: on_query(r"SELECT current_user, current_database\(\)"),  # the capabilities query
    "begin+lock": lambda: on_query(r"advisory_xact_lock"),
    "statements": lambda: on_query(r'INSERT INTO "public"\."scheduled_jobs"'),
    "copy": lambda: on_message("d"),
    "history": lambda: on_query(r"INSERT INTO reconciler\.history"),
    "commit": on_commit,
    "verify": lambda: on_query(r"SELECT current_user, current_database\(\)", nth=2),
}
DRY_RUN_PHASES = ("connect", "read")
FAULTS = ("reset", "silent", "slow")


@dataclass(frozen=True)
class Outcome:
    mode: str
    phase: str
    fault: str
    code: int | None  # None: still running at the hard limit (killed)
    seconds: float
    line: str
    state: str  # "before", "after" or "MIXED"
    history_rows: int
    next_plan: int | None  # the next --dry-run --detailed-exitcode: 0 nothing to do, 2 changes pending
    fired: bool
    gave_up_after: float | None = None  # seconds from the fault to the process's exit

    @property
    def consistent(self) -> bool:
        """No partial state, the next plan agrees with it, and the history row exists only if committed."""
        if self.state == "MIXED" or self.code is None:
            return False
        committed = self.state == "after"
        if self.mode == "apply" and self.history_rows != (1 if committed else 0):
            return False
        return self.next_plan == (0 if committed else 2)


def snapshot(superuser_url: str) -> dict[str, Any]:
    """What an apply changes, without what differs between two equivalent applies (ids, times)."""
    out: dict[str, Any] = {}
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        def rows(query: str, relation: str) -> list[Any] | None:
            if conn.execute("SELECT to_regclass(%s)", (relation,)).fetchone() == (None,):
                return None
            return [list(r) for r in conn.execute(query).fetchall()]
        out["extensions"] = rows("SELECT extname::text FROM pg_extension ORDER BY 1", "pg_catalog.pg_extension")
        out["jobs"] = rows("SELECT (to_jsonb(t) - ARRAY['id', 'created_at', 'updated_at'])::text FROM"
                           " public.scheduled_jobs t ORDER BY 1", "public.scheduled_jobs")
        out["cron"] = rows("SELECT jobname::text, schedule, command, active FROM cron.job ORDER BY 1", "cron.job")
        out["secrets"] = rows("SELECT name FROM vault.secrets ORDER BY 1", "vault.secrets")
        out["managed"] = rows("SELECT kind, key, applied::text, removed FROM reconciler.managed ORDER BY 1, 2",
                              "reconciler.managed")
    return out


def history_rows(superuser_url: str) -> int:
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        if conn.execute("SELECT to_regclass('reconciler.history')").fetchone() == (None,):
            return 0
        row = conn.execute("SELECT count(*) FROM reconciler.history").fetchone()
    return int(row[0]) if row else 0


def reconciler_sessions_gone(superuser_url: str, timeout: float = 30) -> None:
    """Wait until the server has ended every session of the reconciler (a cut one rolls back then)."""
    deadline = time.monotonic() + timeout
    with psycopg.connect(superuser_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'reconcile'").fetchone()
            if row == (0,):
                return
            time.sleep(0.05)
    raise TimeoutError("the reconciler's sessions did not end")


def cli(url: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120) -> tuple[int | None, str, float]:
    """`reconcile -f scheduler.yaml ARGS`: (exit code or None when killed at `timeout`, stderr, seconds)."""
    full_env = {**os.environ, **SECRETS_ENV, "DATABASE_URL": url, **(env or {})}
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", "from reconciler.cli.main import main; main()", "-f", str(MANIFEST),
                             *args], cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    try:
        _, stderr = proc.communicate(timeout=timeout)
        code: int | None = proc.returncode
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        code = None
    return code, stderr, time.monotonic() - started


def error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip() and not line.startswith("warning: ")]
    return lines[-1] if lines else ""


@dataclass
class Target:
    """The database under test: where it listens, how to reach it as superuser, how to start over."""

    port: int
    database: str
    superuser_url: str
    reset: Callable[[], None]
    role: str = "postgres"

    def url(self) -> str:
        return f"postgresql://{self.role}@127.0.0.1:{self.port}/{self.database}?sslmode=disable"


def run_case(target: Target, mode: str, phase: str, fault: str, *, answer_timeout: float, slow: float,
             after: dict[str, Any]) -> Outcome:
    """One case from a fresh database: `reconcile --dry-run` or `--apply` through the proxy with `fault`."""
    target.reset()
    before = snapshot(target.superuser_url)
    delay = slow / 2 if fault == "slow" else 0.0
    with FaultProxy(target.port, c2s_delay=delay, s2c_delay=delay) as proxy:
        armed = proxy.arm(fault, PHASES[phase](), at="response" if phase == "commit" else "request") \
            if fault != "slow" else None
        code, stderr, seconds = cli(proxy.url(target.role, target.database),
                                    "--apply" if mode == "apply" else "--dry-run",
                                    env={"RECONCILER_ANSWER_TIMEOUT": str(answer_timeout)} if answer_timeout > 0 else {},
                                    timeout=max(answer_timeout, 40) * 4 + 60)
        exited_at = time.monotonic()
    reconciler_sessions_gone(target.superuser_url)
    got = snapshot(target.superuser_url)
    state = "before" if got == before else "after" if got == after else "MIXED"
    next_code, _, _ = cli(target.url(), "--dry-run", "--detailed-exitcode")
    gave_up = exited_at - armed.fired_at if armed is not None and armed.fired_at is not None else None
    return Outcome(mode, phase, fault, code, seconds, error_line(stderr) if code else "", state,
                   history_rows(target.superuser_url), next_code, armed is None or armed.fired.is_set(), gave_up)


def clean_apply_state(target: Target) -> dict[str, Any]:
    """What a clean apply leaves (directly, no proxy)."""
    target.reset()
    code, stderr, _ = cli(target.url(), "--apply")
    if code != 0:
        raise RuntimeError(f"the clean apply failed: {stderr}")
    return snapshot(target.superuser_url)


def matrix(target: Target, *, answer_timeout: float, slow: float, only: str | None = None) -> list[Outcome]:
    after = clean_apply_state(target)
    outcomes = []
    for mode, phases in (("dry-run", DRY_RUN_PHASES), ("apply", tuple(PHASES))):
        if only and only != mode:
            continue
        for phase in phases:
            for fault in FAULTS:
                if fault == "slow" and phase != phases[0]:
                    continue  # a slow link is slow from the start: one case per mode
                outcome = run_case(target, mode, phase, fault, answer_timeout=answer_timeout, slow=slow, after=after)
                print(json.dumps(outcome.__dict__), file=sys.stderr, flush=True)
                outcomes.append(outcome)
    return outcomes


@dataclass(frozen=True)
class WatchOutcome:
    phase: str
    fault: str
    failed_cycle: str  # the failed cycle's error, or "" when none failed
    failed_after: float | None  # that cycle's duration (s)
    stuck_readiness: bool  # /readyz said "cycle running" (503) while it waited
    converged_after: float | None  # seconds from the fault to the first successful cycle after it
    history_rows: int
    next_plan: int | None
    stopped_after: float | None = None  # SIGTERM to exit (s), for the stop case

    @property
    def good(self) -> bool:
        if self.stopped_after is not None:  # stopped mid-apply: nothing committed, within the default grace
            return self.stopped_after < SHUTDOWN_GRACE + 5 and self.history_rows == 0 and self.next_plan == 2
        return bool(self.failed_cycle) and self.converged_after is not None and self.history_rows == 1 \
            and self.next_plan == 0


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=1) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
    except OSError:
        return 0, ""


def _events(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            out.append(json.loads(line))
    return out


def watch_case(target: Target, phase: str, fault: str, *, answer_timeout: float, stop: bool = False,
               grace: float | None = None) -> WatchOutcome:
    """`reconcile --watch --apply --interval 1s` through the proxy, `fault` armed for its first apply; with
    `stop`, SIGTERM once the fault fired (measures the shutdown grace instead of the recovery)."""
    target.reset()
    port = free_port()
    env = {**os.environ, **SECRETS_ENV, "RECONCILER_ANSWER_TIMEOUT": str(answer_timeout)}
    if grace is not None:
        env["RECONCILER_SHUTDOWN_GRACE"] = str(grace)
    with FaultProxy(target.port) as proxy, tempfile.TemporaryDirectory() as tmp:
        armed = proxy.arm(fault, PHASES[phase](), at="response" if phase == "commit" else "request")
        env["DATABASE_URL"] = proxy.url(target.role, target.database)
        log_path = Path(tmp) / "watch.log"
        with log_path.open("wb") as log_file:
            proc = subprocess.Popen([sys.executable, "-c", "from reconciler.cli.main import main; main()", "--watch",
                                     "--apply", "-f", str(MANIFEST), "--interval", "1s", "--http-port", str(port),
                                     "--log-format", "json"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                    stdout=subprocess.DEVNULL, stderr=log_file)
            stuck, failed, converged, stopped = False, None, None, None
            limit = time.monotonic() + answer_timeout * 3 + 60
            try:
                while time.monotonic() < limit and proc.poll() is None:
                    if stop and armed.fired.is_set():
                        time.sleep(0.3)
                        sent = time.monotonic()
                        proc.send_signal(signal.SIGTERM)
                        proc.wait(grace or 30 + 30)
                        stopped = time.monotonic() - sent
                        break
                    status, body = _get(port, "/readyz")
                    stuck = stuck or (status == 503 and "cycle running" in body)
                    cycles = [e for e in _events(log_path) if e.get("event") == "cycle_finished"]
                    failed = next((e for e in cycles if e.get("result") == "error"), failed)
                    if failed is not None and armed.fired_at is not None and cycles[-1].get("result") == "success":
                        converged = time.monotonic() - armed.fired_at
                        break
                    time.sleep(0.05)
            finally:
                if proc.poll() is None:
                    proc.terminate()
                    proc.wait(60)
    reconciler_sessions_gone(target.superuser_url)
    next_code, _, _ = cli(target.url(), "--dry-run", "--detailed-exitcode")
    return WatchOutcome(phase, fault, (failed or {}).get("error") or "",
                        (failed or {}).get("duration_ms", 0) / 1000 if failed else None, stuck, converged,
                        history_rows(target.superuser_url), next_code, stopped)


def watch_matrix(target: Target, *, answer_timeout: float) -> list[WatchOutcome]:
    outcomes = []
    for phase in ("read", "statements", "history", "commit"):
        for fault in ("reset", "silent"):
            outcome = watch_case(target, phase, fault, answer_timeout=answer_timeout)
            print(json.dumps(outcome.__dict__), file=sys.stderr, flush=True)
            outcomes.append(outcome)
    # SIGTERM while an apply waits on a silent server, with the default deadline and grace
    outcome = watch_case(target, "statements", "silent", answer_timeout=60, stop=True)
    print(json.dumps(outcome.__dict__), file=sys.stderr, flush=True)
    return outcomes + [outcome]


def watch_table(outcomes: list[WatchOutcome]) -> str:
    lines = ["| --watch --apply, first apply at | fault | failed cycle took (s) | /readyz 503 while stuck "
             "| converged after the fault (s) | SIGTERM to exit (s) | history rows | next plan | the failed cycle's error |",
             "|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        plan = {0: "nothing to do", 2: "changes pending"}.get(o.next_plan or 0, str(o.next_plan))
        text = o.failed_cycle.replace("|", "\\|")
        text = text if len(text) <= 150 else text[:147] + "..."
        lines.append(f"| {o.phase} | {o.fault} | {_num(o.failed_after)} | {'yes' if o.stuck_readiness else 'no'} "
                     f"| {_num(o.converged_after)} | {_num(o.stopped_after)} | {o.history_rows} | {plan} | {text} |")
    return "\n".join(lines)


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def table(outcomes: list[Outcome]) -> str:
    lines = ["| mode | phase | fault | exit | run (s) | fault to exit (s) | database after | history rows | next plan "
             "| one line |", "|---|---|---|---|---|---|---|---|---|---|"]
    for o in outcomes:
        phase = "whole run" if o.fault == "slow" else o.phase
        plan = {0: "nothing to do", 2: "changes pending"}.get(o.next_plan or 0, str(o.next_plan))
        text = o.line.replace("|", "\\|")
        if len(text) > 170:
            text = text[:167] + "..."
        gave_up = "-" if o.gave_up_after is None else f"{o.gave_up_after:.1f}"
        lines.append(f"| {o.mode} | {phase} | {o.fault} | {o.code} | {o.seconds:.1f} | {gave_up} | {o.state} "
                     f"| {o.history_rows} "
                     f"| {plan} | {text or '(success)'} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--answer-timeout", type=float, default=5.0,
                        help="RECONCILER_ANSWER_TIMEOUT for the runs (default 5 s; 0: unset, the default 40 s)")
    parser.add_argument("--slow", type=float, default=1.5, help="seconds per round trip on the slow link")
    parser.add_argument("--only", choices=["dry-run", "apply", "watch"])
    parser.add_argument("--case", metavar="MODE:PHASE:FAULT", help="one case only, e.g. dry-run:read:silent")
    args = parser.parse_args()
    outcomes: list[Outcome] = []
    watched: list[WatchOutcome] = []
    with cluster() as c:
        target = Target(c.port, c.database, c.superuser_url(), lambda: reset(c))
        if args.case:
            mode, phase, fault = args.case.split(":")
            outcomes = [run_case(target, mode, phase, fault, answer_timeout=args.answer_timeout, slow=args.slow,
                                 after=clean_apply_state(target))]
        elif args.only != "watch":
            outcomes = matrix(target, answer_timeout=args.answer_timeout, slow=args.slow, only=args.only)
        if args.only in (None, "watch") and not args.case:
            watched = watch_matrix(target, answer_timeout=args.answer_timeout)
    if outcomes:
        print(table(outcomes) + "\n")
    if watched:
        print(watch_table(watched))
    bad: list[Any] = [o for o in outcomes if not o.consistent or (o.fault == "slow") != (o.code == 0) or not o.fired]
    bad += [o for o in watched if not o.good]
    for o in bad:
        print(f"FAILED: {o}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
