"""`python -m localdb up|down|status|url|seed|edge|pg`: the command line over `localdb.Cluster`.

`pg [--pg-major N] [--missing]` prints the PostgreSQL install localdb runs from (localdb/discovery.py),
or with --missing the apt packages it still lacks; `up --pg-major N` runs that major.

`edge start|stop|status [--port 54321] [--secret-env CRON_SECRET]` runs the run-scheduled-jobs
stand-in (`localdb/edge.py`) detached, with its pid file and log in the root; there `--port` is the
edge's port (the cluster's is the one it runs on, else $LOCALDB_PORT) and the secret is read from the named variable.

Prints what a user needs (a URL, a state) on stdout; any LocalDbError becomes one line on stderr and
exit status 1. `status` exits 3 when the cluster is not running, as `pg_ctl status` does.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
from pathlib import Path

from localdb.cluster import DEFAULT_PORT, PROFILES, Cluster, create_app_tables, recorded_profile
from localdb.discovery import describe
from localdb.errors import LocalDbError

DEFAULT_ROOT = Path(__file__).resolve().parent.parent / ".localdb"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m localdb",
                                     description="A throwaway local Supabase-like PostgreSQL.")
    parser.add_argument("command", choices=["up", "down", "status", "url", "seed", "edge", "pg"],
                        help="pg: the PostgreSQL install localdb runs (--pg-major, --missing)")
    parser.add_argument("action", nargs="?", choices=["start", "stop", "status"],
                        help="edge: start, stop or status of the run-scheduled-jobs stand-in")
    parser.add_argument("--root", type=Path, default=DEFAULT_ROOT,
                        help=f"cluster directory (default {DEFAULT_ROOT})")
    parser.add_argument("--port", type=int, default=None,
                        help=f"port (default: the running cluster's, else $LOCALDB_PORT or {DEFAULT_PORT})")
    parser.add_argument("--profile", choices=PROFILES, default=None,
                        help="supabase (default for a new cluster) or vanilla; an existing cluster "
                             "keeps the profile it was made with")
    parser.add_argument("--pg-major", default=None, metavar="N",
                        help="up: the PostgreSQL major to run (default: $LOCALDB_PG_MAJOR, else the one the "
                             "cluster was made with, else the newest installed with pg_cron)")
    parser.add_argument("--missing", action="store_true",
                        help="pg: print only the apt packages still missing for it (scripts/install.sh)")
    parser.add_argument("--with-app-tables", action="store_true",
                        help="up: also create public.scheduled_jobs and public.job_executions")
    parser.add_argument("--superuser", action="store_true",
                        help="url: the bootstrap superuser's URL instead of role postgres")
    parser.add_argument("--secret-env", default="CRON_SECRET", metavar="NAME",
                        help="edge start: environment variable holding the x-cron-secret to accept")
    parser.add_argument("--database-url", default=None, metavar="URL",
                        help="edge start: database the stand-in writes to (default: this cluster, role postgres)")
    return parser


def _port(arg: int | None, root: Path | None = None) -> int:
    """--port, else the port the cluster in `root` runs on, else $LOCALDB_PORT, else the default."""
    if arg is not None:
        return arg
    running = Cluster(root).running_port() if root is not None else None
    if running is not None:  # a new shell need not know the port the demo chose
        return running
    env = os.environ.get("LOCALDB_PORT", "")
    if env and not env.isdigit():
        raise LocalDbError(f"LOCALDB_PORT must be a port number, not {env!r}")
    return int(env) if env else DEFAULT_PORT


def _seed(cluster: Cluster) -> None:
    import psycopg

    try:
        with psycopg.connect(cluster.url(), autocommit=True) as conn:
            create_app_tables(conn)
    except psycopg.Error as exc:
        raise LocalDbError(f"cannot create the application tables: {' '.join(str(exc).split())}") from exc


def run(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "pg":
        print(describe(args.pg_major, missing_only=args.missing))
        return 0
    if args.command == "edge":
        from localdb.edge import edge_command

        cluster = Cluster(args.root, port=_port(None, args.root),
                          profile=args.profile or recorded_profile(args.root) or "supabase")
        return edge_command(cluster, args.action or "status", args.port, args.secret_env, args.database_url)
    profile = args.profile or recorded_profile(args.root) or "supabase"
    cluster = Cluster(args.root, port=_port(args.port, args.root), profile=profile, pg_major=args.pg_major)
    if args.command == "up":
        print(cluster.up())
        if args.with_app_tables:
            _seed(cluster)
    elif args.command == "seed":
        cluster.up()
        _seed(cluster)
        print(cluster.url())
    elif args.command == "down":
        from localdb.edge import edge_command

        with contextlib.redirect_stdout(io.StringIO()):  # the edge stand-in too, if the demo started it
            edge_command(cluster, "stop", None, "CRON_SECRET", None)
        cluster.down()
        print("stopped")
    elif args.command == "url":
        print(cluster.superuser_url() if args.superuser else cluster.url())
    elif args.command == "status":
        if not cluster.is_running():
            print(f"stopped ({cluster.root})")
            return 3
        print(f"running on port {cluster.running_port()}: {cluster.url()}")
    return 0


def main(argv: list[str] | None = None) -> None:
    try:
        code = run(argv)
    except LocalDbError as exc:
        print(f"localdb: {exc}", file=sys.stderr)
        code = 1
    sys.exit(code)


if __name__ == "__main__":
    main()
