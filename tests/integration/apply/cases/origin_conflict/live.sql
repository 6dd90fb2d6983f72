-- Someone edits the schedule the manifest also changes, to a third value.
UPDATE public.scheduled_jobs SET schedule = '*/20 * * * *' WHERE job_name = 'fetch_rss_feeds';
