"""Who may create an extension (issue 13): superuser, trusted control file, or Supabase's supautils.

Pure: capabilities built by hand. The same rules run against real servers in
tests/integration/apply/test_hosted_extensions.py.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from reconciler.kinds import extensions
from reconciler.kinds.extensions import LiveExtension, may_create, schema_overrides
from reconciler.plan import plan
from tests.unit.planning import MANIFEST, VALUES, caps, live

PRIVILEGED = "pg_cron, pg_net, supabase_vault, pgcrypto"
SUPAUTILS = {"supautils.privileged_extensions": PRIVILEGED, "supautils.privileged_role": "postgres",
             "supautils.extensions_parameter_overrides": '{"pg_cron":{"schema":"pg_catalog"}}'}


def _ext(name: str, *, untrusted: bool = True) -> LiveExtension:
    return LiveExtension(name, True, "1.0", None, None, False, untrusted)


def _caps(settings: dict[str, str] | None = None, **kw):
    return caps("public.scheduled_jobs", "public.job_executions", settings={"shared_preload_libraries": "pg_cron", "cron.database_name": "postgres",
                          **(settings or {})}, **kw)


@pytest.mark.parametrize(("name", "untrusted", "settings", "kw", "expected"), [
    pytest.param("pg_cron", True, {}, {"is_superuser": True}, True, id="superuser"),
    pytest.param("pg_cron", False, {}, {}, True, id="trusted-control-file"),
    pytest.param("pg_cron", True, SUPAUTILS, {}, True, id="supautils-privileged-role-listed"),
    pytest.param("pg_cron", True, {"supautils.privileged_extensions": PRIVILEGED}, {}, True,
                 id="supautils-without-privileged-role-setting"),
    pytest.param("file_fdw", True, SUPAUTILS, {}, False, id="supautils-not-listed-certain-refusal"),
    pytest.param("pg_cron", True, SUPAUTILS, {"current_user": "app"}, None, id="supautils-other-role-unknown"),
    pytest.param("pg_cron", True, {}, {}, None, id="no-supautils-unknown"),
    pytest.param("uuid-ossp", True, {"supautils.privileged_extensions": 'pgcrypto, "uuid-ossp"'}, {}, True,
                 id="quoted-name-in-list"),
])
def test_may_create(name, untrusted, settings, kw, expected):
    assert may_create(_ext(name, untrusted=untrusted), _caps(settings, **kw)) is expected


@pytest.mark.parametrize(("text", "expected"), [
    ('{"pg_cron":{"schema":"pg_catalog"}}', {"pg_cron": "pg_catalog"}),
    ('{"pg_cron":{"schema":"pg_catalog"},"x":{"version":"1"}}', {"pg_cron": "pg_catalog"}),
    ("not json", {}),
    ("[1, 2]", {}),
    (None, {}),
])
def test_schema_overrides(text, expected):
    settings = {} if text is None else {"supautils.extensions_parameter_overrides": text}
    assert schema_overrides(_caps(settings)) == expected


def _untrusted_live(capabilities):
    """The runbook's start with the three control files untrusted, as on Supabase and plain PostgreSQL."""
    state = live(capabilities=capabilities)
    untrusted = {n: replace(e, needs_superuser=True) for n, e in state.of(extensions.KIND).items()}
    return replace(state, kinds={**state.kinds, extensions.KIND: untrusted})


def _findings(capabilities, manifest=MANIFEST):
    result = plan(manifest, _untrusted_live(capabilities), VALUES)
    return {(f.code, f.severity.value) for f in result.findings}, result


def test_unknown_plans_the_creation_with_a_warning():
    codes, result = _findings(_caps({}))
    assert ("extension_may_need_superuser", "warning") in codes
    assert not result.blocking_findings
    assert [c.key for c in result.changes if c.kind == extensions.KIND] == ["pg_cron", "pg_net", "supabase_vault"]


def test_supautils_privileged_role_plans_without_findings():
    codes, result = _findings(_caps(SUPAUTILS))
    assert codes == set()


def test_supautils_forces_pg_cron_schema_and_says_so():
    manifest = MANIFEST.model_copy(update={"extensions": [
        e.model_copy(update={"schema_name": "extensions"}) if e.name == "pg_cron" else e
        for e in MANIFEST.extensions]})
    codes, result = _findings(_caps(SUPAUTILS), manifest)
    assert ("extension_schema_overridden", "warning") in codes
    create = next(c for c in result.changes if c.key == "pg_cron")
    assert create.after is not None and create.after["schema"] == "pg_catalog"
    statement = extensions.sql_for(create)[-1].query.as_string(None)
    assert statement == 'CREATE EXTENSION IF NOT EXISTS "pg_cron" WITH SCHEMA "pg_catalog"'


def test_certain_refusal_blocks_up_front():
    codes, result = _findings(_caps({**SUPAUTILS, "supautils.privileged_extensions": "pg_net, supabase_vault"}))
    assert ("extension_needs_superuser", "error") in codes
    assert [f.message for f in result.blocking_findings] == [
        "extension pg_cron can only be created by a superuser on this server and postgres is not one (its control "
        "file is not trusted and it is not in supautils.privileged_extensions)"]


def test_refused_create_explains_itself():
    create = next(c for c in plan(MANIFEST, _untrusted_live(_caps({})), VALUES).changes
                  if c.key == "pg_net")
    explained = [extensions.kind.refused(s) for s in extensions.sql_for(create)]
    assert explained[:-1] == [None] * (len(explained) - 1)
    assert explained[-1] == ("the server refused to let this role create extension pg_net; rolled back, nothing changed",
                             "enable pg_net in the Dashboard (Database > Extensions), or run the reconciler as a superuser")
