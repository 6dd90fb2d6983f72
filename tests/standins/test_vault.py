"""supabase_vault stand-in: every docs/upstream.md fact about supabase_vault 0.3.1, checked in the catalog
and by behaviour, as the non-superuser `postgres` of the supabase profile unless a test says otherwise.
"""

from __future__ import annotations

import base64

import psycopg
import pytest
from psycopg import errors

from tests.standins.helpers import connect


@pytest.fixture
def vault(supabase_like):
    """A connection as `postgres` with supabase_vault created by postgres itself."""
    with connect(supabase_like.url) as conn:
        conn.execute("CREATE EXTENSION supabase_vault")
        yield conn


def _function(conn, name: str) -> tuple[str, str, bool]:
    return conn.execute(
        "SELECT pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.prosecdef "
        "FROM pg_proc p WHERE p.pronamespace = 'vault'::regnamespace AND p.proname = %s",
        (name,)).fetchone()


def test_version_and_forced_schema(vault):
    row = vault.execute("SELECT extversion, extnamespace::regnamespace::text FROM pg_extension "
                        "WHERE extname = 'supabase_vault'").fetchone()
    assert row == ("0.3.1", "vault")


def test_with_schema_other_than_vault_is_refused(supabase_like):
    with connect(supabase_like.url) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute("CREATE EXTENSION supabase_vault WITH SCHEMA extensions")
    assert info.value.diag.message_primary == (
        'extension "supabase_vault" must be installed in schema "vault"')


def test_there_is_no_extension_named_vault(supabase_like):
    with connect(supabase_like.url) as conn, pytest.raises(psycopg.Error) as info:
        conn.execute("CREATE EXTENSION vault")
    assert info.value.diag.message_primary == 'extension "vault" is not available'


def test_create_secret_signature(vault):
    assert _function(vault, "create_secret")[:2] == (
        "new_secret text, new_name text DEFAULT NULL::text, new_description text DEFAULT ''::text, "
        "new_key_id uuid DEFAULT NULL::uuid", "uuid")


def test_update_secret_signature(vault):
    assert _function(vault, "update_secret")[:2] == (
        "secret_id uuid, new_secret text DEFAULT NULL::text, new_name text DEFAULT NULL::text, "
        "new_description text DEFAULT NULL::text, new_key_id uuid DEFAULT NULL::uuid", "void")


def test_decrypt_function_signature(vault):
    assert _function(vault, "_crypto_aead_det_decrypt")[:2] == (
        "message bytea, additional bytea, key_id bigint, context bytea DEFAULT '\\x7067736f6469756d'::bytea, "
        "nonce bytea DEFAULT NULL::bytea", "bytea")


