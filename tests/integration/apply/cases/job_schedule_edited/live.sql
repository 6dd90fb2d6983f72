-- A job's schedule edited in the table.
UPDATE public.scheduled_jobs SET schedule = '*/7 * * * *' WHERE job_name = 'fetch_google_news';
