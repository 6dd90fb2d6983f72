"""localdb's many-clusters helpers: `Cluster.create_from` (a copy of a stopped template instead of initdb),
extra `settings`, and `net_worker=False` (bench/fleet.py starts dozens of clusters with them).
"""

from __future__ import annotations

import psycopg
import pytest

from localdb import Cluster, LocalDbError
from tests.fix_db import free_port

SMALL = {"shared_buffers": "16MB", "max_connections": "20"}


@pytest.fixture(scope="module")
def template(localdb_base):
    cluster = Cluster(localdb_base / "template", port=free_port(), settings=SMALL, net_worker=False)
    cluster.up()
    cluster.down()
    return cluster


def test_a_copy_runs_on_its_own_root_and_port_with_its_settings(template, localdb_base):
    copy = Cluster(localdb_base / "copy", port=free_port(), settings={**SMALL, "max_connections": "25"},
                   net_worker=False)
    copy.create_from(template)
    try:
        copy.up()
        assert copy.worker_pid() is None  # net_worker=False
        with psycopg.connect(copy.superuser_url(), autocommit=True) as conn:
            settings = dict(conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('port', 'unix_socket_directories', "
                "'cron.host', 'max_connections', 'shared_buffers', 'data_directory')").fetchall())
        assert settings == {"port": str(copy.port), "unix_socket_directories": str(copy.sockdir),
                            "cron.host": str(copy.sockdir), "max_connections": "25",
                            "shared_buffers": "2048",  # 8 kB pages
                            "data_directory": str(copy.datadir)}
        # The copy is a supabase-profile cluster like its template: postgres creates the privileged extensions.
        with psycopg.connect(copy.url(), autocommit=True) as conn:
            conn.execute("CREATE EXTENSION pg_cron")
            assert conn.execute("SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
                                ).fetchone() == ("postgres", False)
        assert not template.is_running()
    finally:
        copy.down()


def test_copy_refuses_a_running_template_and_an_existing_cluster(template, localdb_base):
    copy = Cluster(localdb_base / "refused", port=free_port(), settings=SMALL, net_worker=False)
    template.up()
    try:
        with pytest.raises(LocalDbError, match="must be created and stopped"):
            copy.create_from(template)
    finally:
        template.down()
    assert not (copy.root / "data").exists()
    copy.create_from(template)
    with pytest.raises(LocalDbError, match="exists already"):
        copy.create_from(template)


def test_copy_refuses_another_profile(template, localdb_base):
    with pytest.raises(LocalDbError, match="profile"):
        Cluster(localdb_base / "vanilla-copy", port=free_port(), profile="vanilla").create_from(template)
