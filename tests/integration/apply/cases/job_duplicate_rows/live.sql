-- Unique constraint dropped, then a second ttl_cleanup row inserted.
ALTER TABLE public.scheduled_jobs DROP CONSTRAINT scheduled_jobs_job_name_key;
INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description)
VALUES ('ttl_cleanup', 'cleanup', '0 2 * * *', '/functions/v1/ttl-cleanup', 'a second copy');
