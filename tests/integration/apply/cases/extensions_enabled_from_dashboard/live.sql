-- Enabled from the Dashboard: created by the platform's superuser, pg_net in schema extensions.
CREATE EXTENSION pg_cron WITH SCHEMA pg_catalog;
CREATE EXTENSION pg_net WITH SCHEMA extensions;
CREATE EXTENSION supabase_vault;
