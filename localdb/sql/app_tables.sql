-- The application's own tables as the audited database had them (see the runbook in seed/):
-- present but empty. Created by `python -m localdb seed` and by the test fixtures, never by the
-- stand-in extensions. IF NOT EXISTS keeps the seed command idempotent.
CREATE TABLE IF NOT EXISTS public.scheduled_jobs (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_name text UNIQUE,
    job_type text NOT NULL,
    schedule text NOT NULL,
    endpoint text,
    is_active boolean NOT NULL DEFAULT true,
    description text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    last_run_at timestamptz,
    next_run_at timestamptz
);

CREATE TABLE IF NOT EXISTS public.job_executions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id uuid REFERENCES public.scheduled_jobs (id) ON DELETE SET NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    status text NOT NULL DEFAULT 'running',
    error_message text,
    result jsonb
);
