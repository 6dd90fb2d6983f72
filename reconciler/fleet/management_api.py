"""A small read-only client for the Supabase Management API endpoints the fleet's generators use (I/O edge).

GET /v1/projects, /v1/projects/{ref}/branches, /v1/branches/{id} and /v1/projects/{ref}/api-keys (the
facts relied on: docs/upstream.md, "The Management API"). Timeouts, retries, rate limits and refusals
without the token or a body are the base's (`kinds/api_client.py`): answers hold credentials (database
passwords, service keys), so no message ever quotes an answer's body.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import httpx

from reconciler.errors import ReconcilerError
from reconciler.kinds.api_client import ApiClient, Refusal

if TYPE_CHECKING:
    from reconciler.fleet.generator_cache import RequestPacer

#: Enough for a slow answer, short enough that a dead API does not hold a fleet refresh for minutes.
TIMEOUT_SECONDS = 10.0
MAX_ATTEMPTS = 4


class ManagementApiError(ReconcilerError):
    """The Management API refused or failed (one line, never a body or a token); retryable for 429/5xx."""


class ManagementApi(ApiClient):
    """GETs JSON from the Management API with one access token."""

    error = ManagementApiError
    token_hint = "check the variable named by access_token_env"

    def __init__(self, api_url: str, token: str, *, timeout: float = TIMEOUT_SECONDS,
                 max_attempts: int = MAX_ATTEMPTS, sleep: Callable[[float], None] = time.sleep,
                 transport: httpx.BaseTransport | None = None, pacer: RequestPacer | None = None) -> None:
        super().__init__(api_url, token, timeout=timeout, max_attempts=max_attempts, sleep=sleep,
                         transport=transport, pacer=pacer)

    def __enter__(self) -> ManagementApi:
        return self

    def projects(self) -> list[Mapping[str, Any]]:
        """Every project the token can see (not paginated: the API returns one list)."""
        return self._list("/v1/projects", "projects")

    def branches(self, project_ref: str) -> list[Mapping[str, Any]]:
        """The branches of a project (not paginated)."""
        return self._list(f"/v1/projects/{project_ref}/branches", f"branches of project {project_ref}",
                          not_found=f"unknown project ref {project_ref}, or branching is not enabled on it")

    def branch(self, branch_id: str) -> Mapping[str, Any]:
        """One branch's connection details (db_host, db_port, db_user, db_pass, ref, status)."""
        body = self._get(f"/v1/branches/{branch_id}", f"branch {branch_id}", not_found=f"unknown branch {branch_id}")
        if not isinstance(body, Mapping):
            raise ManagementApiError(f"unexpected answer from the Management API (branch {branch_id} is not an object)")
        return body

    def api_keys(self, project_ref: str) -> dict[str, str]:
        """The project's API keys by role: "anon" and "service_role" (legacy names, or the new key types)."""
        body = self._list(f"/v1/projects/{project_ref}/api-keys?reveal=true", f"API keys of project {project_ref}",
                          not_found=f"unknown project ref {project_ref}")
        # The legacy keys (JWTs, named by role) first: what a trigger sends as `Authorization: Bearer`
        # must be a JWT; the newer publishable/secret keys only when a project has no legacy ones.
        keys: dict[str, str] = {}
        for by, roles in (("name", {"anon": "anon", "service_role": "service_role"}),
                          ("type", {"publishable": "anon", "secret": "service_role"})):
            for item in body:
                key, role = item.get("api_key"), roles.get(str(item.get(by)))
                if role and isinstance(key, str) and key and role not in keys:
                    keys[role] = key
        return keys

    def _list(self, path: str, what: str, *, not_found: str = "") -> list[Mapping[str, Any]]:
        body = self._get(path, what, not_found=not_found)
        if not isinstance(body, list) or not all(isinstance(item, Mapping) for item in body):
            raise ManagementApiError(f"unexpected answer from the Management API ({what} is not a list of objects)")
        return body

    def _get(self, path: str, what: str, *, not_found: str = "") -> Any:
        response = self.request(
            "GET", path, what,
            forbidden=Refusal(f"the access token may not read {what}",
                              "use a token of a member of the project's organization"),
            not_found=Refusal(not_found) if not_found else None)
        try:
            return response.json()
        except ValueError:  # not JSON (a proxy's HTML page...): one line, not a traceback
            raise ManagementApiError(f"unexpected answer from the Management API ({what} is not JSON)",
                                     retryable=True) from None
