-- What a fresh hosted Supabase database has before any user migration, as far as the scheduler stack
-- can tell: run once by `Cluster` as the bootstrap superuser supabase_admin, right after initdb.
-- `postgres` is an ordinary role with CREATEROLE/CREATEDB. The control files are untrusted, as on
-- Supabase; localdb's supautils stand-in (localdb/supautils/, loaded per session) creates the
-- privileged extensions as supabase_admin, who therefore owns them, whoever asked.

CREATE ROLE postgres LOGIN NOSUPERUSER CREATEROLE CREATEDB;
CREATE ROLE anon NOLOGIN NOINHERIT;
CREATE ROLE authenticated NOLOGIN NOINHERIT;
CREATE ROLE service_role NOLOGIN NOINHERIT;

CREATE SCHEMA extensions AUTHORIZATION postgres;
GRANT USAGE ON SCHEMA extensions TO anon, authenticated, service_role;

GRANT ALL ON SCHEMA public TO postgres;
GRANT USAGE ON SCHEMA public TO anon, authenticated, service_role;

-- Supabase's search_path for postgres, so unqualified extension functions resolve as they do there.
ALTER ROLE postgres SET search_path = "$user", public, extensions;

-- Supabase grants `postgres` access to an extension's objects right after it is created
-- (supautils' after-create custom scripts, its `extensions.grant_pg_cron_access` /
-- `grant_pg_net_access` event triggers and the vault migrations); here one event trigger does it,
-- whoever created the extension. The function lives in a schema only the superuser can touch, so tests that drop
-- and recreate `extensions` or `public` cannot break it.
CREATE SCHEMA localdb;
REVOKE ALL ON SCHEMA localdb FROM PUBLIC;

CREATE FUNCTION localdb.grant_extension_access() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
DECLARE
    ext name;
BEGIN
    FOR ext IN
        SELECT e.extname
        FROM pg_event_trigger_ddl_commands() c
        JOIN pg_extension e ON e.oid = c.objid
        WHERE c.classid = 'pg_extension'::regclass
    LOOP
        IF ext = 'pg_cron' THEN
            PERFORM localdb.grant_pg_cron_access();
        ELSIF ext = 'pg_net' THEN
            PERFORM localdb.grant_pg_net_access();
        ELSIF ext = 'supabase_vault' THEN
            PERFORM localdb.grant_vault_access();
        END IF;
    END LOOP;
END
$fn$;

CREATE FUNCTION localdb.grant_pg_cron_access() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
BEGIN
    GRANT USAGE ON SCHEMA cron TO postgres;
    -- every function, including alter_job and schedule_in_database whose EXECUTE pg_cron revokes
    -- from PUBLIC
    GRANT ALL ON ALL FUNCTIONS IN SCHEMA cron TO postgres;
    -- a later Supabase migration leaves postgres only SELECT on cron.job: changes go through cron.*
    REVOKE ALL ON cron.job FROM postgres;
    GRANT SELECT ON cron.job TO postgres;
    GRANT SELECT ON cron.job_run_details TO postgres;
END
$fn$;

CREATE FUNCTION localdb.grant_pg_net_access() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
BEGIN
    GRANT USAGE ON SCHEMA net TO postgres, anon, authenticated, service_role;
    -- as Supabase's grant_pg_net_access: the request functions run as their owner and only the
    -- API roles may call them
    ALTER FUNCTION net.http_get(text, jsonb, jsonb, integer) SECURITY DEFINER;
    ALTER FUNCTION net.http_post(text, jsonb, jsonb, jsonb, integer) SECURITY DEFINER;
    ALTER FUNCTION net.http_delete(text, jsonb, jsonb, integer, jsonb) SECURITY DEFINER;
    ALTER FUNCTION net.http_get(text, jsonb, jsonb, integer) SET search_path = net;
    ALTER FUNCTION net.http_post(text, jsonb, jsonb, jsonb, integer) SET search_path = net;
    ALTER FUNCTION net.http_delete(text, jsonb, jsonb, integer, jsonb) SET search_path = net;
    REVOKE ALL ON FUNCTION net.http_get(text, jsonb, jsonb, integer) FROM PUBLIC;
    REVOKE ALL ON FUNCTION net.http_post(text, jsonb, jsonb, jsonb, integer) FROM PUBLIC;
    REVOKE ALL ON FUNCTION net.http_delete(text, jsonb, jsonb, integer, jsonb) FROM PUBLIC;
    GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA net TO postgres;
    GRANT EXECUTE ON FUNCTION net.http_get(text, jsonb, jsonb, integer),
                              net.http_post(text, jsonb, jsonb, jsonb, integer),
                              net.http_delete(text, jsonb, jsonb, integer, jsonb)
        TO anon, authenticated, service_role;
    GRANT SELECT ON ALL TABLES IN SCHEMA net TO postgres;
END
$fn$;

CREATE FUNCTION localdb.grant_vault_access() RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $fn$
BEGIN
    GRANT USAGE ON SCHEMA vault TO postgres;
    GRANT EXECUTE ON FUNCTION vault.create_secret(text, text, text, uuid),
                              vault.update_secret(uuid, text, text, text, uuid),
                              vault._crypto_aead_det_decrypt(bytea, bytea, bigint, bytea, bytea)
        TO postgres;
    GRANT SELECT ON vault.secrets, vault.decrypted_secrets TO postgres;
    -- Supabase documents removing a secret as a DELETE on vault.secrets (there is no function)
    GRANT DELETE ON vault.secrets TO postgres;
END
$fn$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA localdb FROM PUBLIC;

CREATE EVENT TRIGGER localdb_grant_extension_access ON ddl_command_end
    WHEN TAG IN ('CREATE EXTENSION')
    EXECUTE FUNCTION localdb.grant_extension_access();
