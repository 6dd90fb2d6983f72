-- pg_cron (with its jobs) and pg_net dropped after an apply.
DROP EXTENSION pg_cron, pg_net CASCADE;
