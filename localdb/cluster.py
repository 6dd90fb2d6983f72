"""A throwaway local PostgreSQL (the major localdb.discovery picks) that behaves like a Supabase database, for tests and local runs.

`Cluster` owns one directory (`root`): the private PostgreSQL tree (`pgtree.py`), the data directory,
the socket directory, the server log and the pg_net stand-in worker (`networker.py`). `up()` creates
the cluster on first use (atomically: a half-made data directory is never left behind), starts it and
the worker, and returns the URL for role `postgres`; `down()` stops both. The test harness
(`tests/fix_db.py`) and the CLI (`python -m localdb`) are thin layers over this class.

Profiles: `supabase` (bootstrap superuser `supabase_admin`, `postgres` an ordinary role with the
grants hosted Supabase gives it, and our supautils stand-in loaded per session so `postgres` may
create the privileged extensions as on Supabase) and `vanilla` (plain PostgreSQL, superuser `postgres`).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import shutil
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote

from localdb import discovery, pgtree
from localdb.discovery import PgInstall
from localdb.errors import LocalDbError
from localdb.pgtree import Tree, ensure_tree
from localdb.proc import alive, pid_in, runs_module
from localdb.proc import start as proc_start
from localdb.proc import stop as proc_stop

DEFAULT_PORT = 54329
PROFILES = ("supabase", "vanilla")
SQL_DIR = Path(__file__).resolve().parent / "sql"
WORKER_MODULE = "localdb.networker"
WORKER_START_TIMEOUT = 30
# The kernel's limit on a Unix socket path (sun_path) including the terminating NUL.
MAX_SOCKET_PATH = 107

# Durability is worthless for a throwaway cluster and costs most of the start and test time.
_SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "shared_preload_libraries": "'pg_cron'",
    "cron.database_name": "'{database}'",
    "cron.host": "'{sockdir}'",
    "unix_socket_directories": "'{sockdir}'",
    "unix_socket_permissions": "0777",
    "port": "{port}",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "checkpoint_timeout": "1h",
    "shared_buffers": "32MB",
    "log_destination": "'stderr'",
    "logging_collector": "off",
    "log_line_prefix": "'%m [%p] %q%u@%d '",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
}

#: Hosted Supabase's supautils configuration, as far as the scheduler stack can observe it (its list of
#: privileged extensions, its superuser and privileged role, pg_cron's forced schema). Our own
#: `localdb/supautils/` library reads these (built by pgtree.build_supautils).
PRIVILEGED_EXTENSIONS = (
    "address_standardizer, address_standardizer_data_us, autoinc, bloom, btree_gin, btree_gist, citext, "
    "cube, dblink, dict_int, dict_xsyn, earthdistance, fuzzystrmatch, hstore, http, hypopg, index_advisor, "
    "insert_username, intarray, isn, ltree, moddatetime, pg_buffercache, pg_cron, pg_graphql, pg_hashids, "
    "pg_jsonschema, pg_net, pg_prewarm, pg_repack, pg_stat_monitor, pg_stat_statements, pg_tle, pg_trgm, "
    "pg_walinspect, pgaudit, pgcrypto, pgjwt, pgroonga, pgroonga_database, pgrouting, pgrowlocks, "
    "pgsodium, pgstattuple, pgtap, plpgsql_check, plv8, postgis, postgis_raster, postgis_sfcgal, "
    "postgis_tiger_geocoder, postgis_topology, postgres_fdw, refint, rum, seg, sslinfo, supabase_vault, "
    "tablefunc, tcn, tsm_system_rows, tsm_system_time, unaccent, uuid-ossp, vector, wrappers"
)
SUPAUTILS_SETTINGS = {
    "session_preload_libraries": "'supautils'",
    "supautils.privileged_extensions": f"'{PRIVILEGED_EXTENSIONS}'",
    "supautils.privileged_role": "'postgres'",
    "supautils.superuser": "'supabase_admin'",
    "supautils.extensions_parameter_overrides": """'{"pg_cron":{"schema":"pg_catalog"}}'""",
}

#: Where localdb's own lines start in postgresql.conf (initdb's defaults above them).
_CONFIG_MARK = "\n# localdb\n"

_HBA = """\
# localdb: trust, and only from this machine (socket, loopback)
local   all   all                 trust
host    all   all   127.0.0.1/32  trust
host    all   all   ::1/128       trust
"""


class Cluster:
    """One local cluster living in `root`; every method is safe to call in any state."""

    def __init__(self, root: Path | str, port: int = DEFAULT_PORT, profile: str = "supabase",
                 database: str = "postgres", system: PgInstall | None = None, *,
                 settings: Mapping[str, str] | None = None, net_worker: bool = True,
                 pg_major: str | None = None) -> None:
        """`settings`: postgresql.conf values over localdb's own (written when the data directory is made,
        e.g. a smaller shared_buffers for many clusters at once). `net_worker=False`: `up()` does not start
        the pg_net worker, for clusters whose queued HTTP requests nobody needs sent. `system`: the
        PostgreSQL to run (default: `pg_major`, else $LOCALDB_PG_MAJOR, else the major the data directory
        was made with, else what localdb.discovery picks on this machine)."""
        if profile not in PROFILES:
            raise LocalDbError(f"unknown profile {profile!r}: choose one of {', '.join(PROFILES)}")
        self.root = Path(root).absolute()
        self.port = int(port)
        self.profile = profile
        self.database = database
        self.settings = dict(settings or {})
        self.net_worker = net_worker
        self.system = system
        self.pg_major = pg_major
        self.datadir = self.root / "data"
        self.sockdir = self.root / "run"
        self.log_file = self.root / "postgres.log"
        self.worker_pid_file = self.root / "networker.pid"
        self.worker_log_file = self.root / "networker.log"
        self.worker_ready_file = self.root / "networker.ready"
        self._meta_file = self.root / "localdb.json"

    def __repr__(self) -> str:
        return f"Cluster(root={str(self.root)!r}, port={self.port}, profile={self.profile!r})"

    @property
    def superuser(self) -> str:
        return "supabase_admin" if self.profile == "supabase" else "postgres"

    # -- public API ----------------------------------------------------------------------------

    def up(self) -> str:
        """Create (first time) and start the server and the pg_net worker; return `url()`."""
        self._check_socket_path()
        with self._locked():
            self._check_profile()  # before ensure_tree rewrites the profile's control files
            system = self._system()
            tree = ensure_tree(self.root / "pgtree", self.profile, system, need_cron=self._preloads_cron())
            if not self.datadir.is_dir():
                self._create(tree)
            running = self.running_port()
            if self._add_supautils_config(self.datadir) and running is not None:
                self._pg_ctl(tree, "reload", "-D", str(self.datadir))
            if running is not None and running != self.port:
                raise LocalDbError(f"the cluster in {self.root} already runs on port {running}, "
                                   f"not {self.port}; run `python -m localdb down` first")
            # The worker's start-up (mostly imports) overlaps with the server's.
            worker = self._start_worker() if self.net_worker else None
            if running is None:
                try:
                    self._start(tree, self.datadir, listen=True)
                except BaseException:
                    self._stop_worker()
                    raise
            if worker is not None:
                self._wait_worker_ready(worker)
        return self.url()

    def down(self) -> None:
        """Stop the worker and the server; nothing to do when they are not running."""
        with self._locked():
            self._stop_worker()
            if self.running_port() is not None:
                # The tree as it is: rebuilding it under the wrong profile would flip its controls.
                self._pg_ctl(Tree.open(self.root / "pgtree"), "stop", "-D", str(self.datadir),
                             "-m", "fast", "-w", "-t", "60")

    def restart(self) -> None:
        """Restart only the server (the worker reconnects by itself), as a crash or upgrade would."""
        with self._locked():
            self._pg_ctl(Tree.open(self.root / "pgtree"), "restart", "-D", str(self.datadir), "-l", str(self.log_file),
                         "-m", "fast", "-w", "-t", "60", "-o", f"-p {self.port}")

    def is_running(self) -> bool:
        return self.running_port() is not None

    def running_port(self) -> int | None:
        """The port the server of this root listens on, read from its socket lock file."""
        if not self.sockdir.is_dir():
            return None
        for lock in self.sockdir.glob(".s.PGSQL.*.lock"):
            pid = pid_in(lock)
            if pid and alive(pid) and lock.with_suffix("").exists():
                return int(lock.name.split(".")[3])
        return None

    def url(self, role: str = "postgres", database: str | None = None) -> str:
        host = quote(str(self.sockdir), safe="/")
        dbname = quote(database or self.database)
        return f"postgresql://{quote(role)}@/{dbname}?host={host}&port={self.port}"

    def tcp_url(self, role: str = "postgres") -> str:
        return f"postgresql://{quote(role)}@127.0.0.1:{self.port}/{quote(self.database)}"

    def superuser_url(self) -> str:
        return self.url(self.superuser)

    def worker_pid(self) -> int | None:
        """The pg_net worker's pid when it runs."""
        pid = pid_in(self.worker_pid_file)
        return pid if pid and runs_module(pid, WORKER_MODULE) else None

    def create_from(self, template: Cluster) -> None:
        """Make this cluster, not yet created, as a copy of `template` (same profile and database, stopped).

        Copies the template's private tree (binaries hard-linked, symlinks kept, supautils already built)
        and data directory, then writes this cluster's own settings (root, port, `settings`) in place of the
        template's: for many identical clusters (bench/fleet.py) this replaces initdb, the bootstrap and
        the supautils build, most of a first `up()`. Atomic like `up()`; call `up()` afterwards to start it.
        """
        if (template.profile, template.database) != (self.profile, self.database):
            raise LocalDbError(f"cannot copy {template}: it has profile {template.profile!r} and database "
                               f"{template.database!r}, this cluster {self.profile!r} and {self.database!r}")
        if not template.datadir.is_dir() or template.is_running():
            raise LocalDbError(f"cannot copy {template}: it must be created and stopped")
        self._check_socket_path()
        with self._locked():
            if self.datadir.is_dir():
                raise LocalDbError(f"the cluster in {self.root} exists already")
            staging = self.root / f"data.tmp{os.getpid()}"
            shutil.rmtree(staging, ignore_errors=True)
            try:
                if not (self.root / "pgtree").is_dir():
                    _copy_tree(template.root / "pgtree", self.root / "pgtree", link=True)
                self._prepare_dirs(staging)
                _copy_tree(template.datadir, staging, link=False)
                conf = staging / "postgresql.conf"
                text = conf.read_text()
                conf.write_text(text[:text.index(_CONFIG_MARK)] if _CONFIG_MARK in text else text)
                self._write_config(staging)
                staging.rename(self.datadir)
                self._meta_file.write_text(json.dumps({"profile": self.profile}) + "\n")
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise

    # -- creation ------------------------------------------------------------------------------

    def _create(self, tree: Tree) -> None:
        staging = self.root / f"data.tmp{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            self._prepare_dirs(staging)
            self._run(tree.bin("initdb"), "-D", str(staging), "-U", self.superuser, "-A", "trust",
                      "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions",
                      what="initdb")
            self._write_config(staging)
            self._start(tree, staging, listen=False)
            try:
                self._bootstrap()
            finally:
                self._pg_ctl(tree, "stop", "-D", str(staging), "-m", "fast", "-w", "-t", "60")
            staging.rename(self.datadir)
            self._meta_file.write_text(json.dumps({"profile": self.profile}) + "\n")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    def _prepare_dirs(self, staging: Path) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.sockdir.mkdir(exist_ok=True)
        self.log_file.touch()
        staging.mkdir(mode=0o700)
        owner = _server_owner()
        if owner is not None:
            for path in (self.sockdir, self.log_file, staging):
                os.chown(path, owner.pw_uid, owner.pw_gid)
            _check_traversable(self.root, owner)

    def _write_config(self, datadir: Path) -> None:
        values = {"database": self.database, "sockdir": str(self.sockdir), "port": self.port}
        lines = [f"{key} = {value.format(**values)}" for key, value in _SETTINGS.items()]
        lines += [f"{key} = {value}" for key, value in self.settings.items()]  # later lines win
        with (datadir / "postgresql.conf").open("a") as conf:
            conf.write(_CONFIG_MARK + "\n".join(lines) + "\n")
        (datadir / "pg_hba.conf").write_text(_HBA)
        self._add_supautils_config(datadir)

    def _add_supautils_config(self, datadir: Path) -> bool:
        """Append supautils' settings (supabase profile) unless there; True when they were added.

        Also brings a cluster made before localdb had its supautils stand-in up to date.
        """
        conf = datadir / "postgresql.conf"
        if self.profile != "supabase" or "supautils.privileged_extensions" in conf.read_text():
            return False
        lines = [f"{key} = {value}" for key, value in SUPAUTILS_SETTINGS.items()]
        with conf.open("a") as handle:
            handle.write("\n# localdb: hosted Supabase's supautils (localdb/supautils/)\n" + "\n".join(lines) + "\n")
        return True

    def _bootstrap(self) -> None:
        import psycopg
        from psycopg import sql

        with psycopg.connect(self.url(self.superuser, "postgres"), autocommit=True) as conn:
            if self.database != "postgres":
                conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(self.database)))
        if self.profile != "supabase":
            return
        with psycopg.connect(self.superuser_url(), autocommit=True) as conn:
            conn.execute((SQL_DIR / "supabase_bootstrap.sql").read_text())
            conn.execute(sql.SQL("GRANT ALL ON DATABASE {} TO postgres").format(
                sql.Identifier(self.database)))

    def made_with_major(self) -> str | None:
        """The PostgreSQL major the data directory was made with (its PG_VERSION), if it exists."""
        try:
            return (self.datadir / "PG_VERSION").read_text().strip()
        except OSError:
            return None

    def _system(self) -> PgInstall:
        made = self.made_with_major()
        if self.system is not None:
            system = self.system
        else:
            explicit = self.pg_major or os.environ.get(discovery.ENV_MAJOR) or made
            system = pgtree.system_install(explicit)
        if made is not None and made != system.major:
            raise LocalDbError(f"the cluster in {self.root} was made with PostgreSQL {made}, not {system.major}; "
                               f"use --pg-major {made} or another --root")
        return system

    def _preloads_cron(self) -> bool:
        preload = self.settings.get("shared_preload_libraries", _SETTINGS["shared_preload_libraries"])
        return "pg_cron" in preload

    def _check_profile(self) -> None:
        made = recorded_profile(self.root)
        if made is not None and made != self.profile:
            raise LocalDbError(f"the cluster in {self.root} was made with profile {made!r}, "
                               f"not {self.profile!r}; use another --root")

    def _check_socket_path(self) -> None:
        path = self.sockdir / f".s.PGSQL.{self.port}"
        if len(str(path)) > MAX_SOCKET_PATH - 1:
            raise LocalDbError(f"socket path {path} is longer than {MAX_SOCKET_PATH - 1} bytes; "
                               "choose a shorter --root")

    # -- server process ------------------------------------------------------------------------

    def _start(self, tree: Tree, datadir: Path, *, listen: bool) -> None:
        # The port lives in the options, not only in the file, so `--port` works on an old cluster.
        options = f"-p {self.port}" + ("" if listen else " -c listen_addresses=''")
        try:
            self._pg_ctl(tree, "start", "-D", str(datadir), "-l", str(self.log_file), "-w",
                         "-t", "60", "-o", options)
        except LocalDbError as exc:
            raise LocalDbError(f"{exc}; server log: {self._last_log_line()}") from None

    def _pg_ctl(self, tree: Tree, *args: str) -> None:
        self._run(tree.bin("pg_ctl"), "-s", *args, what=f"pg_ctl {args[0]}")

    def _run(self, *argv: str, what: str) -> None:
        owner = _server_owner()
        extra = {} if owner is None else {"user": owner.pw_uid, "group": owner.pw_gid,
                                          "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["LC_ALL"] = "C"
        proc = subprocess.run(argv, cwd=self.root, env=env, capture_output=True, text=True,
                              check=False, **extra)
        if proc.returncode != 0:
            lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
            raise LocalDbError(f"{what} failed: {lines[-1]}")

    def _last_log_line(self) -> str:
        try:
            lines = self.log_file.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return lines[-1] if lines else "(empty)"

    # -- pg_net worker -------------------------------------------------------------------------

    def _start_worker(self) -> subprocess.Popen | None:
        """Spawn the worker unless one runs already; it connects as soon as the server accepts."""
        if self.worker_pid() is not None:
            return None
        with contextlib.suppress(FileNotFoundError):
            self.worker_ready_file.unlink()
        proc = proc_start(WORKER_MODULE, ["--dsn", self.superuser_url(), "--pid-file", str(self.worker_pid_file),
                                          "--ready-file", str(self.worker_ready_file)],
                          log_file=self.worker_log_file, pid_file=self.worker_pid_file, cwd=self.root)
        return proc

    def _wait_worker_ready(self, proc: subprocess.Popen) -> None:
        # Callers queue requests right after up(); the worker must be listening by then.
        deadline = time.monotonic() + WORKER_START_TIMEOUT
        while time.monotonic() < deadline:
            if pid_in(self.worker_ready_file) == proc.pid:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.01)
        last = self.worker_log_file.read_text(errors="replace").strip().splitlines() or ["(no log)"]
        raise LocalDbError(f"the pg_net worker did not start within {WORKER_START_TIMEOUT} s: "
                           f"{last[-1]} (see {self.worker_log_file})")

    def _stop_worker(self) -> None:
        pid = self.worker_pid()
        for path in (self.worker_pid_file, self.worker_ready_file):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        if pid is not None:
            proc_stop(pid)

    # -- helpers -------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # Two `up`s at once (two terminals, parallel test sessions) must not both run initdb.
        self.root.mkdir(parents=True, exist_ok=True)
        if _server_owner() is not None:  # the postgres OS user must reach the socket and log
            self.root.chmod(self.root.stat().st_mode | 0o055)
        with (self.root / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def create_app_tables(conn) -> None:
    """Create public.scheduled_jobs and public.job_executions, empty, owned by the connected role.

    The DDL is the reconciler's own (`tables: {create_missing: true}` uses it too): the application's
    tables as the audited database had them, IF NOT EXISTS so seeding is idempotent.
    """
    from importlib.resources import files

    conn.execute(files("reconciler").joinpath("sql/app_tables.sql").read_text())


def _server_owner() -> pwd.struct_passwd | None:
    """The OS user the server runs as: `postgres` when we are root (initdb refuses root), else us."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        raise LocalDbError("running as root needs an OS user named postgres to own the server "
                           "(package postgresql-common creates it)") from None


def recorded_profile(root: Path | str) -> str | None:
    """The profile the cluster in `root` was created with, if there is one."""
    try:
        return json.loads((Path(root) / "localdb.json").read_text())["profile"]
    except (OSError, ValueError, KeyError):
        return None


#: What a copied data directory must not inherit from its template (a stopped server leaves the options).
_NOT_COPIED = ("postmaster.pid", "postmaster.opts")


def _copy_tree(source: Path, destination: Path, *, link: bool) -> None:
    """Copy a directory keeping symlinks, modes and (as root) owners; `link`: hard-link regular files."""
    def copy(src: str, dst: str) -> None:
        if link:
            try:
                os.link(src, dst)
                return
            except OSError:  # another file system, or protected_hardlinks
                pass
        shutil.copy2(src, dst)

    shutil.copytree(source, destination, symlinks=True, copy_function=copy, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(*_NOT_COPIED))
    if os.geteuid() == 0:
        for directory, dirs, files in os.walk(destination):
            relative = Path(directory).relative_to(destination)
            for name in [".", *dirs, *files]:
                stat = os.lstat(source / relative / name)
                os.lchown(Path(directory) / name, stat.st_uid, stat.st_gid)


def _check_traversable(root: Path, owner: pwd.struct_passwd) -> None:
    for directory in [root, *root.parents]:
        mode = directory.stat()
        if mode.st_uid != owner.pw_uid and not mode.st_mode & 0o001:
            raise LocalDbError(f"the postgres OS user cannot enter {directory}; "
                               f"chmod o+x it or choose another --root")
