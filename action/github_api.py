"""A minimal GitHub REST client over urllib: the base URL is GITHUB_API_URL (tests point it at a fake).

Only what the action needs: JSON requests with the workflow's token, Link-header pagination, and a
download that follows the artifact redirect without forwarding the token to the storage host.
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from typing import Any

__all__ = ["GitHub", "GitHubError"]

_NEXT = re.compile(r'<([^>]+)>;\s*rel="next"')


class GitHubError(Exception):
    """An API call failed: the one line the action prints as its error."""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
        return None


class GitHub:
    def __init__(self, api_url: str, token: str, repository: str, *, timeout: float = 30.0) -> None:
        if not token:
            raise GitHubError("no GitHub token: pass the action's github-token input (default github.token)")
        self.api_url = api_url.rstrip("/")
        self.repository = repository
        self._token = token
        self._timeout = timeout

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token}", "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": "2022-11-28", "User-Agent": "scheduler-reconciler-action"}

    def _url(self, path: str, params: dict[str, Any] | None = None) -> str:
        url = path if path.startswith(("http://", "https://")) else f"{self.api_url}/{path.lstrip('/')}"
        if params:
            url += ("&" if "?" in url else "?") + urllib.parse.urlencode(params)
        return url

    def _send(self, method: str, url: str, body: Any = None) -> tuple[Any, dict[str, str]]:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, method=method, headers=self._headers())
        if data is not None:
            request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as response:
                raw = response.read()
                headers = {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")[:300]
            raise GitHubError(f"GitHub API {method} {url} failed: HTTP {e.code} {detail}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise GitHubError(f"GitHub API {method} {url} failed: {getattr(e, 'reason', e)}") from None
        return (json.loads(raw) if raw else None), headers

    def request(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        return self._send(method, self._url(path, params), body)[0]

    def paginate(self, path: str, params: dict[str, Any] | None = None, *, key: str | None = None) -> Iterator[Any]:
        """Every item of a listing, page by page (per_page=100), following the Link header's rel=next."""
        url: str | None = self._url(path, {"per_page": 100, **(params or {})})
        while url:
            page, headers = self._send("GET", url)
            yield from (page[key] if key else page)
            match = _NEXT.search(headers.get("link", ""))
            url = match.group(1) if match else None

    def download(self, path: str) -> bytes:
        """GET a file; a redirect is followed once without the token (artifact storage is pre-signed)."""
        opener = urllib.request.build_opener(_NoRedirect)
        url = self._url(path)
        try:
            with opener.open(urllib.request.Request(url, headers=self._headers()), timeout=self._timeout) as r:
                return bytes(r.read())
        except urllib.error.HTTPError as e:
            if e.code not in (301, 302, 303, 307, 308) or not e.headers.get("Location"):
                raise GitHubError(f"GitHub API GET {url} failed: HTTP {e.code}") from None
            location = urllib.parse.urljoin(url, e.headers["Location"])
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise GitHubError(f"GitHub API GET {url} failed: {getattr(e, 'reason', e)}") from None
        try:
            with urllib.request.urlopen(urllib.request.Request(location), timeout=self._timeout) as r:
                return bytes(r.read())
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise GitHubError(f"downloading {urllib.parse.urlsplit(location).path} failed: "
                              f"{getattr(e, 'reason', e)}") from None
