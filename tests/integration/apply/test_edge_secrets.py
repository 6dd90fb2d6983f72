"""Issue 8: Edge Function secrets through the `reconcile` CLI, against the real database and a contract stub.

The Management API is played by tests/integration/edge_api_stub.py (the three documented endpoints, auth,
scopes, rate limiting, injected failures); the database is the session's real cluster (tests/fix_db.py).
Each test starts from the audited state and a manifest = scheduler.yaml plus an `edge_functions:`
section pointing at the stub. The edge POST/DELETE runs inside the apply's transaction, so a refused
call must leave the database exactly as it was.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import Result

from tests.fix_db import DbTarget
from tests.integration.apply_support import (
    SECRETS_ENV,
    assert_ok,
    dump,
    history_rows,
    jobs,
    one_line_error,
    query,
    reconcile,
    secret_digests,
    write_manifest,
)
from tests.integration.edge_api_stub import RESERVED, EdgeApiStub, sha256_hex

TOKEN = f"sbp_edge-token-marker-{uuid.uuid4().hex}"
READONLY_TOKEN = f"sbp_readonly-token-marker-{uuid.uuid4().hex}"
REF = "edgetestref000001"
#: A value for an Edge Function secret with its own source (from_env / from_file).
OWN_ENV = {"RESEND_API_KEY": f"edge-own-marker-{uuid.uuid4().hex}"}
FILE_VALUE = f"edge-file-marker-{uuid.uuid4().hex}"
MIRROR = {"CRON_SECRET": {"secret": "cron_secret"}}


@pytest.fixture
def stub() -> Iterator[EdgeApiStub]:
    with EdgeApiStub(TOKEN, REF, readonly_token=READONLY_TOKEN) as s:
        yield s


def manifest(tmp_path: Path, stub: EdgeApiStub, secrets: Mapping[str, Any] | None = None, *,
             name: str = "scheduler.yaml", generate_cron: bool = False, **edge: Any) -> Path:
    """scheduler.yaml plus `edge_functions:` pointing at the stub (secrets default: CRON_SECRET mirrored)."""
    def edit(data: dict[str, Any]) -> None:
        section = {"project_ref": stub.ref, "api_url": stub.url, "secrets": dict(secrets or MIRROR)}
        section.update(edge)
        data["edge_functions"] = {k: v for k, v in section.items() if v is not None}
        if generate_cron:
            data["secrets"]["cron_secret"] = {"generate": {"bytes": 32},
                                              "description": data["secrets"]["cron_secret"]["description"]}

    return write_manifest(tmp_path, edit, name=name)


def run(db: DbTarget, path: Path, *args: str, token: str | None = TOKEN, env: Mapping[str, str | None] = ()) -> Result:
    """The CLI with the secret markers, the stub's token (None: unset) and no SUPABASE_PROJECT_REF."""
    extra: dict[str, Any] = {"SUPABASE_ACCESS_TOKEN": token, "SUPABASE_PROJECT_REF": None, **OWN_ENV, **dict(env)}
    return reconcile(db.url, *args, manifest=path, env=extra)


def plan_json(db: DbTarget, path: Path, *args: str, **kwargs: Any) -> dict[str, Any]:
    result = run(db, path, "--format", "json", *args, **kwargs)
    assert_ok(result)
    return json.loads(result.stdout)


def edge_changes(doc: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in doc["changes"] if c["kind"] == "edge_secret"}


def vault_digest(db: DbTarget, name: str = "cron_secret") -> str:
    return secret_digests(db.superuser_url)[name]


def assert_one_line_error(result: Result, *words: str) -> None:
    line = one_line_error(result, 1, *words)
    assert line.startswith("error: ") and TOKEN not in line and READONLY_TOKEN not in line, line


def writes(stub: EdgeApiStub) -> list[tuple[str, Any]]:
    """(method, body) of every successful POST and DELETE the stub received."""
    return [(r.method, r.json()) for r in stub.requests if r.method in ("POST", "DELETE") and r.status < 300]


# -- create, no-op, drift ----------------------------------------------------------------------------


