-- As the superuser: master-scheduler disabled, a job edited.
SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'), active := false);
UPDATE public.scheduled_jobs SET endpoint = '/functions/v1/old' WHERE job_name = 'ttl_cleanup';
