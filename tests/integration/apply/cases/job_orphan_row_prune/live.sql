-- The same orphan row with --prune: deleted.
INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description)
VALUES (NULL, 'legacy', '0 0 * * *', '/functions/v1/legacy', 'left behind');
