"""Finding the reviewed plan of a merged pull request, against the fake GitHub API over real HTTP."""

from __future__ import annotations

import pytest

from action import reviewed_plan
from action.github_api import GitHub, GitHubError
from tests.gitops.fake_github import REPO, TOKEN, plan_zip, serve

WORKFLOW = 42
ARTIFACT = "reconcile-plan-scheduler.yaml"
DOC = {"format_version": "1", "changes": [{"kind": "job", "key": "a", "action": "create"}], "live_fingerprint": "f"}


@pytest.fixture
def fake():
    with serve() as fake:
        yield fake


def _gh(fake) -> GitHub:
    return GitHub(fake.url, TOKEN, REPO)


def test_the_last_successful_run_of_the_merged_head_gives_the_plan(fake):
    fake.add_merged_pull("merge1", 12, "head1")
    fake.add_run(WORKFLOW, "head0", artifacts={ARTIFACT: plan_zip({**DOC, "changes": []})})  # an earlier push
    fake.add_run(WORKFLOW, "head1", created_at="2026-12-07T10:00:00Z", artifacts={ARTIFACT: plan_zip({**DOC, "changes": ["older"]})})
    newest = fake.add_run(WORKFLOW, "head1", created_at="2026-12-07T11:30:00Z", artifacts={ARTIFACT: plan_zip(DOC)})
    fake.add_run(WORKFLOW, "head1", created_at="2026-12-07T11:45:00Z", conclusion="failure",
                 artifacts={ARTIFACT: plan_zip({**DOC, "changes": ["failed"]})})
    fake.add_run(7, "head1", created_at="2026-12-07T11:50:00Z", artifacts={ARTIFACT: plan_zip({**DOC, "changes": ["other workflow"]})})
    found = reviewed_plan.find_reviewed(_gh(fake), "merge1", WORKFLOW, ARTIFACT)
    assert (found.pull_request, found.head_sha, found.run_id) == (12, "head1", newest)
    assert reviewed_plan.fetch_reviewed_plan(_gh(fake), found) == DOC
    # the archive URL redirected to storage, which was asked without the token (it refuses one)
    assert any(p.startswith("/storage/") for _, p in fake.state.requests)


def test_a_commit_pushed_without_a_pull_request_has_no_reviewed_plan(fake):
    with pytest.raises(GitHubError, match="not the merge of a pull request"):
        reviewed_plan.find_reviewed(_gh(fake), "direct-push", WORKFLOW, ARTIFACT)


def test_a_pull_request_whose_last_commit_has_no_successful_plan_fails(fake):
    fake.add_merged_pull("merge2", 13, "head2")
    fake.add_run(WORKFLOW, "head2", conclusion="failure", artifacts={ARTIFACT: plan_zip(DOC)})
    with pytest.raises(GitHubError, match=r"#13 has no successful plan run for its last commit head2"):
        reviewed_plan.find_reviewed(_gh(fake), "merge2", WORKFLOW, ARTIFACT)


def test_a_run_without_the_manifests_artifact_fails(fake):
    fake.add_merged_pull("merge3", 14, "head3")
    fake.add_run(WORKFLOW, "head3", artifacts={"reconcile-plan-other.yaml": plan_zip(DOC)})
    with pytest.raises(GitHubError, match="has no artifact 'reconcile-plan-scheduler.yaml'"):
        reviewed_plan.find_reviewed(_gh(fake), "merge3", WORKFLOW, ARTIFACT)


def test_an_artifact_without_a_plan_fails(fake):
    fake.add_merged_pull("merge4", 15, "head4")
    fake.add_run(WORKFLOW, "head4", artifacts={ARTIFACT: b"not a zip"})
    found = reviewed_plan.find_reviewed(_gh(fake), "merge4", WORKFLOW, ARTIFACT)
    with pytest.raises(GitHubError, match="holds no readable plan.json"):
        reviewed_plan.fetch_reviewed_plan(_gh(fake), found)


@pytest.mark.parametrize(("reviewed", "fresh", "same"), [
    ({"changes": [1, 2]}, {"changes": [1, 2], "live_fingerprint": "other"}, True),
    ({"changes": [1, 2]}, {"changes": [1]}, False),
    ({"targets": {"a": {"plan": {"changes": [1]}, "error": None}}},
     {"targets": {"a": {"plan": {"changes": [1]}, "error": None, "duration_ms": 3}}}, True),
    ({"targets": {"a": {"plan": {"changes": [1]}, "error": None}}},
     {"targets": {"a": {"plan": None, "error": "cannot connect"}}}, False),
    ({"targets": {"a": {"plan": {"changes": [1]}, "error": None}}},
     {"targets": {"a": {"plan": {"changes": [1]}, "error": None}, "b": {"plan": {"changes": []}, "error": None}}},
     False),
], ids=["same-changes-other-state", "fewer-changes", "fleet-same", "fleet-target-failed", "fleet-new-target"])
def test_same_changes_compares_changes_only(reviewed, fresh, same):
    assert reviewed_plan.same_changes(reviewed, fresh) is same