def test_secrets_columns(vault):
    rows = vault.execute(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a "
        "LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "WHERE a.attrelid = 'vault.secrets'::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum").fetchall()
    assert [r for r in rows if r[0] != "nonce"] == [
        ("id", "uuid", True, "gen_random_uuid()"),
        ("name", "text", False, None),
        ("description", "text", True, "''::text"),
        ("secret", "text", True, None),
        ("key_id", "uuid", False, None),
        ("created_at", "timestamp with time zone", True, "CURRENT_TIMESTAMP"),
        ("updated_at", "timestamp with time zone", True, "CURRENT_TIMESTAMP"),
    ]
    nonce = next(r for r in rows if r[0] == "nonce")
    assert nonce[1:3] == ("bytea", False)
    assert [r[0] for r in rows].index("nonce") == 5


def test_id_is_the_primary_key(vault):
    assert vault.execute(
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = 'vault.secrets'::regclass AND contype = 'p'").fetchone() == ("PRIMARY KEY (id)",)


def test_unique_index_on_name(vault):
    assert vault.execute(
        "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'vault' "
        "AND indexname <> 'secrets_pkey'").fetchall() == [(
            "secrets_name_idx",
            "CREATE UNIQUE INDEX secrets_name_idx ON vault.secrets USING btree (name) "
            "WHERE (name IS NOT NULL)")]


def test_decrypted_secrets_view_columns(vault):
    rows = vault.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = 'vault' AND table_name = 'decrypted_secrets' "
        "ORDER BY ordinal_position").fetchall()
    assert rows == [("id", "uuid"), ("name", "text"), ("description", "text"), ("secret", "text"),
                    ("decrypted_secret", "text"), ("key_id", "uuid"), ("nonce", "bytea"),
                    ("created_at", "timestamp with time zone"),
                    ("updated_at", "timestamp with time zone")]


def test_create_and_read_back(vault):
    secret_id = vault.execute("SELECT vault.create_secret('s3cret-value', 'api', 'the api key')"
                              ).fetchone()[0]
    row = vault.execute("SELECT id, name, description, decrypted_secret FROM vault.decrypted_secrets"
                        ).fetchone()
    assert row == (secret_id, "api", "the api key", "s3cret-value")


def test_defaults_of_create_secret(vault):
    vault.execute("SELECT vault.create_secret('v')")
    assert vault.execute("SELECT name, description, key_id FROM vault.secrets").fetchone() == (
        None, "", None)


def test_stored_secret_is_base64_ciphertext_not_plaintext(vault):
    plaintext = "correct horse battery staple"
    vault.execute("SELECT vault.create_secret(%s, 'k')", (plaintext,))
    stored, nonce = vault.execute("SELECT secret, nonce FROM vault.secrets").fetchone()
    assert stored != plaintext
    assert plaintext.encode() not in base64.b64decode(stored, validate=True)
    assert nonce is not None


@pytest.mark.parametrize("text", ["abc", "caf\u00e9 \u2603 \U0001f600"], ids=["ascii", "non-ascii"])
def test_digest_comparison_inside_the_database(vault, text):
    """The digest the reconciler reads from the database is the one SecretValue computes in Python."""
    from reconciler.engine.sources import SecretValue

    vault.execute("SELECT vault.create_secret(%s, 'k')", (text,))
    digest = vault.execute(
        "SELECT encode(sha256(convert_to(decrypted_secret, 'UTF8')), 'hex') "
        "FROM vault.decrypted_secrets WHERE name = 'k'").fetchone()[0]
    assert digest == SecretValue(text).digest


def test_duplicate_name_error_text(vault):
    vault.execute("SELECT vault.create_secret('one', 'x')")
    with pytest.raises(errors.UniqueViolation) as info:
        vault.execute("SELECT vault.create_secret('two', 'x')")
    assert info.value.diag.message_primary == (
        'duplicate key value violates unique constraint "secrets_name_idx"')
    assert info.value.diag.message_detail == "Key (name)=(x) already exists."


def test_unnamed_secrets_may_repeat(vault):
    vault.execute("SELECT vault.create_secret('one'), vault.create_secret('two')")
    assert vault.execute("SELECT count(*) FROM vault.secrets").fetchone() == (2,)


def test_update_secret_null_arguments_keep_old_values(vault):
    sid = vault.execute("SELECT vault.create_secret('old', 'n', 'd')").fetchone()[0]
    vault.execute("SELECT vault.update_secret(%s, 'new')", (sid,))
    assert vault.execute("SELECT name, description, decrypted_secret FROM vault.decrypted_secrets"
                         ).fetchone() == ("n", "d", "new")
    vault.execute("SELECT vault.update_secret(%s, new_name => 'n2')", (sid,))
    assert vault.execute("SELECT name, description, decrypted_secret FROM vault.decrypted_secrets"
                         ).fetchone() == ("n2", "d", "new")
    vault.execute("SELECT vault.update_secret(%s, new_description => 'd2')", (sid,))
    assert vault.execute("SELECT name, description, decrypted_secret FROM vault.decrypted_secrets"
                         ).fetchone() == ("n2", "d2", "new")


def test_update_secret_bumps_updated_at(vault):
    sid = vault.execute("SELECT vault.create_secret('v', 'n')").fetchone()[0]
    before = vault.execute("SELECT created_at, updated_at FROM vault.secrets").fetchone()
    vault.execute("SELECT vault.update_secret(%s, 'w')", (sid,))
    created, updated = vault.execute("SELECT created_at, updated_at FROM vault.secrets").fetchone()
    assert created == before[0]
    assert updated > before[1]


def test_update_secret_unknown_id_is_silent(vault):
    vault.execute("SELECT vault.create_secret('v', 'n')")
    before = vault.execute("SELECT * FROM vault.secrets").fetchall()
    vault.execute("SELECT vault.update_secret(gen_random_uuid(), 'w', 'm')")
    assert vault.execute("SELECT * FROM vault.secrets").fetchall() == before


def test_direct_insert_is_plaintext_and_unreadable(pg, vault):
    pg.execute("INSERT INTO vault.secrets (name, secret) VALUES ('raw', 'plain text')")
    assert pg.execute("SELECT secret FROM vault.secrets WHERE name = 'raw'").fetchone() == (
        "plain text",)
    with pytest.raises(psycopg.Error):
        pg.execute("SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'raw'")


def test_nothing_granted_to_public(pg, vault):
    public_grants = pg.execute("""
        SELECT c.relname FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.relnamespace = 'vault'::regnamespace AND a.grantee = 0
        UNION ALL
        SELECT p.proname FROM pg_proc p
        WHERE p.pronamespace = 'vault'::regnamespace
          AND (p.proacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(p.proacl) a WHERE a.grantee = 0))
        UNION ALL
        SELECT n.nspname FROM pg_namespace n
        WHERE n.nspname = 'vault'
          AND EXISTS (SELECT 1 FROM aclexplode(n.nspacl) a WHERE a.grantee = 0)
    """).fetchall()
    assert public_grants == []


@pytest.fixture
def limited_role(pg):
    """A role with USAGE on vault and SELECT on the view, but no EXECUTE on the decrypt function."""
    pg.execute("DROP ROLE IF EXISTS vault_reader")
    pg.execute("CREATE ROLE vault_reader NOLOGIN")
    yield "vault_reader"
    pg.execute("RESET ROLE")
    pg.execute("DROP OWNED BY vault_reader")
    pg.execute("DROP ROLE vault_reader")


def test_reading_without_execute_on_decrypt_is_denied(pg, vault, limited_role):
    vault.execute("SELECT vault.create_secret('v', 'n')")
    pg.execute(f"GRANT USAGE ON SCHEMA vault TO {limited_role}")
    pg.execute(f"GRANT SELECT ON vault.decrypted_secrets TO {limited_role}")
    pg.execute(f"SET ROLE {limited_role}")
    with pytest.raises(errors.InsufficientPrivilege) as info:
        pg.execute("SELECT decrypted_secret FROM vault.decrypted_secrets")
    assert info.value.diag.message_primary == "permission denied for function _crypto_aead_det_decrypt"
    pg.execute("RESET ROLE")
    pg.execute(f"GRANT EXECUTE ON FUNCTION vault._crypto_aead_det_decrypt"
               f"(bytea, bytea, bigint, bytea, bytea) TO {limited_role}")
    pg.execute(f"SET ROLE {limited_role}")
    assert pg.execute("SELECT decrypted_secret FROM vault.decrypted_secrets").fetchone() == ("v",)


def test_postgres_gets_supabase_grants(vault):
    checks = vault.execute("""
        SELECT has_schema_privilege('vault', 'USAGE'),
               has_function_privilege('vault.create_secret(text, text, text, uuid)', 'EXECUTE'),
               has_function_privilege('vault.update_secret(uuid, text, text, text, uuid)', 'EXECUTE'),
               has_function_privilege(
                   'vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea)', 'EXECUTE'),
               has_table_privilege('vault.secrets', 'SELECT'),
               has_table_privilege('vault.decrypted_secrets', 'SELECT'),
               has_table_privilege('vault.secrets', 'DELETE'),
               has_table_privilege('vault.secrets', 'INSERT'),
               has_table_privilege('vault.secrets', 'UPDATE')
    """).fetchone()
    assert checks == (True, True, True, True, True, True, True, False, False)


def test_postgres_cannot_read_the_key(vault):
    with pytest.raises(errors.InsufficientPrivilege):
        vault.execute("SELECT * FROM vault._standin_key")


def test_each_extension_instance_has_its_own_key(pg, vault):
    first = pg.execute("SELECT key FROM vault._standin_key").fetchone()
    pg.execute("DROP EXTENSION supabase_vault")
    pg.execute("CREATE EXTENSION supabase_vault")
    assert pg.execute("SELECT key FROM vault._standin_key").fetchone() != first


def test_works_for_the_superuser_of_a_vanilla_cluster(vanilla_db):
    with connect(vanilla_db.url) as conn:
        conn.execute("CREATE EXTENSION supabase_vault")
        conn.execute("SELECT vault.create_secret('v', 'n')")
        assert conn.execute("SELECT decrypted_secret FROM vault.decrypted_secrets").fetchone() == ("v",)
