-- The reconciler's own records, created by the first apply that changes something.
CREATE SCHEMA IF NOT EXISTS reconciler;
CREATE TABLE IF NOT EXISTS reconciler.managed (
    kind text NOT NULL,
    key text NOT NULL,
    protect boolean NOT NULL DEFAULT false,
    -- the last-applied record (engine/ownership.py): {"desired": {...}, "live": {...}}; NULL: none
    applied jsonb,
    history_id bigint,  -- the reconciler.history entry that wrote it
    removed boolean NOT NULL DEFAULT false,  -- deleted by that entry (prune, reconcile down)
    first_applied timestamptz NOT NULL DEFAULT now(),
    last_applied timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);
CREATE TABLE IF NOT EXISTS reconciler.history (
    id bigserial PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now(),
    database_user text NOT NULL DEFAULT current_user,
    client_addr text DEFAULT inet_client_addr()::text,
    tool_version text NOT NULL,
    command text NOT NULL,
    manifest_digest text NOT NULL,
    summary text NOT NULL,
    plan_text text NOT NULL,
    changes jsonb NOT NULL
);
