-- master-scheduler disabled with cron.alter_job.
SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'), active := false);
