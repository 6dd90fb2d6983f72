"""Generators against the Management API stand-in: targets from branches and projects, every failure one line."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from localdb.management_api import ManagementApiStandIn
from reconciler.fleet.generators import database_url, target_name, unique_names
from reconciler.fleet.target import Target
from reconciler.fleet.targets_file import TargetList, read_targets
from reconciler.fleet.targets_models import TARGET_NAME_REGEX

TOKEN = "sbp_token-MARKER-0123456789"
ENV = {"SUPABASE_ACCESS_TOKEN": TOKEN}


@pytest.fixture
def api() -> Iterator[ManagementApiStandIn]:
    with ManagementApiStandIn(token=TOKEN) as stand_in:
        yield stand_in


def branches_file(tmp_path: Path, api: ManagementApiStandIn, ref: str, extra: str = "", declared: str = "") -> str:
    path = tmp_path / "targets.yaml"
    path.write_text(f"""\
version: 1
{declared}generators:
  - supabase_branches:
      project_ref: {ref}
      api_url: {api.url}
      sslmode: prefer
      secrets: {{project_url: url, service_role_key: service_role_key}}
      files: [branch.yaml]
      labels: {{env: preview}}
{extra}""")
    return str(path)


def secret_strings(api: ManagementApiStandIn) -> list[str]:
    out = [TOKEN]
    for b in api.branches.values():
        out += [b.db_pass, b.service_role_key, b.anon_key]
    for p in api.projects.values():
        out += [p.service_role_key, p.anon_key]
    return out


def assert_no_secret(api: ManagementApiStandIn, *texts: object) -> None:
    shown = "\n".join(str(t) + repr(t) for t in texts)
    for marker in secret_strings(api):
        assert marker not in shown


def by_name(result: TargetList) -> dict[str, Target]:
    return {t.name: t for t in result.targets}


def test_branches_become_targets_with_fetched_url_and_keys(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("main-app")
    main = api.add_branch(project.ref, "main", is_default=True, db_host="db.example", db_port=6543)
    feature = api.add_branch(project.ref, "Feature/Login Ünïcode!", db_host="/tmp/sock dir", db_port=5999,
                             db_pass="p@ss:w/rd%MARKER")
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, ENV)
    assert result.errors == () and result.notes == ()
    targets = by_name(result)
    assert sorted(targets) == ["feature-login-unicode", "main"]
    login = targets["feature-login-unicode"]
    assert login.url({}).reveal() == ("postgresql://postgres:p%40ss%3Aw%2Frd%25MARKER@/postgres"
                                      "?host=/tmp/sock%20dir&port=5999&sslmode=prefer")
    assert targets["main"].url({}).reveal() == (f"postgresql://postgres:{main.db_pass}@db.example:6543/postgres"
                                                "?sslmode=prefer")
    assert login.secrets["project_url"].value is not None
    assert login.secrets["project_url"].value.reveal() == f"https://{feature.ref}.supabase.co"
    assert login.secrets["service_role_key"].value.reveal() == feature.service_role_key  # type: ignore[union-attr]
    assert targets["main"].secrets["service_role_key"].value.reveal() == project.service_role_key  # type: ignore[union-attr]
    assert login.environ == {"SUPABASE_PROJECT_REF": feature.ref}
    assert login.files == (str(tmp_path / "branch.yaml"),)
    assert login.labels == {"env": "preview"}
    assert login.origin == f"generator supabase_branches ({path}:3)"
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in api.requests)
    assert_no_secret(api, result, *result.targets)


def test_branches_whose_migrations_have_not_passed_are_notes(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    for status in ("CREATING_PROJECT", "RUNNING_MIGRATIONS", "MIGRATIONS_PASSED", "MIGRATIONS_FAILED",
                   "FUNCTIONS_DEPLOYED", "FUNCTIONS_FAILED"):
        api.add_branch(project.ref, status.lower(), status=status)
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, ENV)
    assert result.names() == ("migrations_passed", "functions_deployed", "functions_failed")
    origin = f"generator supabase_branches ({path}:3)"
    assert result.notes == tuple(
        f'{origin}: branch "{s.lower()}" skipped: status "{s}" (its migrations have not passed yet)'
        for s in ("CREATING_PROJECT", "RUNNING_MIGRATIONS", "MIGRATIONS_FAILED"))
    assert result.errors == ()
    assert len(api.calls("/v1/branches/")) == 3  # no detail fetched for a skipped branch


def test_include_default_false_leaves_the_default_branch_out(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    api.add_branch(project.ref, "main", is_default=True)
    api.add_branch(project.ref, "dev")
    path = branches_file(tmp_path, api, project.ref, extra="      include_default: false\n      name_prefix: pr-\n")
    assert read_targets(path, ENV).names() == ("pr-dev",)


def test_a_wrong_token_is_one_error_line_and_declared_targets_stay(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    api.add_branch(project.ref, "dev")
    declared = "targets:\n  - {name: production, database_url: {from_env: PROD_URL}}\n"
    path = branches_file(tmp_path, api, project.ref, declared=declared)
    result = read_targets(path, {"SUPABASE_ACCESS_TOKEN": "wrong-token-MARKER"})
    assert result.names() == ("production",)
    assert result.errors == (f"generator supabase_branches ({path}:5): the Management API rejected the access "
                             "token (401) (check the variable named by access_token_env)",)
    assert "wrong-token-MARKER" not in str(result)


def test_a_missing_token_variable_is_one_error_line(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, {})
    assert result.errors == (f"generator supabase_branches ({path}:3): environment variable SUPABASE_ACCESS_TOKEN "
                             "is not set (the Management API access token)",)
    assert api.requests == []


def test_an_unknown_project_is_one_error_line(api: ManagementApiStandIn, tmp_path: Path) -> None:
    path = branches_file(tmp_path, api, "nosuchprojectref0000")
    result = read_targets(path, ENV)
    assert result.errors == (f"generator supabase_branches ({path}:3): unknown project ref nosuchprojectref0000, "
                             "or branching is not enabled on it (404)",)


def test_429_then_success(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    api.add_branch(project.ref, "dev")
    api.fail_next(2, 429, retry_after=0)
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, ENV)
    assert (result.names(), result.errors) == (("dev",), ())
    assert [r.status for r in api.requests[:3]] == [429, 429, 200]


def test_the_rate_limit_window_is_waited_out(tmp_path: Path) -> None:
    with ManagementApiStandIn(token=TOKEN, rate_limit=2, rate_window=1.0) as api:
        project = api.add_project("app")
        api.add_branch(project.ref, "a")
        api.add_branch(project.ref, "b")
        result = read_targets(branches_file(tmp_path, api, project.ref), ENV)
        assert (sorted(result.names()), result.errors) == (["a", "b"], ())
        assert 429 in [r.status for r in api.requests]


def test_5xx_is_retried_then_one_error_line(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    api.add_branch(project.ref, "dev")
    api.fail_next(1, 503, retry_after=0)
    path = branches_file(tmp_path, api, project.ref)
    assert read_targets(path, ENV).names() == ("dev",)
    api.clear()
    api.fail_next(4, 502, retry_after=0)
    result = read_targets(path, ENV)
    assert result.targets == ()
    assert result.errors == (f"generator supabase_branches ({path}:3): Management API GET branches of project "
                             f"{project.ref} failed with 502 after 4 attempts",)


def test_one_branch_failing_leaves_the_others(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    api.add_branch(project.ref, "good")
    bad = api.add_branch(project.ref, "no-credentials", hide_credentials=True)
    gone = api.add_branch(project.ref, "gone")
    api.fail_next(1, 404, path=f"/v1/branches/{gone.id}")
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, ENV)
    origin = f"generator supabase_branches ({path}:3)"
    assert result.names() == ("good",)
    assert sorted(result.errors) == sorted([
        f'{origin}: branch "no-credentials": the Management API returned no db_user or db_pass (the token may '
        "not read database credentials)",
        f'{origin}: branch "gone": unknown branch {gone.id} (404)',
    ])
    assert bad.db_pass not in str(result)


def test_generated_names_colliding_with_declared_ones_are_errors(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    first = api.add_branch(project.ref, "Feature-X")
    second = api.add_branch(project.ref, "feature/x")
    api.add_branch(project.ref, "production")
    declared = "targets:\n  - {name: production, database_url: {from_env: PROD_URL}}\n"
    path = branches_file(tmp_path, api, project.ref, declared=declared)
    result = read_targets(path, ENV)
    assert result.names() == ("production", "feature-x", f"feature-x-{second.ref[:8]}")
    assert result.targets[0].origin == f"{path}:3"
    assert result.errors == (f'generator supabase_branches ({path}:5): target name "production" is taken already '
                             f"(by {path}:3): not generated",)
    assert first.ref not in result.targets[2].name


def test_projects_generator_with_pattern_and_password_variables(api: ManagementApiStandIn, tmp_path: Path) -> None:
    a = api.add_project("tenant-a", db_host="db.a.example")
    b = api.add_project("tenant-b")
    api.add_project("tenant-paused", status="INACTIVE")
    api.add_project("internal")
    path = tmp_path / "targets.yaml"
    path.write_text(f"""\
