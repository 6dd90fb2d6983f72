"""One pull-request comment per manifest (or fleet), found again by a hidden marker and edited in place.

The body is built here (pure: `comment_body`), then `post` finds the comment whose first line is the
marker and updates it, or creates it. A plan longer than a comment allows is cut at a line, with a note
that points at the job summary, which always holds the whole plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from action.github_api import GitHub

__all__ = ["COMMENT_LIMIT", "Posted", "comment_body", "cut", "find", "marker", "post"]

# GitHub refuses a comment body over 65,536 characters; the rest is room for the header and footer.
COMMENT_LIMIT = 65_000


def marker(key: str) -> str:
    """`<!-- scheduler-reconciler:plan:KEY -->`: the key made safe inside an HTML comment."""
    safe = re.sub(r"[^A-Za-z0-9._/+-]", "_", key).replace("--", "-_")
    return f"<!-- scheduler-reconciler:plan:{safe} -->"


def cut(text: str, limit: int) -> tuple[str, bool]:
    """At most `limit` characters of `text`, cut at a line end; an open code fence is closed."""
    if len(text) <= limit:
        return text, False
    kept = text[:limit].rsplit("\n", 1)[0]
    if sum(1 for line in kept.splitlines() if line.lstrip().startswith("```")) % 2:
        kept += "\n```"
    return kept, True


def comment_body(key: str, title: str, plan_markdown: str, *, footer: str, summary_url: str,
                 limit: int = COMMENT_LIMIT) -> str:
    head = f"{marker(key)}\n### {title}\n\n"
    tail = f"\n\n<sub>{footer}</sub>\n"
    note_room = 300
    room = max(limit - len(head) - len(tail) - note_room, 0)
    shown, was_cut = cut(plan_markdown.rstrip("\n"), room)
    if was_cut:
        shown += (f"\n\n> [!NOTE]\n> The plan is too long for a comment: {len(shown):,} of "
                  f"{len(plan_markdown):,} characters shown. The whole plan is in the "
                  f"[job summary]({summary_url}).")
    return head + shown + tail


@dataclass(frozen=True)
class Posted:
    comment_id: int
    url: str
    created: bool


def find(gh: GitHub, issue: int, key: str) -> dict | None:
    """The pull request's comment whose first line is this key's marker (the oldest if several)."""
    wanted = marker(key)
    for comment in gh.paginate(f"repos/{gh.repository}/issues/{issue}/comments"):
        if (comment.get("body") or "").split("\n", 1)[0].strip() == wanted:
            return comment
    return None


def post(gh: GitHub, issue: int, key: str, body: str) -> Posted:
    existing = find(gh, issue, key)
    if existing is None:
        made = gh.request("POST", f"repos/{gh.repository}/issues/{issue}/comments", {"body": body})
        return Posted(made["id"], made.get("html_url", ""), True)
    if existing.get("body") != body:
        existing = gh.request("PATCH", f"repos/{gh.repository}/issues/comments/{existing['id']}", {"body": body})
    return Posted(existing["id"], existing.get("html_url", ""), False)
