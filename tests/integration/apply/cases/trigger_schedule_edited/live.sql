-- master-scheduler's schedule edited by hand.
SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'), schedule := '*/2 * * * *');
