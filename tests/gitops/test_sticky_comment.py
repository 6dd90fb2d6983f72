"""The sticky plan comment against the fake GitHub API over real HTTP: create, find, update, cut, pages."""

from __future__ import annotations

import pytest

from action import sticky_comment
from action.github_api import GitHub, GitHubError
from tests.gitops.fake_github import REPO, TOKEN, serve


@pytest.fixture
def fake():
    with serve() as fake:
        yield fake


def _gh(fake) -> GitHub:
    return GitHub(fake.url, TOKEN, REPO)


def _body(key: str, plan: str, limit: int = sticky_comment.COMMENT_LIMIT) -> str:
    return sticky_comment.comment_body(key, f"plan {key}", plan, footer="commit abc", summary_url="https://run/1",
                                       limit=limit)


def test_the_first_post_creates_and_the_next_updates_the_same_comment(fake):
    gh = _gh(fake)
    fake.add_comment(7, "a reviewer's comment")
    first = sticky_comment.post(gh, 7, "scheduler.yaml", _body("scheduler.yaml", "1 to create"))
    second = sticky_comment.post(gh, 7, "scheduler.yaml", _body("scheduler.yaml", "2 to create"))
    assert first.created and not second.created and first.comment_id == second.comment_id
    bodies = [c["body"] for c in fake.state.comments[7]]
    assert len(bodies) == 2 and bodies[0] == "a reviewer's comment"
    assert bodies[1].splitlines()[0] == "<!-- scheduler-reconciler:plan:scheduler.yaml -->"
    assert "2 to create" in bodies[1] and "1 to create" not in bodies[1]
    assert ("PATCH", f"/repos/{REPO}/issues/comments/{first.comment_id}") in fake.state.requests


def test_an_unchanged_plan_does_not_edit_the_comment(fake):
    gh = _gh(fake)
    sticky_comment.post(gh, 7, "a", _body("a", "same"))
    sticky_comment.post(gh, 7, "a", _body("a", "same"))
    assert not [r for r in fake.state.requests if r[0] == "PATCH"]


def test_each_manifest_or_fleet_has_its_own_comment(fake):
    gh = _gh(fake)
    for key in ("scheduler.yaml", "staging/scheduler.yaml", "fleet:targets.yaml", "scheduler.yaml"):
        sticky_comment.post(gh, 3, key, _body(key, f"plan of {key}"))
    firsts = [c["body"].splitlines()[0] for c in fake.state.comments[3]]
    assert firsts == [sticky_comment.marker(k) for k in ("scheduler.yaml", "staging/scheduler.yaml", "fleet:targets.yaml")]


def test_the_marker_is_found_past_the_first_page_of_comments(fake):
    gh = _gh(fake)
    made = sticky_comment.post(gh, 9, "a", _body("a", "old"))
    for n in range(230):  # three pages of 100
        fake.add_comment(9, f"chatter {n}")
    again = sticky_comment.post(gh, 9, "a", _body("a", "new"))
    assert again.comment_id == made.comment_id and not again.created
    fake.state.comments[9].append(fake.state.comments[9].pop(0))  # now the marker is on the last page
    last = sticky_comment.post(gh, 9, "a", _body("a", "newer"))
    assert last.comment_id == made.comment_id
    pages = [p for m, p in fake.state.requests if m == "GET" and "/issues/9/comments" in p]
    assert any("page=3" in p for p in pages)
    assert len(fake.state.comments[9]) == 231


def test_a_marker_quoted_inside_another_comment_is_not_the_sticky_one(fake):
    gh = _gh(fake)
    fake.add_comment(5, "why does it say\n" + sticky_comment.marker("a"))
    posted = sticky_comment.post(gh, 5, "a", _body("a", "plan"))
    assert posted.created and len(fake.state.comments[5]) == 2


def test_a_too_long_plan_is_cut_at_a_line_with_a_note_and_a_closed_fence():
    plan = "## Plan\n\n```diff\n" + "\n".join(f"+ job_{n}: schedule '*/5 * * * *'" for n in range(5000)) + "\n```\n"
    body = _body("a", plan, limit=4000)
    assert len(body) <= 4000
    assert "too long for a comment" in body and "[job summary](https://run/1)" in body
    shown = body.split("```diff\n", 1)[1].split("\n```", 1)[0].splitlines()
    assert shown and all(line.startswith("+ job_") and line.endswith("'") for line in shown)
    assert body.count("```") % 2 == 0


def test_a_short_plan_is_whole_and_has_no_note():
    body = _body("a", "No changes.")
    assert "No changes." in body and "too long" not in body


def test_a_cut_plan_fits_githubs_limit_through_the_fake(fake):
    plan = "\n".join("x" * 99 for _ in range(2000))  # 200,000 characters
    body = _body("big", plan)
    assert len(body) <= 65_536
    sticky_comment.post(_gh(fake), 1, "big", body)
    assert "too long" in fake.state.comments[1][0]["body"]


def test_a_wrong_token_is_one_clear_error(fake):
    with pytest.raises(GitHubError, match="HTTP 401"):
        sticky_comment.post(GitHub(fake.url, "wrong", REPO), 1, "a", "body")
    with pytest.raises(GitHubError, match="no GitHub token"):
        GitHub(fake.url, "", REPO)
