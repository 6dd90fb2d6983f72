"""A real hot standby for the read-only tests: a small primary (wal_level replica), pg_basebackup -R, and
the copy started in recovery. About 3 s; the session's own cluster runs with wal_level minimal and no WAL
senders (its speed comes from that), so the standby is made from a primary of its own."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg

from localdb.cluster import Cluster
from localdb.pgtree import Tree
from tests.fix_db import free_port
from tests.tools import system_tool


def _as_server_owner() -> dict[str, object]:
    """subprocess arguments that run a server program as the OS user localdb's servers run as."""
    if os.geteuid() != 0:
        return {}
    owner = pwd.getpwnam("postgres")
    return {"user": owner.pw_uid, "group": owner.pw_gid, "extra_groups": []}


@contextlib.contextmanager
def hot_standby(base: Path) -> Iterator[str]:
    """A URL to a hot standby of a fresh primary (vanilla profile, superuser `postgres`) under `base` (a
    directory the server's OS user can enter: the `localdb_base` fixture's); both stopped and removed after."""
    base.mkdir(parents=True)
    base.chmod(0o777)  # the server's OS user writes the standby's directories here
    primary = Cluster(base / "primary", port=free_port(), profile="vanilla", net_worker=False,
                      settings={"wal_level": "replica", "max_wal_senders": "4"})
    primary.up()
    standby, sockets = base / "standby", base / "standby-run"
    owner = _as_server_owner()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    tree = Tree.open(primary.root / "pgtree")
    pg_ctl = tree.bin("pg_ctl")
    started = False
    try:
        with psycopg.connect(primary.superuser_url(), autocommit=True) as conn:
            major = int(conn.execute("SHOW server_version_num").fetchone()[0]) // 10000  # type: ignore[index]
            with (primary.datadir / "pg_hba.conf").open("a") as hba:
                hba.write("local replication all trust\n")
            conn.execute("SELECT pg_reload_conf()")
        basebackup = system_tool(f"/usr/lib/postgresql/{major}/bin/pg_basebackup", f"postgresql-client-{major}")
        sockets.mkdir()
        if owner:
            os.chown(sockets, owner["user"], owner["group"])  # type: ignore[arg-type]
        subprocess.run([basebackup, "-D", str(standby), "-R", "-X", "stream", "-c", "fast",
                        "-h", str(primary.sockdir), "-p", str(primary.port), "-U", "postgres"],
                       check=True, env=env, cwd=base, capture_output=True, **owner)  # type: ignore[call-overload]
        port = free_port()
        subprocess.run([pg_ctl, "-s", "start", "-D", str(standby), "-l", str(base / "standby.log"), "-w", "-t", "60",
                        "-o", f"-p {port} -k {sockets} -c listen_addresses=''"],
                       check=True, env=env, cwd=base, capture_output=True, **owner)  # type: ignore[call-overload]
        started = True
        yield f"postgresql://postgres@/postgres?host={sockets}&port={port}"
    finally:
        if started:
            subprocess.run([pg_ctl, "-s", "stop", "-D", str(standby), "-m", "immediate"], env=env, cwd=base,
                           capture_output=True, check=False, **owner)  # type: ignore[call-overload]
        primary.down()
        shutil.rmtree(base, ignore_errors=True)
