-- master-scheduler unscheduled by hand.
SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = 'master-scheduler';
