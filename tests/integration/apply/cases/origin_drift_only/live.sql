UPDATE public.scheduled_jobs SET endpoint = '/functions/v1/hand-edited' WHERE job_name = 'ttl_cleanup';
SELECT cron.alter_job(jobid, schedule := '*/2 * * * *') FROM cron.job WHERE jobname = 'master-scheduler';
