-- Someone edits the endpoint of the job whose schedule the manifest changes.
UPDATE public.scheduled_jobs SET endpoint = '/functions/v1/hand-edited' WHERE job_name = 'fetch_rss_feeds';
