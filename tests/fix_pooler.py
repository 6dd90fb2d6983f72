"""PgBouncer fixtures: a real connection pooler in front of the test cluster, a pytest plugin like tests/fix_db.py.

`pooled` is parametrised over PgBouncer's two modes: `transaction` (what Supabase's pooler port 6543 is)
and `session` (port 5432 of the pooler). Each test gets its own PgBouncer process, started after the
database reset (the reset terminates every client backend, PgBouncer's server connections included) on
a free TCP port, with its own configuration, user list and log in a directory of the session's
localdb base (which the postgres OS user can enter). As root it runs as the `postgres` OS user, the way
localdb runs the server: PgBouncer refuses to run as root. `default_pool_size = 2`, so transaction mode
really hands one client's transactions to whichever server connection is free.

It FAILS (never skips) when /usr/sbin/pgbouncer is missing: `scripts/install.sh` installs the Debian
package `pgbouncer`.

Fixtures:
    pooled    function, parametrised (ids `transaction`, `session`). The audited database (tables empty,
              no extensions: the runbook's starting state) with `.url` through PgBouncer (role postgres,
              TCP) and `.superuser_url` straight to the cluster (for setup and inspection). Returns a
              `Pooled`: `.mode`, `.url`, `.superuser_url`, `.cluster`, `.pooler` (the `PgBouncer`).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from localdb import Cluster
from tests.fix_db import DbTarget, free_port

PGBOUNCER = Path("/usr/sbin/pgbouncer")
MODES = ("transaction", "session")
START_TIMEOUT = 15.0
_serial = itertools.count()

_INI = """\
[databases]
{database} = host=127.0.0.1 port={server_port} dbname={database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
pool_mode = {mode}
default_pool_size = 2
min_pool_size = 0
reserve_pool_size = 0
max_client_conn = 100
; a test that exhausts the pool by mistake fails in seconds, not after the default 120 s
query_wait_timeout = 10
auth_type = trust
auth_file = {dir}/userlist.txt
pidfile =
server_reset_query = DISCARD ALL
server_check_delay = 30
log_connections = 0
log_disconnections = 0
"""


class PgBouncer:
    """One PgBouncer process in `directory`, listening on 127.0.0.1:`port` in `mode`."""

    def __init__(self, directory: Path, cluster: Cluster, mode: str) -> None:
        self.directory = directory
        self.cluster = cluster
        self.mode = mode
        self.port = free_port()
        self.log_file = directory / "pgbouncer.log"  # its stderr (it runs in the foreground)
        self._proc: subprocess.Popen[bytes] | None = None

    def url(self, role: str = "postgres") -> str:
        return f"postgresql://{role}@127.0.0.1:{self.port}/{self.cluster.database}"

    def start(self) -> PgBouncer:
        if not os.access(PGBOUNCER, os.X_OK):
            pytest.fail(f"{PGBOUNCER} is missing: install the Debian package pgbouncer (bash scripts/install.sh does)",
                        pytrace=False)
        self.directory.mkdir(parents=True)
        ini = self.directory / "pgbouncer.ini"
        ini.write_text(_INI.format(database=self.cluster.database, server_port=self.cluster.port, port=self.port,
                                   mode=self.mode, dir=self.directory))
        # trust: no password is checked, but PgBouncer only admits users its auth_file names
        (self.directory / "userlist.txt").write_text('"postgres" ""\n"supabase_admin" ""\n')
        owner = _run_as()
        extra = {}
        if owner is not None:
            for path in (self.directory, ini, self.directory / "userlist.txt"):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            extra = {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}
        with self.log_file.open("wb") as err:
            self._proc = subprocess.Popen([str(PGBOUNCER), str(ini)], stdin=subprocess.DEVNULL, stdout=err,
                                          stderr=err, cwd=self.directory, **extra)  # type: ignore[call-overload]
        self._wait_listening()
        return self

    def stop(self) -> None:
        """SIGTERM (PgBouncer's immediate shutdown), then SIGKILL after 5 s; only our own child."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log(self) -> str:
        try:
            return self.log_file.read_text(errors="replace")
        except OSError:
            return ""

    def _wait_listening(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                last = (self.log().strip().splitlines() or ["(no log)"])[-1]
                pytest.fail(f"pgbouncer exited with {self._proc.returncode} at start: {last}", pytrace=False)
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return
            time.sleep(0.02)
        self.stop()
        pytest.fail(f"pgbouncer did not listen on 127.0.0.1:{self.port} within {START_TIMEOUT:.0f} s", pytrace=False)


def _run_as() -> pwd.struct_passwd | None:
    """The OS user PgBouncer runs as: `postgres` when we are root (it refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running the tests as root needs an OS user named postgres to run pgbouncer as", pytrace=False)


@dataclass(frozen=True)
class Pooled(DbTarget):
    """A DbTarget whose `.url` goes through PgBouncer; `.superuser_url` goes straight to the cluster."""

    mode: str = "transaction"
    pooler: PgBouncer | None = None


@pytest.fixture(params=MODES)
def pooled(request: pytest.FixtureRequest, audited_db: DbTarget, localdb_base: Path) -> Iterator[Pooled]:
    directory = localdb_base / f"pgbouncer-{request.param}-{os.getpid()}-{next(_serial)}"
    bouncer = PgBouncer(directory, audited_db.cluster, request.param)
    try:
        bouncer.start()
        yield Pooled(url=bouncer.url(), superuser_url=audited_db.superuser_url, cluster=audited_db.cluster,
                     mode=request.param, pooler=bouncer)
    finally:
        bouncer.stop()
        if not os.environ.get("LOCALDB_KEEP"):
            shutil.rmtree(directory, ignore_errors=True)