def test_create_then_noop_then_drift(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    # RESEND_KEY already holds the right value: only CRON_SECRET is missing and only it is sent.
    stub.values["RESEND_KEY"] = OWN_ENV["RESEND_API_KEY"]
    path = manifest(tmp_path, stub, {**MIRROR, "RESEND_KEY": {"from_env": "RESEND_API_KEY"}})

    dry = run(audited_db, path)
    assert_ok(dry)
    assert "+ edge_secret CRON_SECRET: create (missing)" in dry.stdout
    assert "value: (sensitive)" in dry.stdout
    assert "= edge_secret RESEND_KEY: adopt" in dry.stdout
    assert not writes(stub), "a dry run wrote to the Management API"

    applied = run(audited_db, path, "--apply")
    assert_ok(applied)
    assert "+ edge_secret CRON_SECRET: create (missing)" in applied.stdout
    assert writes(stub) == [("POST", [{"name": "CRON_SECRET", "value": SECRETS_ENV["CRON_SECRET"]}])]
    # The runbook's step 5, done: the Edge Function's CRON_SECRET is the vault's cron_secret.
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db) == sha256_hex(SECRETS_ENV["CRON_SECRET"])
    assert query(audited_db.superuser_url, "SELECT key FROM reconciler.managed WHERE kind = 'edge_secret'"
                                           " ORDER BY key") == [("CRON_SECRET",), ("RESEND_KEY",)]

    stub.clear()
    again = run(audited_db, path, "--detailed-exitcode")
    assert again.exit_code == 0, again.stdout + again.stderr
    assert "No changes." in again.stdout
    assert_ok(run(audited_db, path, "--apply"))
    assert [r.method for r in stub.requests] == ["GET", "GET"], "a converged run must only read"

    # Someone changes CRON_SECRET in the dashboard: the next plan puts it back to the vault's value.
    stub.values["CRON_SECRET"] = "changed-in-the-dashboard"
    drift = run(audited_db, path)
    assert_ok(drift)
    assert "~ edge_secret CRON_SECRET: update (differs from vault secret cron_secret)" in drift.stdout
    assert "value: (sensitive) changed" in drift.stdout
    assert "RESEND_KEY" not in drift.stdout
    doc = plan_json(audited_db, path)
    assert edge_changes(doc)["CRON_SECRET"]["fields"] == [{"path": "value", "old": None, "new": None,
                                                           "sensitive": True, "origin": "unknown"}]
    stub.clear()
    assert_ok(run(audited_db, path, "--apply"))
    assert writes(stub) == [("POST", [{"name": "CRON_SECRET", "value": SECRETS_ENV["CRON_SECRET"]}])]
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db)
    assert run(audited_db, path, "--detailed-exitcode").exit_code == 0


def test_vault_and_edge_change_together_when_the_source_changes(audited_db: DbTarget, stub: EdgeApiStub,
                                                                 tmp_path: Path) -> None:
    path = manifest(tmp_path, stub)
    assert_ok(run(audited_db, path, "--apply"))
    new_value = "apply-marker-cron-secret-rotated-by-hand-0b7"
    stub.clear()
    changed = run(audited_db, path, "--apply", env={"CRON_SECRET": new_value})
    assert_ok(changed)
    assert "~ secret cron_secret: update" in changed.stdout
    assert "~ edge_secret CRON_SECRET: update" in changed.stdout
    assert writes(stub) == [("POST", [{"name": "CRON_SECRET", "value": new_value}])]
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db) == sha256_hex(new_value)


# -- own sources ---------------------------------------------------------------------------------------


