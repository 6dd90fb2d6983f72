-- A job deactivated in the table by hand.
UPDATE public.scheduled_jobs SET is_active = false WHERE job_name = 'fetch_rss_feeds';
