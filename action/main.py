"""The action's one step: run `reconcile` for the chosen command and report it the GitHub way.

Inputs arrive as INPUT_* variables (action.yml maps them), the reconciler's executable as RECONCILE.
- validate / verify: run it, put the output in the job summary.
- plan: `--dry-run --format markdown --detailed-exitcode` plus the saved plan (`--out`, or the fleet's
  JSON plan), the whole plan in the job summary, one sticky comment on the pull request; the saved plan's
  directory is an output for the artifact upload that follows in action.yml.
- apply: the reviewed plan of the merged pull request (reviewed_plan), applied with `--apply FILE`; a stale
  one fails asking for a new plan, unless apply-fresh-if-same allows a fresh plan with the same changes.
Outputs: exit-code, has-changes, plan-markdown, plan-json, plan-dir, artifact-name, comment-url.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script by action.yml: `python .../action/main.py`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from action import reviewed_plan, sticky_comment
from action.github_api import GitHub, GitHubError

COMMANDS = ("validate", "plan", "apply", "verify")
STALE = "saved plan is stale"


@dataclass(frozen=True)
class Inputs:
    command: str
    files: tuple[str, ...]
    targets: str
    name: str
    comment: bool
    lock_timeout: str
    apply_fresh_if_same: bool
    plan_file: str
    artifact_prefix: str

    @classmethod
    def from_env(cls, env: dict[str, str]) -> Inputs:
        def get(name: str, default: str = "") -> str:
            return env.get(f"INPUT_{name}", default).strip()

        command = get("COMMAND", "plan")
        if command not in COMMANDS:
            raise GitHubError(f"input command: {command!r} is not one of {', '.join(COMMANDS)}")
        targets = get("TARGETS")
        if command == "verify" and targets:
            raise GitHubError("input targets: verify checks one database; give its manifest files instead")
        files = tuple(get("FILES").split()) or (() if targets else ("scheduler.yaml",))
        return cls(command, files, targets, get("NAME"), get("COMMENT", "true") == "true",
                   get("LOCK_TIMEOUT", "300"), get("APPLY_FRESH_IF_SAME", "false") == "true",
                   get("PLAN_FILE"), get("ARTIFACT_PREFIX", "reconcile-plan"))

    @property
    def key(self) -> str:
        """Which sticky comment and artifact: the name input, else the targets file or the manifest files."""
        return self.name or (f"fleet:{self.targets}" if self.targets else "+".join(self.files))

    @property
    def artifact(self) -> str:
        return f"{self.artifact_prefix}-{re.sub(r'[^A-Za-z0-9._-]+', '_', self.key)}"

    def manifest_args(self) -> list[str]:
        args = [a for f in self.files for a in ("-f", f)]
        return args + (["--targets", self.targets] if self.targets else [])


class Action:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.inputs = Inputs.from_env(env)
        self.reconcile = env.get("RECONCILE", "reconcile")
        self.workdir = Path(env.get("RUNNER_TEMP", "/tmp")) / "scheduler-reconciler" / self.inputs.artifact
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.outputs: dict[str, str] = {}

    # -- the GitHub side ----------------------------------------------------------------------------------

    def github(self) -> GitHub:
        return GitHub(self.env.get("GITHUB_API_URL", "https://api.github.com"), self.env.get("INPUT_GITHUB_TOKEN", ""),
                      self.env.get("GITHUB_REPOSITORY", ""))

    @property
    def run_url(self) -> str:
        server = self.env.get("GITHUB_SERVER_URL", "https://github.com")
        return f"{server}/{self.env.get('GITHUB_REPOSITORY', '')}/actions/runs/{self.env.get('GITHUB_RUN_ID', '')}"

    def pull_request(self) -> tuple[int, str] | None:
        """The pull request's number and head commit (what the plan run is found by on merge), if any."""
        path = self.env.get("GITHUB_EVENT_PATH")
        if not path or not Path(path).is_file():
            return None
        pull = json.loads(Path(path).read_text()).get("pull_request") or {}
        if not pull.get("number"):
            return None
        return int(pull["number"]), (pull.get("head") or {}).get("sha") or self.env.get("GITHUB_SHA", "")

    def summary(self, text: str) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if path:
            shown, was_cut = sticky_comment.cut(text, 1_000_000)  # the summary's own limit is 1 MiB
            with open(path, "a", encoding="utf-8") as f:
                f.write(shown + ("\n\n(cut: the whole plan is in the plan artifact)\n" if was_cut else "\n"))

    def write_outputs(self) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if path:
            with open(path, "a", encoding="utf-8") as f:
                f.writelines(f"{k}={v}\n" for k, v in self.outputs.items())

    # -- the reconciler side ------------------------------------------------------------------------------

    def run_reconcile(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [self.reconcile, *args]
        print(f"$ {shlex.join(argv)}", flush=True)
        result = subprocess.run(argv, capture_output=True, text=True)
        sys.stderr.write(result.stderr)
        return result

    def validate_or_verify(self) -> int:
        i = self.inputs
        if i.command == "validate":
            args = ["validate", "--targets", i.targets] if i.targets else ["validate", *i.manifest_args()]
        else:
            args = ["verify", *i.manifest_args()]
        result = self.run_reconcile(*args)
        print(result.stdout, end="")
        self.summary(f"### reconcile {i.command}: {i.key}\n\n```\n{result.stdout}{result.stderr}```")
        return result.returncode

    def plan(self) -> int:
        i = self.inputs
        markdown, saved = self.workdir / "plan.md", self.workdir / reviewed_plan.PLAN_FILE
        args = ["--dry-run", "--format", "markdown", "--detailed-exitcode", *i.manifest_args()]
        result = self.run_reconcile(*args, *([] if i.targets else ["--out", str(saved)]))
        code = result.returncode
        if code in (0, 2) and i.targets:
            # the fleet has no saved plan file: its JSON plan is what apply compares against
            fleet = self.run_reconcile("--dry-run", "--format", "json", *i.manifest_args())
            saved.write_text(fleet.stdout)
            code = code if fleet.returncode in (0, 2) else fleet.returncode
        ok = code in (0, 2)
        text = result.stdout if ok else f"**The plan failed** (exit {code}):\n\n```\n{result.stderr.strip()}\n```"
        markdown.write_text(text)
        self.summary(f"### reconcile plan: {i.key}\n\n{text}")
        self.outputs.update({"exit-code": str(code), "has-changes": str(code == 2).lower(), "plan-markdown": str(markdown),
                             "plan-dir": str(self.workdir), "artifact-name": i.artifact})
        if ok:
            self.outputs["plan-json"] = str(saved)
        pull = self.pull_request()
        if i.comment and pull is not None:
            number, sha = pull[0], pull[1][:12]
            body = sticky_comment.comment_body(
                i.key, f"reconcile plan: `{i.key}`", text, summary_url=self.run_url,
                footer=f"commit {sha} · <a href=\"{self.run_url}\">run {self.env.get('GITHUB_RUN_ID', '')}</a>"
                       f" · saved plan: artifact <code>{i.artifact}</code>")
            posted = sticky_comment.post(self.github(), number, i.key, body)
            self.outputs["comment-url"] = posted.url
            print(f"{'created' if posted.created else 'updated'} the plan comment {posted.url}")
        return 0 if ok else code

    def reviewed(self) -> tuple[Path, str]:
        """The reviewed plan file and where it came from (the plan-file input, else the merged PR's run)."""
        if self.inputs.plan_file:
            return Path(self.inputs.plan_file), self.inputs.plan_file
        gh = self.github()
        run = gh.request("GET", f"repos/{gh.repository}/actions/runs/{self.env.get('GITHUB_RUN_ID', '')}")
        found = reviewed_plan.find_reviewed(gh, self.env.get("GITHUB_SHA", ""), run["workflow_id"],
                                            self.inputs.artifact)
        document = reviewed_plan.fetch_reviewed_plan(gh, found)
        path = self.workdir / "reviewed-plan.json"
        path.write_text(json.dumps(document))
        return path, f"pull request #{found.pull_request} (run {found.run_url or found.run_id})"

    def apply(self) -> int:
        i = self.inputs
        path, origin = self.reviewed()
        print(f"applying the plan reviewed on {origin}")
        lock = ["--lock-timeout", i.lock_timeout]
        if i.targets:
            return self._apply_fleet(path, origin, lock)
        result = self.run_reconcile("--apply", str(path), *lock, *i.manifest_args())
        print(result.stdout, end="")
        if result.returncode == 1 and STALE in result.stderr and i.apply_fresh_if_same:
            fresh = self.workdir / "fresh-plan.json"
            planned = self.run_reconcile("--dry-run", "--format", "json", "--out", str(fresh), *i.manifest_args())
            if planned.returncode == 0 and reviewed_plan.same_changes(_load(path), _load(fresh)):
                print("the reviewed plan is stale, but a fresh plan makes the same changes: applying it")
                result = self.run_reconcile("--apply", str(fresh), *lock, *i.manifest_args())
                print(result.stdout, end="")
            else:
                print(f"::error::the plan reviewed on {origin} is stale, and a fresh plan makes other changes. "
                      "Nothing was applied. Make a new plan, review it and merge again.")
        elif result.returncode == 1 and STALE in result.stderr:
            print(f"::error::the plan reviewed on {origin} is stale: the database or the manifest changed "
                  "since it was made. Nothing was applied. Make a new plan (a pull request, or re-run its plan), "
                  "review it and merge again; or set apply-fresh-if-same to apply a fresh plan that makes "
                  "the same changes.")
        self.summary(f"### reconcile apply: {i.key}\n\nfrom {origin}, exit {result.returncode}\n\n"
                     f"```\n{result.stdout}{result.stderr}```")
        return result.returncode

    def _apply_fleet(self, path: Path, origin: str, lock: list[str]) -> int:
        # a fleet has no saved plan file: a fresh JSON plan must make every target's reviewed changes
        fresh = self.run_reconcile("--dry-run", "--format", "json", *self.inputs.manifest_args())
        if fresh.returncode != 0 or not reviewed_plan.same_changes(_load(path), json.loads(fresh.stdout or "{}")):
            print(f"::error::the fleet plan reviewed on {origin} is stale: a target's plan differs now. Nothing "
                  "was applied. Make a new plan, review it and merge again.")
            return 1
        result = self.run_reconcile("--apply", *lock, *self.inputs.manifest_args())
        print(result.stdout, end="")
        self.summary(f"### reconcile apply: {self.inputs.key}\n\nfrom {origin}, exit {result.returncode}\n\n"
                     f"```\n{result.stdout}{result.stderr}```")
        return result.returncode

    def main(self) -> int:
        command = self.inputs.command
        code = {"plan": self.plan, "apply": self.apply}.get(command, self.validate_or_verify)()
        self.outputs.setdefault("exit-code", str(code))
        self.write_outputs()
        return code


def _load(path: Path) -> dict[str, Any]:
    document = json.loads(path.read_text())
    return document if isinstance(document, dict) else {}


def main() -> int:
    try:
        return Action(dict(os.environ)).main()
    except GitHubError as e:
        print(f"::error::{e}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
