-- Only whitespace and comments of master-scheduler's command edited: no change.
SELECT cron.alter_job((SELECT jobid FROM cron.job WHERE jobname = 'master-scheduler'),
    command := E'-- reformatted by hand\n  ' || replace(command, E'\n', E'\n    ') || E';  /* done */\n')
  FROM cron.job WHERE jobname = 'master-scheduler';