version: 1
generators:
  - supabase_projects:
      api_url: {api.url}
      name_pattern: "^tenant-"
      secrets: {{service_role_key: service_role_key, project_url: url}}
""")
    env = {**ENV, f"SUPABASE_DB_PASSWORD_{a.ref.upper()}": "pw-a-MARKER"}
    result = read_targets(str(path), env)
    origin = f"generator supabase_projects ({path}:3)"
    assert result.names() == ("tenant-a",)
    target = result.targets[0]
    assert target.url({}).reveal() == "postgresql://postgres:pw-a-MARKER@db.a.example:5432/postgres?sslmode=require"
    assert target.secrets["service_role_key"].value.reveal() == a.service_role_key  # type: ignore[union-attr]
    assert result.errors == (f'{origin}: project "tenant-b": environment variable '
                             f"SUPABASE_DB_PASSWORD_{b.ref.upper()} is not set (its database password)",)
    assert result.notes == (f'{origin}: project "tenant-paused" skipped: status "INACTIVE"',)
    assert "pw-a-MARKER" not in str(result) + repr(target)
    assert_no_secret(api, result, target)


def test_keys_are_fetched_only_when_a_secret_needs_one(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    api.add_branch(project.ref, "dev")
    path = tmp_path / "targets.yaml"
    path.write_text(f"version: 1\ngenerators:\n  - supabase_branches: {{project_ref: {project.ref}, "
                    f"api_url: '{api.url}', secrets: {{project_url: url}}}}\n")
    assert read_targets(str(path), ENV).names() == ("dev",)
    assert api.calls("api-keys") == []


def test_httpx_is_not_imported_without_generators(tmp_path: Path) -> None:
    import subprocess
    import sys

    path = tmp_path / "targets.yaml"
    path.write_text("version: 1\ntargets:\n  - {name: a, database_url: {from_env: A}}\n")
    code = ("import sys; from reconciler.fleet.targets_file import read_targets; "
            f"read_targets({str(path)!r}, {{}}); print('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("raw", "expected"), [
    ("feature/login", "feature-login"),
    ("  --Hello World__ ", "hello-world"),
    ("Ünïcode", "unicode"),
    ("a.b_c-d", "a.b_c-d"),
    ("!!!", "abcdefghijklmnopqrst"),
    (None, "abcdefghijklmnopqrst"),
    ("x" * 80, "x" * 63),
])
def test_target_name(raw: object, expected: str) -> None:
    assert target_name(raw, "", "abcdefghijklmnopqrst") == expected


def test_target_name_with_a_prefix_and_collisions_keep_the_first_created() -> None:
    assert target_name("dev", "pr-", "ref") == "pr-dev"
    items = [{"id": "2", "name": "Dev", "project_ref": "bbbbbbbbbbbb", "created_at": "2026-01-02"},
             {"id": "1", "name": "dev", "project_ref": "aaaaaaaaaaaa", "created_at": "2026-01-01"}]
    assert unique_names(items, "") == {"1": "dev", "2": "dev-bbbbbbbb"}


def test_database_url_quotes_user_and_password_and_brackets_ipv6() -> None:
    assert database_url("::1", 5432, "u@x", "p w", "require") == "postgresql://u%40x:p%20w@[::1]:5432/postgres?sslmode=require"


def test_a_token_http_cannot_carry_is_one_line_without_the_token(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, {"SUPABASE_ACCESS_TOKEN": "tok MARKER\n"})
    assert result.errors == (f"generator supabase_branches ({path}:3): environment variable SUPABASE_ACCESS_TOKEN "
                             "does not hold a token (printable ASCII, no spaces) (the Management API access token)",)
    assert "MARKER" not in str(result) and api.requests == []


def test_odd_answers_are_error_lines_not_crashes(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    odd_status = api.add_branch(project.ref, "odd-status")
    odd_status.status = ["MIGRATIONS_PASSED"]  # type: ignore[assignment]
    bad_host = api.add_branch(project.ref, "bad-host", db_host="h?sslmode=disable")
    string_port = api.add_branch(project.ref, "string-port", db_host="db.example")
    string_port.extra = {"db_port": "6543"}
    api.add_branch(project.ref, "path-id").id = "../../v1/projects"
    path = branches_file(tmp_path, api, project.ref)
    result = read_targets(path, ENV)
    origin = f"generator supabase_branches ({path}:3)"
    assert result.names() == ("string-port",)
    assert result.targets[0].url({}).reveal().startswith(f"postgresql://postgres:{string_port.db_pass}@db.example:6543/")
    assert result.notes == (f'{origin}: branch "odd-status" skipped: status (none) (its migrations have not passed yet)',)
    assert result.errors == (f'{origin}: branch "path-id": the Management API returned no id or project_ref',
                             f'{origin}: branch "bad-host": the Management API returned no valid db_host or db_port')
    assert bad_host.db_pass not in str(result)


@given(raw=st.text(max_size=100), prefix=st.sampled_from(["", "pr-", "t.0_"]),
       ref=st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=8, max_size=20))
def test_every_generated_name_is_a_valid_target_name(raw: str, prefix: str, ref: str) -> None:
    name = target_name(raw, prefix, ref)
    assert re.fullmatch(TARGET_NAME_REGEX, name), name
    twins = unique_names([{"id": "1", "name": raw, "project_ref": ref, "created_at": "1"},
                          {"id": "2", "name": raw, "project_ref": ref[::-1], "created_at": "2"}], prefix)
    assert twins["1"] == name and twins["2"] != name
    assert re.fullmatch(TARGET_NAME_REGEX, twins["2"]), twins["2"]
