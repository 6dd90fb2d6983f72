"""A contract stand-in for the Supabase Management API endpoints fleet generators read (tests, bench).

The endpoints and answers of docs/upstream.md, "The Management API" (projects, branches, API keys):

    GET /v1/projects                       200 [{id, ref, organization_id, organization_slug, name, region,
                                                 created_at, status, database: {host, version, ...}}]
    GET /v1/projects/{ref}                 200 one project; 404 unknown
    GET /v1/projects/{ref}/branches        200 [{id, name, project_ref, parent_project_ref, is_default,
                                                 git_branch, persistent, status, created_at, updated_at,
                                                 with_data}]; 404 unknown project
    GET /v1/branches/{branch_id_or_ref}    200 {ref, postgres_version, postgres_engine, release_channel,
                                                 status: ACTIVE_HEALTHY, db_host, db_port, db_user, db_pass,
                                                 jwt_secret}; 404 unknown
    GET /v1/projects/{ref}/api-keys        200 [{name: anon|service_role, api_key, type: legacy, id}]
                                           (a project's or a branch's ref); 404 unknown

None of them paginates: each list is one JSON array. Bearer token auth (401 when missing or wrong). Every
answer carries x-ratelimit-limit / -remaining / -reset (a fixed window of `rate_window` seconds); beyond
`rate_limit` requests in a window the answer is 429 with retry-after. `fail_next(n, status, path=None,
retry_after=None)` makes the next n (matching) requests fail with that status; retry-after is sent when
given (always for 429). Every request is recorded (`requests`).

A branch's database is whatever the test gives it: `add_branch(..., url=cluster.url())` takes host (a
socket directory or an address), port and user from a localdb URL. localdb clusters trust local
connections, so `db_pass` is not checked by them: the stand-in makes a distinct marker password per
branch (`branch.db_pass`), which tests search the outputs for.

    with ManagementApiStandIn(token="t") as api:
        project = api.add_project("main-app")
        api.add_branch(project.ref, "feature/login", url=cluster.url())
        api.url   # http://127.0.0.1:PORT, the generator's api_url
"""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from localdb.api_standin import ApiStandIn, seconds_text

BRANCH_STATUSES = ("CREATING_PROJECT", "RUNNING_MIGRATIONS", "MIGRATIONS_PASSED", "MIGRATIONS_FAILED",
                   "FUNCTIONS_DEPLOYED", "FUNCTIONS_FAILED")
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def new_ref() -> str:
    """A project ref as Supabase makes them: 20 lowercase letters."""
    return "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(20))


@dataclass
class Project:
    name: str
    ref: str
    status: str = "ACTIVE_HEALTHY"
    db_host: str = ""
    service_role_key: str = ""
    anon_key: str = ""
    created_at: str = ""
    region: str = "eu-central-1"

    def listed(self) -> dict[str, Any]:
        return {"id": self.ref, "ref": self.ref, "organization_id": "stand-in-org",
                "organization_slug": "stand-in-org", "name": self.name, "region": self.region,
                "created_at": self.created_at, "status": self.status,
                "database": {"host": self.db_host or f"db.{self.ref}.supabase.co", "version": "15.8.1.085",
                             "postgres_engine": "15", "release_channel": "ga"}}


@dataclass
class Branch:
    name: str
    parent_ref: str
    ref: str
    id: str
    status: str
    db_host: str
    db_port: int
    db_user: str
    db_pass: str
    service_role_key: str
    anon_key: str
    is_default: bool = False
    git_branch: str | None = None
    created_at: str = ""
    #: Leave db_user/db_pass out of the detail answer (as for a token that may not read credentials).
    hide_credentials: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def listed(self) -> dict[str, Any]:
        out = {"id": self.id, "name": self.name, "project_ref": self.ref, "parent_project_ref": self.parent_ref,
               "is_default": self.is_default, "persistent": self.is_default, "status": self.status,
               "created_at": self.created_at, "updated_at": self.created_at, "with_data": False}
        if self.git_branch is not None:
            out["git_branch"] = self.git_branch
        return out

    def detail(self) -> dict[str, Any]:
        out: dict[str, Any] = {"ref": self.ref, "postgres_version": "15.8.1.085", "postgres_engine": "15",
                               "release_channel": "ga", "status": "ACTIVE_HEALTHY", "db_host": self.db_host,
                               "db_port": self.db_port, "jwt_secret": f"stand-in-jwt-{self.ref}"}
        if not self.hide_credentials:
            out |= {"db_user": self.db_user, "db_pass": self.db_pass}
        return out | self.extra


@dataclass(frozen=True)
class Recorded:
    """One request as the stand-in received it (header names lower-cased)."""

    method: str
    path: str
    headers: dict[str, str]
    status: int


def connection_of(url: str) -> tuple[str, int, str]:
    """(host, port, user) of a libpq URL such as localdb's `postgresql://postgres@/postgres?host=DIR&port=N`."""
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    host = query["host"][0] if "host" in query else (parts.hostname or "127.0.0.1")
    port = int(query["port"][0]) if "port" in query else (parts.port or 5432)
    return host, port, unquote(parts.username or "postgres")


