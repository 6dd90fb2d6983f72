-- The runbook's SQL (seed, steps 1-4) run by hand before any apply, as far as it works as written.
-- Step 1, as the dashboard would (superuser). `CREATE EXTENSION vault` fails: the name is supabase_vault.
-- On Supabase supautils puts pg_cron in pg_catalog whatever WITH SCHEMA says, so there is nothing to report.
CREATE EXTENSION IF NOT EXISTS pg_cron WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS pg_net WITH SCHEMA extensions;
CREATE EXTENSION IF NOT EXISTS supabase_vault;

-- Step 2 with the test's secret values; the runbook gives no descriptions, so two are added by hand
-- (adopted) and cron_secret keeps the runbook's placeholder and no description (updated).
SELECT vault.create_secret('https://golden.example.test', 'project_url',
                           'Base URL of the Supabase project, e.g. https://<ref>.supabase.co');
SELECT vault.create_secret('golden-service-role-key', 'service_role_key',
                           'Service role key for authenticated cron calls');
SELECT vault.create_secret('[GENERATE_SECURE_RANDOM_STRING]', 'cron_secret');

-- Steps 3 and 4 as the runbook's user, postgres (the unschedule of step 4 fails on a fresh system: left out).
SET ROLE postgres;
-- Clear any orphaned jobs first
DELETE FROM scheduled_jobs WHERE job_name IS NULL;

-- Insert all required scheduled jobs
INSERT INTO scheduled_jobs (
  job_name, job_type, schedule, endpoint, is_active, description
)
VALUES
  -- TIER 1: Critical Ingestion (every 5-15 min)
  ('fetch_google_news', 'fetch_news', '*/5 * * * *',
   '/functions/v1/fetch-google-news', true,
   'Fetch Google News political articles'),

  ('fetch_rss_feeds', 'fetch_rss', '*/15 * * * *',
   '/functions/v1/fetch-rss-feeds', true,
   'Fetch RSS feed articles from configured sources'),

  -- TIER 1: Critical Processing (every 5-15 min)
  ('detect_trend_events', 'detect_trends', '*/5 * * * *',
   '/functions/v1/detect-trend-events', true,
   'Detect trending events and set is_trending flags'),

  ('extract_trend_entities', 'extract_entities', '*/15 * * * *',
   '/functions/v1/extract-trend-entities', true,
   'Extract politicians, orgs, legislation from trends'),

  ('tag_trend_policy_domains', 'tag_domains', '*/15 * * * *',
   '/functions/v1/tag-trend-policy-domains', true,
   'Tag trends with policy domains'),

  ('tag_trend_geographies', 'tag_geo', '*/15 * * * *',
   '/functions/v1/tag-trend-geographies', true,
   'Tag trends with geographic regions'),

  -- TIER 1: Critical Scoring (every 15 min)
  ('compute_org_relevance', 'compute_relevance', '*/15 * * * *',
   '/functions/v1/compute-org-relevance', true,
   'Compute organization-specific relevance scores'),

  ('match_entity_watchlist', 'match_watchlist', '*/15 * * * *',
   '/functions/v1/match-entity-watchlist', true,
   'Match trends against org watchlists'),

  -- TIER 2: Learning (hourly)
  ('update_org_affinities', 'learn_affinities', '0 * * * *',
   '/functions/v1/update-org-affinities', true,
   'Update topic affinity scores from user behavior'),

  ('correlate_trends_campaigns', 'correlate', '30 * * * *',
   '/functions/v1/correlate-trends-campaigns', true,
   'Correlate trends with campaign performance'),

  -- TIER 3: Maintenance (daily)
  ('decay_stale_affinities', 'decay_affinities', '0 4 * * *',
   '/functions/v1/decay-stale-affinities', true,
   'Decay old affinity scores to prevent stale data'),

  ('ttl_cleanup', 'cleanup', '0 3 * * *',
   '/functions/v1/ttl-cleanup', true,
   'Clean up expired cache and old data'),

  ('cleanup_old_cache', 'cleanup', '0 5 * * 0',
   '/functions/v1/cleanup-old-cache', true,
   'Weekly cleanup of old cache entries')

ON CONFLICT (job_name) DO UPDATE SET
  is_active = true,
  schedule = EXCLUDED.schedule,
  endpoint = EXCLUDED.endpoint,
  description = EXCLUDED.description,
  updated_at = NOW();

-- Create the master scheduler
SELECT cron.schedule(
  'master-scheduler',  -- Job name
  '* * * * *',         -- Every minute
  $$
  SELECT net.http_post(
    url := (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'project_url')
           || '/functions/v1/run-scheduled-jobs',
    headers := jsonb_build_object(
      'Content-Type', 'application/json',
      'x-cron-secret', (SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = 'cron_secret')
    ),
    body := jsonb_build_object(
      'triggered_by', 'pg_cron',
      'timestamp', NOW()::text
    )
  ) AS request_id;
  $$
);
RESET ROLE;
