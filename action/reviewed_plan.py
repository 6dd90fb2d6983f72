"""On a push to the main branch: find the plan that was reviewed on the merged pull request.

commit ──/commits/{sha}/pulls──▶ the merged pull request ──head.sha──▶ its last successful run of this
workflow ──artifacts?name=──▶ the saved plan's zip ──▶ plan.json. Each miss is one clear error, never a
silent fallback to a fresh plan.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from typing import Any

from action.github_api import GitHub, GitHubError

__all__ = ["Reviewed", "fetch_reviewed_plan", "find_reviewed", "same_changes"]

PLAN_FILE = "plan.json"


@dataclass(frozen=True)
class Reviewed:
    pull_request: int
    head_sha: str
    run_id: int
    run_url: str
    artifact_id: int
    download_url: str


def _merged_pull_request(gh: GitHub, sha: str) -> dict[str, Any]:
    pulls = gh.request("GET", f"repos/{gh.repository}/commits/{sha}/pulls") or []
    merged = [p for p in pulls if p.get("merged_at") and p.get("merge_commit_sha") == sha]
    if not merged:
        raise GitHubError(f"commit {sha[:12]} is not the merge of a pull request: there is no reviewed plan "
                          "to apply (merge through a pull request whose plan was reviewed)")
    return merged[0]


def find_reviewed(gh: GitHub, sha: str, workflow_id: int, artifact: str) -> Reviewed:
    pull = _merged_pull_request(gh, sha)
    number, head = pull["number"], pull["head"]["sha"]
    runs = list(gh.paginate(f"repos/{gh.repository}/actions/workflows/{workflow_id}/runs",
                            {"event": "pull_request", "head_sha": head, "status": "success"}, key="workflow_runs"))
    if not runs:
        raise GitHubError(f"pull request #{number} has no successful plan run for its last commit "
                          f"{head[:12]}: push to it or re-run its plan, review, and merge again")
    run = max(runs, key=lambda r: (r.get("created_at") or "", r.get("run_attempt") or 0))
    artifacts = [a for a in gh.paginate(f"repos/{gh.repository}/actions/runs/{run['id']}/artifacts",
                                        {"name": artifact}, key="artifacts")
                 if a.get("name") == artifact and not a.get("expired")]
    if not artifacts:
        raise GitHubError(f"run {run['id']} of pull request #{number} has no artifact {artifact!r} (expired, "
                          "or the plan step did not save one): re-run the pull request's plan")
    found = artifacts[0]
    return Reviewed(number, head, run["id"], run.get("html_url", ""), found["id"], found["archive_download_url"])


def fetch_reviewed_plan(gh: GitHub, reviewed: Reviewed) -> dict[str, Any]:
    data = gh.download(reviewed.download_url)
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            document = json.loads(archive.read(PLAN_FILE))
    except (zipfile.BadZipFile, KeyError, ValueError) as e:
        raise GitHubError(f"artifact {reviewed.artifact_id} of run {reviewed.run_id} holds no readable "
                          f"{PLAN_FILE}: {e}") from None
    if not isinstance(document, dict):
        raise GitHubError(f"artifact {reviewed.artifact_id}: {PLAN_FILE} is not a plan document")
    return document


def _changes_by_target(document: dict[str, Any]) -> dict[str, Any] | None:
    """A saved plan's changes, or a fleet plan's per target; None when a target did not plan."""
    if "targets" not in document:
        return {"": document.get("changes")}
    out = {}
    for name, outcome in sorted((document.get("targets") or {}).items()):
        if outcome.get("error") or not outcome.get("plan"):
            return None
        out[name] = outcome["plan"].get("changes")
    return out


def same_changes(reviewed: dict[str, Any], fresh: dict[str, Any]) -> bool:
    """Whether a fresh plan makes exactly the reviewed plan's changes (every target's, for a fleet)."""
    a, b = _changes_by_target(reviewed), _changes_by_target(fresh)
    return a is not None and a == b
