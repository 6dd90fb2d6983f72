-- The application's tables as the runbook uses them; created only when the manifest says
-- tables: {create_missing: true}. Existing tables are never altered.
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
-- split --
CREATE TABLE IF NOT EXISTS public.job_executions (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    job_id uuid REFERENCES public.scheduled_jobs (id) ON DELETE SET NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    completed_at timestamptz,
    status text NOT NULL DEFAULT 'running',
    error_message text,
    result jsonb
);
