-- A job row deleted by hand is inserted again.
DELETE FROM public.scheduled_jobs WHERE job_name = 'ttl_cleanup';
