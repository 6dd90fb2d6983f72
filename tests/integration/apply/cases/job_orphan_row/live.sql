-- A row with job_name NULL: reported, never touched without --prune.
INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description)
VALUES (NULL, 'legacy', '0 0 * * *', '/functions/v1/legacy', 'left behind');
