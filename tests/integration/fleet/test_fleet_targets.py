"""read_targets with a supabase_branches generator (Management API stand-in) yields targets that reach the
real local cluster, and no token, database password or service key shows in any message, repr or log."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from localdb import Cluster
from localdb.management_api import ManagementApiStandIn
from reconciler.fleet.targets_file import read_targets
from reconciler.manifest import load_manifest

ROOT = Path(__file__).resolve().parents[3]
TOKEN = "sbp_fleet-token-MARKER-42"


@pytest.fixture
def api() -> Iterator[ManagementApiStandIn]:
    with ManagementApiStandIn(token=TOKEN) as stand_in:
        yield stand_in


def test_generated_branch_targets_connect_to_the_local_cluster(
        api: ManagementApiStandIn, cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    project = api.add_project("signals")
    main = api.add_branch(project.ref, "main", is_default=True, url=cluster.url())
    feature = api.add_branch(project.ref, "feature/trends", url=cluster.tcp_url(), db_pass="db-pass-MARKER-7")
    api.add_branch(project.ref, "wip", status="RUNNING_MIGRATIONS", url=cluster.url())
    path = tmp_path / "targets.yaml"
    path.write_text(f"""\
version: 1
targets:
  - name: declared
    database_url: {{from_env: DECLARED_URL}}
generators:
  - supabase_branches:
      project_ref: {project.ref}
      api_url: {api.url}
      sslmode: disable
      secrets: {{project_url: url, service_role_key: service_role_key}}
""")
    caplog.set_level(logging.DEBUG)
    result = read_targets(str(path), {"SUPABASE_ACCESS_TOKEN": TOKEN, "DECLARED_URL": cluster.url()})
    assert result.names() == ("declared", "main", "feature-trends")
    assert result.errors == ()
    assert len(result.notes) == 1 and '"wip" skipped' in result.notes[0]
    environ = {"SUPABASE_URL": "https://shared.example", "SUPABASE_SERVICE_ROLE_KEY": "shared", "CRON_SECRET": "c",
               "DECLARED_URL": cluster.url()}
    manifest = load_manifest([ROOT / "scheduler.yaml"])
    for target in result.targets:
        with psycopg.connect(target.url(environ).reveal(), connect_timeout=5) as conn:
            assert conn.execute("select 1, current_user").fetchone() == (1, "postgres")
    trends = result.targets[2]
    values = trends.secret_values(manifest, environ)
    assert values["project_url"].reveal() == f"https://{feature.ref}.supabase.co"
    assert values["service_role_key"].reveal() == feature.service_role_key
    assert values["cron_secret"].reveal() == "c"  # not overridden: the manifest's own source
    assert trends.environ == {"SUPABASE_PROJECT_REF": feature.ref}

    shown = "\n".join([str(result), repr(result), *map(repr, result.targets), *map(str, values.values()),
                       *map(repr, values.values()), caplog.text])
    for marker in (TOKEN, feature.db_pass, main.db_pass, feature.service_role_key, main.service_role_key,
                   feature.anon_key, project.service_role_key):
        assert marker not in shown


def test_a_branch_pointing_at_a_dead_port_fails_to_connect_without_its_password(
        api: ManagementApiStandIn, cluster: Cluster, tmp_path: Path) -> None:
    project = api.add_project("signals")
    api.add_branch(project.ref, "dead", db_host="127.0.0.1", db_port=1, db_pass="dead-pass-MARKER")
    path = tmp_path / "targets.yaml"
    path.write_text(f"version: 1\ngenerators:\n  - supabase_branches: {{project_ref: {project.ref}, "
                    f"api_url: '{api.url}', sslmode: disable}}\n")
    target, = read_targets(str(path), {"SUPABASE_ACCESS_TOKEN": TOKEN}).targets
    with pytest.raises(psycopg.OperationalError) as e:
        psycopg.connect(target.url({}).reveal(), connect_timeout=2)
    assert "dead-pass-MARKER" not in str(e.value)