class ManagementApiStandIn(ApiStandIn):
    thread_name = "management-api-stand-in"

    def __init__(self, token: str, *, rate_limit: int = 120, rate_window: float = 60.0) -> None:
        self.token = token
        self.projects: dict[str, Project] = {}
        self.branches: dict[str, Branch] = {}  # by branch ref
        self._failures: list[tuple[int, str | None, float | None]] = []  # (status, path part, retry-after)
        self._created = 0
        super().__init__(rate_limit=rate_limit, rate_window=rate_window)

    # -- control -------------------------------------------------------------------------------------

    def __repr__(self) -> str:
        return f"ManagementApiStandIn(url={self.url!r}, projects={len(self.projects)}, branches={len(self.branches)})"

    def _next_created_at(self) -> str:
        self._created += 1
        return (_EPOCH + timedelta(minutes=self._created)).isoformat().replace("+00:00", "Z")

    def add_project(self, name: str, *, ref: str | None = None, status: str = "ACTIVE_HEALTHY",
                    db_host: str = "") -> Project:
        """A project (`db_host` is what /v1/projects reports as its database host)."""
        with self._lock:
            ref = ref or new_ref()
            project = Project(name, ref, status, db_host, service_role_key=f"stand-in-service-{secrets.token_hex(8)}",
                              anon_key=f"stand-in-anon-{secrets.token_hex(8)}", created_at=self._next_created_at())
            self.projects[ref] = project
            return project

    def add_branch(self, parent_ref: str, name: str, *, url: str | None = None, status: str = "MIGRATIONS_PASSED",
                   db_host: str = "127.0.0.1", db_port: int = 5432, db_user: str = "postgres",
                   db_pass: str | None = None, ref: str | None = None, is_default: bool = False,
                   git_branch: str | None = None, hide_credentials: bool = False) -> Branch:
        """A branch of `parent_ref` whose database is at `url` (a localdb URL) or db_host/db_port/db_user."""
        if url is not None:
            db_host, db_port, db_user = connection_of(url)
        with self._lock:
            if parent_ref not in self.projects:
                raise KeyError(f"no project {parent_ref}: add_project first")
            ref = ref or (parent_ref if is_default else new_ref())
            project = self.projects[parent_ref]
            same = ref == parent_ref  # the default branch is the project itself: the same keys
            branch = Branch(name=name, parent_ref=parent_ref, ref=ref, id=str(uuid.uuid4()), status=status,
                            db_host=db_host, db_port=db_port, db_user=db_user,
                            db_pass=db_pass or f"stand-in-db-pass-{secrets.token_hex(8)}",
                            service_role_key=project.service_role_key if same else f"stand-in-service-{secrets.token_hex(8)}",
                            anon_key=project.anon_key if same else f"stand-in-anon-{secrets.token_hex(8)}",
                            is_default=is_default,
                            git_branch=git_branch, created_at=self._next_created_at(),
                            hide_credentials=hide_credentials)
            self.branches[ref] = branch
            return branch

    def remove_branch(self, ref: str) -> None:
        with self._lock:
            self.branches.pop(ref, None)

    def set_status(self, ref: str, status: str) -> None:
        with self._lock:
            self.branches[ref].status = status

    def fail_next(self, n: int, status: int = 429, *, path: str | None = None,
                  retry_after: float | None = None) -> None:
        """The next n requests (whose path contains `path`, if given) answer `status`."""
        with self._lock:
            self._failures.extend([(status, path, retry_after)] * n)

    def calls(self, path_part: str | None = None) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if path_part is None or path_part in r.path]

    # -- the server ----------------------------------------------------------------------------------

    def _record(self, method: str, path: str, headers: dict[str, str], raw: bytes, status: int) -> Recorded:
        return Recorded(method, path, headers, status)

    def _answer(self, method: str, path: str, headers: dict[str, str], raw: bytes, allowed: bool,
                reset: int) -> tuple[int, Any, dict[str, str]]:
        """(status, JSON payload, extra headers). Caller holds the lock."""
        for i, (status, only, retry_after) in enumerate(self._failures):
            if only is None or only in path:
                del self._failures[i]
                if retry_after is None and status == 429:
                    retry_after = 0
                extra = {"retry-after": seconds_text(retry_after)} if retry_after is not None else {}
                return status, {"message": "injected failure"}, extra
        if not allowed:
            return 429, {"message": "Too many requests"}, {"retry-after": str(reset)}
        if headers.get("authorization") != f"Bearer {self.token}" or not self.token:
            return 401, {"message": "Unauthorized"}, {}
        if method != "GET":
            return 405, {"message": "Method not allowed"}, {}
        parts = urlsplit(path).path.strip("/").split("/")
        if parts == ["v1", "projects"]:
            return 200, [p.listed() for p in self.projects.values()], {}
        if len(parts) == 3 and parts[:2] == ["v1", "branches"]:
            branch = self._branch(parts[2])
            return (200, branch.detail(), {}) if branch else (404, {"message": "Branch not found"}, {})
        if len(parts) < 3 or parts[:2] != ["v1", "projects"]:
            return 404, {"message": "Not found"}, {}
        ref, rest = parts[2], parts[3:]
        if rest == []:
            project = self.projects.get(ref)
            return (200, project.listed(), {}) if project else (404, {"message": "Project not found"}, {})
        if rest == ["branches"]:
            if ref not in self.projects:
                return 404, {"message": "Project not found"}, {}
            return 200, [b.listed() for b in self.branches.values() if b.parent_ref == ref], {}
        if rest == ["api-keys"]:
            keys = self._keys(ref)
            if keys is None:
                return 404, {"message": "Project not found"}, {}
            anon, service = keys
            return 200, [{"name": "anon", "api_key": anon, "id": "anon", "type": "legacy"},
                         {"name": "service_role", "api_key": service, "id": "service_role", "type": "legacy"}], {}
        return 404, {"message": "Not found"}, {}

    def _branch(self, id_or_ref: str) -> Branch | None:
        if id_or_ref in self.branches:
            return self.branches[id_or_ref]
        return next((b for b in self.branches.values() if b.id == id_or_ref), None)

    def _keys(self, ref: str) -> tuple[str, str] | None:
        branch = self.branches.get(ref)
        if branch is not None:
            return branch.anon_key, branch.service_role_key
        project = self.projects.get(ref)
        return (project.anon_key, project.service_role_key) if project is not None else None

