"""Shell completion through click's own mechanism (`_RECONCILE_COMPLETE=<shell>_source reconcile`), as the
README documents: the script for bash, zsh and fish, and completions driven through COMP_WORDS/COMP_CWORD
the way those scripts call the command."""

from __future__ import annotations

import subprocess

import pytest

from tests.tools import VENV_BIN, system_tool, venv_tool


def _reconcile(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([venv_tool("reconcile", "scheduler-reconciler")], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", **env}, timeout=60)


@pytest.mark.parametrize(("shell", "marker"), [
    ("bash", "complete -o nosort -F _reconcile_completion reconcile"),
    ("zsh", "compdef _reconcile_completion reconcile"),
    ("fish", "complete --no-files --command reconcile"),
])
def test_the_completion_script_is_generated(shell, marker):
    result = _reconcile({"_RECONCILE_COMPLETE": f"{shell}_source"})
    assert result.returncode == 0, result.stderr
    assert marker in result.stdout and f"_RECONCILE_COMPLETE={shell}_complete" in result.stdout


def _complete(shell: str, words: str) -> list[str]:
    """What the shell's script would get back for this command line (the cursor at its end)."""
    incomplete = "" if words.endswith(" ") else words.split()[-1]
    index = len(words.split()) - (1 if incomplete else 0)
    # bash and zsh pass the index of the word being completed; fish passes that word itself
    env = {"_RECONCILE_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": incomplete if shell == "fish" else str(index)}
    result = _reconcile(env)
    assert result.returncode == 0, result.stderr
    if shell == "zsh":  # type, value, help: three lines per item
        return result.stdout.splitlines()[1::3]
    return [line.split(",", 1)[1].split("\t")[0] for line in result.stdout.splitlines()]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completing_an_option_offers_file_and_format(shell):
    assert _complete(shell, "reconcile --f") == ["--file", "--format"]


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completing_the_format_offers_its_choices(shell):
    assert _complete(shell, "reconcile --format ") == ["text", "json", "markdown"]


def test_completing_a_sub_command():
    assert _complete("bash", "reconcile val") == ["validate"]


def test_bash_itself_completes_through_the_generated_script():
    """The script sourced into a real bash, its completion function called as bash's `complete -F` does."""
    script = _reconcile({"_RECONCILE_COMPLETE": "bash_source"}).stdout
    driver = script + '\nCOMP_WORDS=(reconcile --f); COMP_CWORD=1; _reconcile_completion reconcile\nprintf "%s\\n" "${COMPREPLY[@]}"\n'
    result = subprocess.run([system_tool("/bin/bash", "bash"), "-c", driver], capture_output=True, text=True,
                            env={"PATH": f"{VENV_BIN}:/usr/bin:/bin", "LANG": "C.UTF-8"}, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["--file", "--format"]
