-- reconciler.managed as the previous release left it (git show e6f3255:reconciler/sql/ownership.sql).
DROP TABLE reconciler.managed;
CREATE TABLE reconciler.managed (
    kind text NOT NULL,
    key text NOT NULL,
    fingerprint text NOT NULL,
    protect boolean NOT NULL DEFAULT false,
    first_applied timestamptz NOT NULL DEFAULT now(),
    last_applied timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);
ALTER TABLE reconciler.managed OWNER TO postgres;  -- as the previous release created it
INSERT INTO reconciler.managed (kind, key, fingerprint)
SELECT 'job', job_name, 'previous-release' FROM public.scheduled_jobs
UNION ALL SELECT 'trigger', jobname, 'previous-release' FROM cron.job
UNION ALL SELECT 'secret', name, 'previous-release' FROM vault.secrets;
UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'fetch_google_news';
