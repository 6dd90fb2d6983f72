-- Objects made by hand that the reconciler never managed survive --apply --prune.
SET ROLE postgres;
SELECT cron.schedule('hand-made', '0 0 * * *', 'SELECT 1');
SELECT cron.schedule('30 0 * * *', 'SELECT 2');
SELECT vault.create_secret('hand-made-value', 'hand_made', 'made by hand');
INSERT INTO public.scheduled_jobs (job_name, job_type, schedule, endpoint, description)
VALUES ('hand_made_job', 'manual', '0 1 * * *', '/functions/v1/manual', 'made by hand');
RESET ROLE;
