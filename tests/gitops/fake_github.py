"""A local stand-in of the GitHub REST API, over real HTTP, for the action's module (action/).

It keeps issue comments (paginated with a Link header, like GitHub), the pull requests of merge commits,
workflow runs, run artifacts (zip files) behind an archive URL that redirects to a "storage" path which
refuses the API token, as pre-signed storage URLs do. Every request is recorded.
"""

from __future__ import annotations

import io
import json
import re
import threading
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

TOKEN = "ghs_fake-token-for-tests"
REPO = "acme/scheduler"


@dataclass
class State:
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    pulls_of_commit: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    runs: list[dict[str, Any]] = field(default_factory=list)
    artifacts: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    blobs: dict[str, bytes] = field(default_factory=dict)
    requests: list[tuple[str, str]] = field(default_factory=list)
    next_id: int = 1000

    def new_id(self) -> int:
        self.next_id += 1
        return self.next_id


def plan_zip(document: dict[str, Any]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("plan.json", json.dumps(document))
        archive.writestr("plan.md", "the plan")
    return out.getvalue()


class FakeGitHub:
    def __init__(self) -> None:
        self.state = State()
        self.url = ""

    # -- setting the scene --------------------------------------------------------------------------------

    def add_comment(self, issue: int, body: str, user: str = "someone") -> dict[str, Any]:
        comment = {"id": self.state.new_id(), "body": body, "user": {"login": user},
                   "html_url": f"https://github.test/{REPO}/pull/{issue}#issuecomment-{self.state.next_id}"}
        self.state.comments.setdefault(issue, []).append(comment)
        return comment

    def add_merged_pull(self, merge_sha: str, number: int, head_sha: str) -> None:
        self.state.pulls_of_commit.setdefault(merge_sha, []).append(
            {"number": number, "merged_at": "2026-12-07T12:00:00Z", "merge_commit_sha": merge_sha,
             "head": {"sha": head_sha}})

    def add_run(self, workflow_id: int, head_sha: str, *, event: str = "pull_request", conclusion: str = "success",
                created_at: str = "2026-12-07T11:00:00Z", artifacts: dict[str, bytes] | None = None) -> int:
        run_id = self.state.new_id()
        self.state.runs.append({"id": run_id, "workflow_id": workflow_id, "head_sha": head_sha, "event": event,
                                "conclusion": conclusion, "status": "completed", "created_at": created_at,
                                "run_attempt": 1, "html_url": f"https://github.test/{REPO}/actions/runs/{run_id}"})
        for name, data in (artifacts or {}).items():
            artifact_id = self.state.new_id()
            self.state.blobs[str(artifact_id)] = data
            self.state.artifacts.setdefault(run_id, []).append(
                {"id": artifact_id, "name": name, "expired": False,
                 "archive_download_url": f"{self.url}/repos/{REPO}/actions/artifacts/{artifact_id}/zip"})
        return run_id

    # -- the server ---------------------------------------------------------------------------------------

    def handle(self, method: str, path: str, query: dict[str, str], body: Any, auth: str | None) -> tuple[int, Any, dict[str, str]]:
        s = self.state
        if path.startswith("/storage/"):
            if auth:
                return 400, {"message": "storage refuses an Authorization header"}, {}
            return 200, s.blobs[path.rsplit("/", 1)[1]], {}
        if auth != f"Bearer {TOKEN}":
            return 401, {"message": "Bad credentials"}, {}
        prefix = f"/repos/{REPO}"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found"}, {}
        rest = path[len(prefix):]
        if m := re.fullmatch(r"/issues/(\d+)/comments", rest):
            issue = int(m[1])
            if method == "GET":
                return self._page(s.comments.get(issue, []), query, path)
            if method == "POST":
                return 201, self.add_comment(issue, body["body"], user="github-actions[bot]"), {}
        if (m := re.fullmatch(r"/issues/comments/(\d+)", rest)) and method == "PATCH":
            for comments in s.comments.values():
                for comment in comments:
                    if comment["id"] == int(m[1]):
                        comment["body"] = body["body"]
                        return 200, comment, {}
            return 404, {"message": "Not Found"}, {}
        if (m := re.fullmatch(r"/commits/([^/]+)/pulls", rest)) and method == "GET":
            return 200, s.pulls_of_commit.get(m[1], []), {}
        if (m := re.fullmatch(r"/actions/runs/(\d+)", rest)) and method == "GET":
            run = next((r for r in s.runs if r["id"] == int(m[1])), None)
            return (200, run, {}) if run else (404, {"message": "Not Found"}, {})
        if (m := re.fullmatch(r"/actions/workflows/(\d+)/runs", rest)) and method == "GET":
            runs = [r for r in s.runs if r["workflow_id"] == int(m[1])
                    and all(r[k] == query[q] for q, k in (("event", "event"), ("head_sha", "head_sha"),
                                                          ("status", "conclusion")) if q in query)]
            status, page, headers = self._page(runs, query, path)
            return status, {"total_count": len(runs), "workflow_runs": page}, headers
        if (m := re.fullmatch(r"/actions/runs/(\d+)/artifacts", rest)) and method == "GET":
            found = [a for a in s.artifacts.get(int(m[1]), []) if "name" not in query or a["name"] == query["name"]]
            status, page, headers = self._page(found, query, path)
            return status, {"total_count": len(found), "artifacts": page}, headers
        if (m := re.fullmatch(r"/actions/artifacts/(\d+)/zip", rest)) and method == "GET":
            return 302, b"", {"Location": f"{self.url}/storage/{m[1]}"}
        return 404, {"message": "Not Found"}, {}

    def _page(self, items: list[Any], query: dict[str, str], path: str) -> tuple[int, Any, dict[str, str]]:
        per_page, page = int(query.get("per_page", 30)), int(query.get("page", 1))
        chunk = items[(page - 1) * per_page: page * per_page]
        headers = {}
        if page * per_page < len(items):
            rest = "&".join(f"{k}={v}" for k, v in query.items() if k != "page")
            headers["Link"] = f'<{self.url}{path}?{rest}&page={page + 1}>; rel="next"'
        return 200, chunk, headers


@contextmanager
def serve() -> Iterator[FakeGitHub]:
    fake = FakeGitHub()

    class Handler(BaseHTTPRequestHandler):
        def _do(self) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length)) if length else None
            fake.state.requests.append((self.command, self.path))
            status, payload, headers = fake.handle(self.command, parts.path, query, body,
                                                   self.headers.get("Authorization"))
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _do

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
