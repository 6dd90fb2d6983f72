"""The Management API stand-in (localdb/management_api.py) answers as docs/upstream.md says the API does."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from localdb.management_api import ManagementApiStandIn, connection_of

TOKEN = "sbp_standin-token"


@pytest.fixture
def api() -> Iterator[ManagementApiStandIn]:
    with ManagementApiStandIn(token=TOKEN) as stand_in:
        yield stand_in


def get(api: ManagementApiStandIn, path: str, token: str = TOKEN) -> httpx.Response:
    return httpx.get(api.url + path, headers={"Authorization": f"Bearer {token}"})


def test_projects_branches_details_and_keys(api: ManagementApiStandIn) -> None:
    project = api.add_project("app", db_host="db.app.example")
    main = api.add_branch(project.ref, "main", is_default=True)
    dev = api.add_branch(project.ref, "dev", url="postgresql://postgres@/postgres?host=/run/pg&port=5999",
                         status="RUNNING_MIGRATIONS", git_branch="dev")
    listed, = get(api, "/v1/projects").json()
    assert (listed["ref"], listed["status"], listed["database"]["host"]) == (project.ref, "ACTIVE_HEALTHY", "db.app.example")
    branches = get(api, f"/v1/projects/{project.ref}/branches").json()
    assert [(b["name"], b["project_ref"], b["is_default"], b["status"]) for b in branches] == [
        ("main", project.ref, True, "MIGRATIONS_PASSED"), ("dev", dev.ref, False, "RUNNING_MIGRATIONS")]
    assert main.ref == project.ref and len(dev.ref) == 20 and dev.ref.isalpha() and dev.ref.islower()
    detail = get(api, f"/v1/branches/{branches[1]['id']}").json()
    assert (detail["db_host"], detail["db_port"], detail["db_user"], detail["db_pass"]) == (
        "/run/pg", 5999, "postgres", dev.db_pass)
    assert get(api, f"/v1/branches/{dev.ref}").json()["ref"] == dev.ref
    keys = {k["name"]: k["api_key"] for k in get(api, f"/v1/projects/{dev.ref}/api-keys?reveal=true").json()}
    assert keys == {"anon": dev.anon_key, "service_role": dev.service_role_key}
    assert get(api, f"/v1/projects/{project.ref}/api-keys").json()[1]["api_key"] == project.service_role_key


def test_auth_unknown_refs_rate_limit_and_injected_failures() -> None:
    with ManagementApiStandIn(token=TOKEN, rate_limit=5, rate_window=60) as api:
        _check_refusals(api)


def _check_refusals(api: ManagementApiStandIn) -> None:
    assert get(api, "/v1/projects", token="wrong").status_code == 401
    assert get(api, "/v1/projects/nosuchref/branches").status_code == 404
    assert get(api, "/v1/branches/nosuchbranch").status_code == 404
    api.fail_next(1, 503, path="/branches")
    assert get(api, "/v1/projects").status_code == 200
    failed = get(api, "/v1/projects/x/branches")
    assert failed.status_code == 503 and "retry-after" not in failed.headers
    limited = get(api, "/v1/projects")
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) > 0
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert [r.status for r in api.calls()] == [401, 404, 404, 200, 503, 429]


def test_connection_of_a_localdb_url_and_a_tcp_url() -> None:
    assert connection_of("postgresql://postgres@/postgres?host=/a%20b/run&port=5432") == ("/a b/run", 5432, "postgres")
    assert connection_of("postgresql://postgres@127.0.0.1:6000/postgres") == ("127.0.0.1", 6000, "postgres")