def test_secrets_with_their_own_source(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    value_file = tmp_path / "webhook.txt"
    value_file.write_text(FILE_VALUE + "\n")
    path = manifest(tmp_path, stub, {**MIRROR, "RESEND_KEY": {"from_env": "RESEND_API_KEY"},
                                     "WEBHOOK_SECRET": {"from_file": str(value_file)}})
    applied = run(audited_db, path, "--apply")
    assert_ok(applied)
    (post,) = writes(stub)
    assert post[0] == "POST"
    assert sorted(post[1], key=lambda i: i["name"]) == [
        {"name": "CRON_SECRET", "value": SECRETS_ENV["CRON_SECRET"]},
        {"name": "RESEND_KEY", "value": OWN_ENV["RESEND_API_KEY"]},
        {"name": "WEBHOOK_SECRET", "value": FILE_VALUE},  # one trailing newline stripped
    ]
    # Own sources are not Vault secrets: nothing new in the vault.
    assert set(secret_digests(audited_db.superuser_url)) == {"cron_secret", "project_url", "service_role_key"}
    assert run(audited_db, path, "--detailed-exitcode").exit_code == 0

    stub.clear()
    rotated = run(audited_db, path, "--apply", env={"RESEND_API_KEY": OWN_ENV["RESEND_API_KEY"] + "-v2"})
    assert_ok(rotated)
    assert "~ edge_secret RESEND_KEY: update (value differs from its source)" in rotated.stdout
    assert writes(stub) == [("POST", [{"name": "RESEND_KEY", "value": OWN_ENV["RESEND_API_KEY"] + "-v2"}])]


def test_missing_own_source_is_a_one_line_error(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    path = manifest(tmp_path, stub, {**MIRROR, "RESEND_KEY": {"from_env": "RESEND_API_KEY"}})
    result = run(audited_db, path, "--apply", env={"RESEND_API_KEY": None})
    assert_one_line_error(result, "edge_functions.RESEND_KEY", "RESEND_API_KEY")
    assert not stub.requests


def test_reserved_names_are_refused_in_the_manifest(audited_db: DbTarget, stub: EdgeApiStub,
                                                    tmp_path: Path) -> None:
    path = manifest(tmp_path, stub, {**MIRROR, "SUPABASE_URL": {"secret": "project_url"}})
    result = run(audited_db, path)
    assert result.exit_code == 1
    assert "SUPABASE_URL" in result.stderr and "reserved" in result.stderr
    assert "Traceback" not in result.stderr
    assert not stub.requests


# -- prune -------------------------------------------------------------------------------------------


def test_prune_deletes_only_managed_names(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    stub.values["HAND_MADE"] = "set-in-the-dashboard"
    both = manifest(tmp_path, stub, {**MIRROR, "RESEND_KEY": {"from_env": "RESEND_API_KEY"}})
    assert_ok(run(audited_db, both, "--apply"))
    assert set(stub.values) == {"CRON_SECRET", "RESEND_KEY", "HAND_MADE"}

    only_cron = manifest(tmp_path, stub, name="smaller.yaml")
    listed = run(audited_db, only_cron, "--verbose")
    assert_ok(listed)
    assert "? edge_secret HAND_MADE: unmanaged" in listed.stdout
    assert "  edge_secret RESEND_KEY: kept (removed from smaller.yaml; pruning is off)" in listed.stdout
    for reserved in RESERVED:
        assert reserved not in listed.stdout
    stub.clear()
    assert_ok(run(audited_db, only_cron, "--apply"))
    assert not writes(stub), "without --prune nothing undeclared is deleted"

    pruned = run(audited_db, only_cron, "--apply", "--prune")
    assert_ok(pruned)
    assert "- edge_secret RESEND_KEY: delete (not declared)" in pruned.stdout
    assert "HAND_MADE" in pruned.stdout and "- edge_secret HAND_MADE" not in pruned.stdout
    assert writes(stub) == [("DELETE", ["RESEND_KEY"])]
    assert set(stub.values) == {"CRON_SECRET", "HAND_MADE"}
    assert query(audited_db.superuser_url, "SELECT key FROM reconciler.managed WHERE kind = 'edge_secret' AND NOT removed") \
        == [("CRON_SECRET",)]
    for reserved in RESERVED:
        assert reserved not in pruned.stdout
    assert run(audited_db, only_cron, "--detailed-exitcode", "--prune").exit_code == 0


def test_prune_policy_report_keeps_the_secret(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    both = manifest(tmp_path, stub, {**MIRROR, "RESEND_KEY": {"from_env": "RESEND_API_KEY"}})
    assert_ok(run(audited_db, both, "--apply"))

    def edit(data: dict[str, Any]) -> None:
        data["edge_functions"] = {"project_ref": stub.ref, "api_url": stub.url, "secrets": dict(MIRROR)}
        data["prune"]["edge_secrets"] = "report"

    reporting = write_manifest(tmp_path, edit, name="report.yaml")
    stub.clear()
    assert_ok(run(audited_db, reporting, "--apply", "--prune"))
    assert not writes(stub)
    assert "RESEND_KEY" in stub.values


# -- retries -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503], ids=["429", "503"])
def test_transient_failures_are_retried(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path,
                                        status: int) -> None:
    path = manifest(tmp_path, stub)
    stub.fail_next(2, status, method="POST", retry_after=0)
    applied = run(audited_db, path, "--apply")
    assert_ok(applied)
    posts = [r.status for r in stub.requests if r.method == "POST"]
    assert posts == [status, status, 201]
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db)
    assert run(audited_db, path, "--detailed-exitcode").exit_code == 0


def test_rate_limit_is_waited_out(audited_db: DbTarget, tmp_path: Path) -> None:
    # One request per 1 s window: the POST and the verifying GET right after it cannot share a window.
    with EdgeApiStub(TOKEN, REF, rate_limit=1, rate_window=1.0) as stub:
        path = manifest(tmp_path, stub)
        applied = run(audited_db, path, "--apply")
        assert_ok(applied)
        statuses = [r.status for r in stub.requests]
        assert 429 in statuses and statuses[-1] == 200
        limited = next(r for r in stub.requests if r.status == 429)
        assert limited.method in ("GET", "POST")
        assert all(r.status in (200, 201, 429) for r in stub.requests)
        assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db)


def test_rate_limit_headers_are_on_every_answer(stub: EdgeApiStub) -> None:
    import httpx

    ok = httpx.get(stub.url + stub.path, headers={"Authorization": f"Bearer {TOKEN}"})
    refused = httpx.get(stub.url + stub.path)
    for response in (ok, refused):
        assert {"x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset"} <= set(response.headers)
    assert (ok.status_code, refused.status_code) == (200, 401)
    assert {i["name"] for i in ok.json()} >= set(RESERVED)
    assert all(len(i["value"]) == 64 for i in ok.json())
    bad = httpx.post(stub.url + stub.path, json=[{"name": "SUPABASE_URL", "value": "x"}],
                     headers={"Authorization": f"Bearer {TOKEN}"})
    assert bad.status_code == 400 and "SUPABASE_URL" not in stub.values


# -- refusals roll everything back ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("case", "words"),
    [
        pytest.param("wrong_token", ("rejected the access token (401)",), id="401"),
        pytest.param("readonly_token", (f"may not manage secrets of project {REF} (403)", "secrets:write"), id="403"),
        pytest.param("unknown_ref", ("unknown project ref otherproject0001 (404)",), id="404"),
        pytest.param("post_keeps_failing", ("POST secrets failed with 503 after 5 attempts",), id="503-exhausted"),
    ],
)
def test_refused_calls_exit_1_and_leave_the_database_unchanged(audited_db: DbTarget, stub: EdgeApiStub,
                                                               tmp_path: Path, case: str,
                                                               words: tuple[str, ...]) -> None:
    path = manifest(tmp_path, stub, project_ref="otherproject0001" if case == "unknown_ref" else REF)
    token = {"wrong_token": "sbp_wrong-token", "readonly_token": READONLY_TOKEN}.get(case, TOKEN)
    if case == "post_keeps_failing":
        stub.fail_next(5, 503, method="POST")
    before = dump(audited_db.superuser_url)
    result = run(audited_db, path, "--apply", token=token)
    assert_one_line_error(result, *words)
    assert dump(audited_db.superuser_url) == before, "the failed apply was not rolled back"
    assert jobs(audited_db.superuser_url) == {}
    assert not stub.values
    if case in ("readonly_token", "post_keeps_failing"):
        # The refusal came from the POST, i.e. after the SQL ran inside the transaction.
        assert any(r.method == "POST" for r in stub.requests)


def test_refused_post_after_a_first_apply_keeps_vault_and_jobs(audited_db: DbTarget, stub: EdgeApiStub,
                                                               tmp_path: Path) -> None:
    path = manifest(tmp_path, stub)
    assert_ok(run(audited_db, path, "--apply"))
    before = dump(audited_db.superuser_url)
    new_value = "apply-marker-cron-secret-never-written-31d"

    def edit(data: dict[str, Any]) -> None:
        data["edge_functions"] = {"project_ref": stub.ref, "api_url": stub.url, "secrets": dict(MIRROR)}
        data["jobs"][0]["description"] = "changed in git"

    changed = write_manifest(tmp_path, edit, name="changed.yaml")
    result = run(audited_db, changed, "--apply", token=READONLY_TOKEN, env={"CRON_SECRET": new_value})
    assert_one_line_error(result, "(403)")
    assert dump(audited_db.superuser_url) == before
    assert vault_digest(audited_db) == sha256_hex(SECRETS_ENV["CRON_SECRET"]) == stub.digests()["CRON_SECRET"]


# -- the plane is optional -------------------------------------------------------------------------


@pytest.mark.parametrize("missing", ["token", "project_ref"])
def test_without_token_or_ref_the_plane_is_skipped(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path,
                                                   missing: str) -> None:
    path = manifest(tmp_path, stub, project_ref=None) if missing == "project_ref" else manifest(tmp_path, stub)
    token = None if missing == "token" else TOKEN
    doc = plan_json(audited_db, path, token=token)
    (finding,) = [f for f in doc["findings"] if f["code"] == "edge_functions_skipped"]
    assert finding["severity"] == "warning"
    assert ("SUPABASE_ACCESS_TOKEN" if missing == "token" else "SUPABASE_PROJECT_REF") in finding["message"]
    assert not edge_changes(doc)
    text = run(audited_db, path, token=token)
    assert "Edge Function secrets were not checked" in text.stdout
    applied = run(audited_db, path, "--apply", token=token)
    assert_ok(applied)
    assert "Apply complete" in applied.stdout
    assert vault_digest(audited_db) == sha256_hex(SECRETS_ENV["CRON_SECRET"])
    assert len(jobs(audited_db.superuser_url)) == 13
    assert run(audited_db, path, "--detailed-exitcode", token=token).exit_code == 0
    assert not stub.requests


def test_project_ref_from_the_environment(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    path = manifest(tmp_path, stub, project_ref=None)
    assert_ok(run(audited_db, path, "--apply", env={"SUPABASE_PROJECT_REF": REF}))
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db)
    assert {r.path for r in stub.requests} == {f"/v1/projects/{REF}/secrets"}


# -- coordinated rotation ----------------------------------------------------------------------------


def test_rotation_changes_vault_and_edge_together(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    path = manifest(tmp_path, stub, generate_cron=True)
    first = run(audited_db, path, "--apply")
    assert_ok(first)
    assert "+ secret cron_secret: create" in first.stdout and "+ edge_secret CRON_SECRET: create" in first.stdout
    original = vault_digest(audited_db)
    assert stub.digests()["CRON_SECRET"] == original
    assert run(audited_db, path, "--detailed-exitcode").exit_code == 0  # a new random value is not drift

    stub.clear()
    rotated = run(audited_db, path, "--apply", "--rotate", "cron_secret")
    assert_ok(rotated)
    assert "~ secret cron_secret: update (rotated)" in rotated.stdout
    assert "~ edge_secret CRON_SECRET: update (rotated)" in rotated.stdout
    assert "Apply complete" in rotated.stdout
    new = vault_digest(audited_db)
    assert new != original
    assert stub.digests()["CRON_SECRET"] == new
    (post,) = writes(stub)
    assert [i["name"] for i in post[1]] == ["CRON_SECRET"]
    assert sha256_hex(post[1][0]["value"]) == new
    history = history_rows(audited_db.superuser_url)
    assert history[-1][1] == "--apply --rotate cron_secret"

    after = run(audited_db, path, "--detailed-exitcode")
    assert after.exit_code == 0, after.stdout
    assert "No changes." in after.stdout


def test_rotate_refuses_secrets_with_a_source(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    path = manifest(tmp_path, stub)
    for name in ("cron_secret", "CRON_SECRET"):
        result = run(audited_db, path, "--apply", "--rotate", name)
        assert result.exit_code == 1
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not stub.requests


# -- no leaks ------------------------------------------------------------------------------------------


def test_no_token_or_value_leaks(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path,
                                 captured: list[Mapping[str, Any]]) -> None:
    value_file = tmp_path / "webhook.txt"
    value_file.write_text(FILE_VALUE)
    secrets = {**MIRROR, "RESEND_KEY": {"from_env": "RESEND_API_KEY"}, "WEBHOOK_SECRET": {"from_file": str(value_file)}}
    path = manifest(tmp_path, stub, secrets)
    generated = manifest(tmp_path, stub, secrets, name="generated.yaml", generate_cron=True)
    saved = tmp_path / "plan.json"
    results: list[Result] = []
    for fmt in ("text", "json", "markdown"):
        results.append(run(audited_db, path, "--format", fmt, "--verbose"))
    results.append(run(audited_db, path, "--dry-run", "--out", str(saved)))
    results.append(run(audited_db, path, "--apply", str(saved)))
    stub.values["CRON_SECRET"] = "drifted"
    for fmt in ("text", "json", "markdown"):
        results.append(run(audited_db, path, "--format", fmt))
    results.append(run(audited_db, path, "--apply", "--format", "json"))
    results.append(run(audited_db, path, "--apply", token="sbp_wrong-token"))
    results.append(run(audited_db, path, "--apply", token=READONLY_TOKEN, env={"RESEND_API_KEY": "x-new-value"}))
    results.append(run(audited_db, manifest(tmp_path, stub, project_ref="otherproject0001", name="other.yaml"),
                       "--apply"))
    results.append(run(audited_db, path, "--apply", "--prune", token=None))
    results.append(run(audited_db, generated, "--apply", "--rotate", "cron_secret"))
    results.append(run(audited_db, generated, "--apply", "--rotate", "cron_secret", "--format", "markdown"))
    assert [r.exit_code for r in results] == [0] * 9 + [1, 1, 1, 0, 0, 0], [r.stderr for r in results]

    values = [TOKEN, READONLY_TOKEN, *SECRETS_ENV.values(), *OWN_ENV.values(), FILE_VALUE, "x-new-value"]
    values += [item["value"] for r in stub.requests if r.method == "POST" for item in r.json()]  # generated ones
    history = json.dumps([list(map(str, row)) for row in history_rows(audited_db.superuser_url)])
    full_history = "\n".join(str(r[0]) for r in query(audited_db.superuser_url,
                                                      "SELECT row_to_json(h)::text FROM reconciler.history h"))
    for value in values:
        for result in results:
            assert value not in result.stdout and value not in result.stderr, value
            assert "Traceback" not in result.stderr
        assert value not in saved.read_text()
        assert value not in repr(captured), f"leaked in a log event: {value}"
        assert value not in history and value not in full_history
        for request in stub.requests:
            assert value not in request.path
            assert value not in repr({k: v for k, v in request.headers.items() if k != "authorization"})
    # The token travels in the Authorization header and nowhere else (not even in request bodies).
    for request in stub.requests:
        assert TOKEN not in request.body and READONLY_TOKEN not in request.body
        assert request.headers["authorization"] in (f"Bearer {TOKEN}", f"Bearer {READONLY_TOKEN}",
                                                    "Bearer sbp_wrong-token")
    assert any(r.headers["authorization"] == f"Bearer {TOKEN}" for r in stub.requests)


def test_prune_removes_the_last_managed_name(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    """`secrets: {}` still names the project: the last managed Edge Function secret can be pruned too."""
    assert_ok(run(audited_db, manifest(tmp_path, stub), "--apply"))
    stub.values["HAND_MADE"] = "set-in-the-dashboard"

    def edit(data: dict[str, Any]) -> None:
        data["edge_functions"] = {"project_ref": stub.ref, "api_url": stub.url, "secrets": {}}

    emptied = write_manifest(tmp_path, edit, name="emptied.yaml")
    stub.clear()
    pruned = run(audited_db, emptied, "--apply", "--prune")
    assert_ok(pruned)
    assert "- edge_secret CRON_SECRET: delete (not declared)" in pruned.stdout
    assert writes(stub) == [("DELETE", ["CRON_SECRET"])]
    assert set(stub.values) == {"HAND_MADE"}


def test_down_with_edge_functions_declared(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    """`reconcile down` empties the manifest's Vault secrets; a mirrored Edge secret must not crash it."""
    path = manifest(tmp_path, stub)
    assert_ok(run(audited_db, path, "--apply"))
    stub.clear()
    env = {"SUPABASE_ACCESS_TOKEN": TOKEN, **OWN_ENV}
    for args in ((), ("--apply",)):
        result = reconcile(audited_db.url, "down", "-f", str(path), *args, manifest=None, env=env)
        assert_ok(result)
        assert "trigger master-scheduler: delete" in result.stdout
        assert "edge_secret" not in result.stdout
    assert not writes(stub), "down never touches Edge Function secrets"
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db)
    removed = reconcile(audited_db.url, "down", "-f", str(path), "--apply", "--include-secrets", manifest=None, env=env)
    assert_ok(removed)
    assert "- edge_secret CRON_SECRET: delete" in removed.stdout and "- secret cron_secret: delete" in removed.stdout
    assert "CRON_SECRET" not in stub.values, "--include-secrets deletes the managed Edge Function secret too"
    assert {n for n in stub.digests() if not n.startswith("SUPABASE_")} == set(), stub.digests()


def test_drift_of_a_generated_secret_copies_the_vault_value(audited_db: DbTarget, stub: EdgeApiStub,
                                                             tmp_path: Path) -> None:
    """No source to compare with: the Edge copy is put back to what the vault holds (read in the apply)."""
    path = manifest(tmp_path, stub, generate_cron=True)
    assert_ok(run(audited_db, path, "--apply"))
    held = vault_digest(audited_db)
    stub.values["CRON_SECRET"] = "changed-in-the-dashboard"
    fixed = run(audited_db, path, "--apply")
    assert_ok(fixed)
    assert "~ edge_secret CRON_SECRET: update (differs from vault secret cron_secret)" in fixed.stdout
    assert "~ secret cron_secret" not in fixed.stdout
    assert vault_digest(audited_db) == held == stub.digests()["CRON_SECRET"]


def test_saved_plan_is_stale_when_the_edge_secrets_changed(audited_db: DbTarget, stub: EdgeApiStub,
                                                            tmp_path: Path) -> None:
    path = manifest(tmp_path, stub)
    assert_ok(run(audited_db, path, "--apply"))
    stub.values["CRON_SECRET"] = "changed-in-the-dashboard"
    saved = tmp_path / "plan.json"
    assert_ok(run(audited_db, path, "--dry-run", "--out", str(saved)))
    stub.values["CRON_SECRET"] = "changed-again"
    stub.clear()
    result = run(audited_db, path, "--apply", str(saved))
    assert_one_line_error(result, "saved plan is stale")
    assert not writes(stub)
    stub.values["CRON_SECRET"] = "changed-in-the-dashboard"
    assert_ok(run(audited_db, path, "--apply", str(saved)))
    assert stub.digests()["CRON_SECRET"] == vault_digest(audited_db)


# -- export ------------------------------------------------------------------------------------------


def test_export_reads_the_edge_plane_only_with_a_token(audited_db: DbTarget, stub: EdgeApiStub, tmp_path: Path) -> None:
    """The kind says what export's reading manifest declares for it: `edge_functions:` when a token is set."""
    assert_ok(run(audited_db, manifest(tmp_path, stub), "--apply"))
    env = {"SUPABASE_ACCESS_TOKEN": TOKEN, "SUPABASE_API_URL": stub.url, "SUPABASE_PROJECT_REF": REF}
    out = tmp_path / "exported.yaml"
    exported = reconcile(audited_db.url, "export", "-o", str(out), manifest=None, env=env)
    assert_ok(exported)
    data = yaml.safe_load(out.read_text())
    assert data["edge_functions"]["secrets"]["CRON_SECRET"] == {"secret": "cron_secret"}
    assert TOKEN not in out.read_text() + exported.stdout + exported.stderr
    assert any(r.method == "GET" for r in stub.requests)

    stub.clear()
    without = tmp_path / "without.yaml"
    assert_ok(reconcile(audited_db.url, "export", "-o", str(without), manifest=None,
                        env={"SUPABASE_ACCESS_TOKEN": None, "SUPABASE_API_URL": stub.url}))  # type: ignore[dict-item]
    assert "edge_functions" not in yaml.safe_load(without.read_text())
    assert stub.requests == []
