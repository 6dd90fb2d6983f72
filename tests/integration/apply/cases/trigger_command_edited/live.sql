-- master-scheduler's command edited by hand (a different body).
SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'),
    command := replace(command, '''pg_cron''', '''by-hand'''))
  FROM cron.job WHERE jobname = 'master-scheduler';
