"""verify's results as text (for people), JSON (for tools) and Markdown (for pull-request comments)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence

from reconciler.verify.checks import exit_code
from reconciler.verify.evidence import FORMAT_VERSION, CheckResult, Status

# ---------------------------------------------------------------------------------------------------
# Rendering

_LABELS = {Status.PASS: "PASS", Status.WARN: "WARN", Status.FAIL: "FAIL", Status.SKIP: "SKIP"}


def _counts(results: Sequence[CheckResult]) -> dict[str, int]:
    c = Counter(r.status for r in results)
    return {s.value: c.get(s, 0) for s in Status}


def _tally(results: Sequence[CheckResult]) -> str:
    c = _counts(results)
    return f"{c['pass']} passed, {c['warn']} warning(s), {c['fail']} failed, {c['skip']} skipped"


def to_text(results: Sequence[CheckResult]) -> str:
    out = []
    for r in results:
        out.append(f"{_LABELS[r.status]}  {r.name}: {r.summary}")
        out += [f"      - {line}" for line in r.evidence]
        if r.fix and r.status in (Status.FAIL, Status.WARN):
            first, *rest = r.fix.splitlines()
            out.append(f"      fix: {first}")
            out += [f"        {line}" for line in rest]
    verdict = "FAILED" if exit_code(results) else "OK"
    out.append(f"\nverify {verdict}: {_tally(results)}")
    return "\n".join(out) + "\n"


def to_json(results: Sequence[CheckResult]) -> str:
    doc = {"format_version": FORMAT_VERSION, "ok": exit_code(results) == 0, "counts": _counts(results),
           "checks": [r.as_dict() for r in results]}
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def to_markdown(results: Sequence[CheckResult]) -> str:
    icons = {Status.PASS: "✅ pass", Status.WARN: "⚠️ warn", Status.FAIL: "❌ fail", Status.SKIP: "➖ skip"}
    out = [f"### reconcile verify: {'failed' if exit_code(results) else 'ok'}", "", f"{_tally(results)}", "",
           "| status | check | summary |", "|---|---|---|"]
    out += [f"| {icons[r.status]} | {_md(r.name)} | {_md(r.summary)} |" for r in results]
    details = [r for r in results if r.status in (Status.FAIL, Status.WARN)]
    for r in details:
        out += ["", f"<details><summary>{_md(r.name)}: {_md(r.summary)}</summary>", ""]
        out += [f"- {_md(line)}" for line in r.evidence]
        if r.fix:
            out += ["", "**Fix:**", "", "```", r.fix, "```"]
        out += ["", "</details>"]
    return "\n".join(out) + "\n"
