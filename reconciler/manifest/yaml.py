"""YAML with positions: one manifest file's text into plain data that remembers where every value is.

Data flow: a file ──read_limited──▶ text ──`composer.Composer` (`reconciler.manifest.composer`)──▶
`LMap`/`LSeq`/scalars with their file, line and column (`reconciler.manifest.positions`), plus the
problems found on the way; this module turns what the YAML library raises into one-line problems and
checks the top level. `reconciler.manifest.overlay` merges those per-file trees;
`reconciler.manifest.load` validates the result; `reconciler.manifest.limits` keeps input that could make
a composer recurse too deep, or hold too many nodes, from reaching one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

import reconciler.manifest.limits as limits
from reconciler.errors import ManifestProblem
from reconciler.manifest.checks import field_name, format_path
from reconciler.manifest.composer import Composer, Fatal
from reconciler.manifest.positions import LMap, LSeq, Pos
from reconciler.manifest.types import describe, quote
from reconciler.util.files import read_limited

_SafeLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def read_text(path: str | Path, label: str) -> tuple[str | None, list[ManifestProblem]]:
    def problem(
        message: str, line: int | None = None, column: int | None = None
    ) -> tuple[None, list[ManifestProblem]]:
        return None, [ManifestProblem(label, line, column, "", message)]

    raw, why = read_limited(path, limits.MAX_FILE_BYTES)
    if raw is None:
        return problem(f"file {why}" + (": not a manifest" if why.startswith("is larger") else ""))
    bom = 3 if raw.startswith(b"\xef\xbb\xbf") else 0
    raw = raw[bom:]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        prefix = raw[: exc.start].decode("utf-8", "replace")
        line, column = _line_col(prefix, len(prefix))
        return problem(f"not valid UTF-8 at byte {exc.start + bom}", line, column)
    return text, []


def parse_file(path: str | Path) -> tuple[LMap | None, list[ManifestProblem]]:
    label = str(path)
    text, problems = read_text(path, label)
    if text is None:
        return None, problems
    composer = Composer(text, label)
    try:
        root = composer.compose()
    except Fatal:
        return None, composer.problems
    except yaml.composer.ComposerError as exc:  # the limits' scan found no other problem: a duplicate anchor
        mark = exc.problem_mark
        first = f" (first at line {exc.context_mark.line + 1})" if exc.context_mark is not None else ""
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        message = f"YAML anchor defined a second time{first}" if "anchor" in str(exc.context) else f"YAML error: {exc}"
        return None, [*composer.problems, ManifestProblem(label, line, column, "", message)]
    except yaml.MarkedYAMLError as exc:
        unclosed = _unclosed_quote(text, exc)
        if unclosed is not None:
            line, column, message = unclosed
            return None, [*composer.problems, ManifestProblem(label, line, column, "", message)]
        mark = exc.problem_mark or exc.context_mark
        message = f"YAML syntax error: {exc.problem or exc.context}"
        if exc.context and exc.problem and exc.context_mark is not None:
            message += (
                f" ({exc.context} at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1})"
            )
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (None, None)
        return None, [*composer.problems, ManifestProblem(label, line, column, "", message)]
    except yaml.reader.ReaderError as exc:
        char = exc.character
        shown = f"U+{char:04X}" if isinstance(char, int) else quote(str(char))
        # libyaml reports a byte offset into the UTF-8 text
        index = len(text.encode("utf-8")[: exc.position].decode("utf-8", "replace"))
        line, column = _line_col(text, index)
        return None, [
            *composer.problems,
            ManifestProblem(
                label, line, column, "", f"YAML cannot contain the character {shown} ({exc.reason})"
            ),
        ]
    except yaml.YAMLError as exc:
        return None, [*composer.problems, ManifestProblem(label, None, None, "", f"YAML error: {exc}")]
    problems = composer.problems
    if root is None or (isinstance(root, str) and not root.strip()):
        problems.append(
            ManifestProblem(
                label, None, None, "", 'the manifest is empty (expected a mapping starting with "version: 1")'
            )
        )
        return None, problems
    if not isinstance(root, LMap):
        problems.append(
            ManifestProblem(label, 1, 1, "", f"expected a mapping at the top level, got {describe(root)}")
        )
        return None, problems
    problems.extend(_loader_only_keys(root))
    return root, problems


#: What the scanners (libyaml, PyYAML) say when a quoted scalar runs into the end of the text (or of the document).
_QUOTE_RUNS_OUT = ("found unexpected end of stream", "found unexpected document separator",
                   "found unexpected document indicator")


def _unclosed_quote(text: str, exc: yaml.MarkedYAMLError) -> tuple[int, int, str] | None:
    """(line, column, message) at the quote that opens the value, when a syntax error comes from a
    closing quote left out; None for any other error.

    The scanner notices a missing quote only where it gives up: at the end of the text (the quote never
    closes), or where the value's next quote closes it a line or more later and what follows makes no
    sense (`name: "nightly` then `schedule: "0 3 * * *"`). Both are reported where the quote opens.
    """
    start = exc.context_mark
    if exc.context == "while scanning a quoted scalar" and exc.problem in _QUOTE_RUNS_OUT and start is not None:
        return start.line + 1, start.column + 1, "YAML syntax error: unclosed quote (the document ends before it closes)"
    found = exc.problem_mark
    if found is None:
        return None
    last: Any = None  # the last quoted scalar that ends at or before the error
    loader = _SafeLoader(text)
    try:
        while loader.check_token():
            token = loader.get_token()
            if token.start_mark.index >= found.index:
                break
            if isinstance(token, yaml.ScalarToken) and token.style in ("'", '"'):
                last = token
    except yaml.YAMLError:
        pass  # the error itself: every token before it has been seen
    finally:
        loader.dispose()
    if last is None or last.start_mark.line == last.end_mark.line or last.end_mark.line != found.line:
        return None
    opened, closed = last.start_mark, last.end_mark
    return opened.line + 1, opened.column + 1, (
        f"YAML syntax error: unclosed quote? It closes only at line {closed.line + 1}, column {closed.column}, "
        f"and then: {exc.problem} at line {found.line + 1}, column {found.column + 1}")


def _loader_only_keys(root: LMap) -> list[ManifestProblem]:
    """Model fields the loader fills in itself must not come from YAML."""
    found: list[tuple[Pos, str, str]] = []
    for key in ("source_files", "warnings"):
        if key in root:
            found.append((root.key_pos[key], "", key))
    extensions = root.get("extensions")
    if isinstance(extensions, LSeq):
        for i, ext in enumerate(extensions):
            if isinstance(ext, LMap) and "declared_as" in ext:
                found.append((ext.key_pos["declared_as"], field_name(root, ("extensions", i)), "declared_as"))
    secrets = root.get("secrets")
    if isinstance(secrets, LMap):
        for name, spec in secrets.items():
            if isinstance(spec, LMap) and "name" in spec:
                found.append((spec.key_pos["name"], format_path(("secrets", name)), "name"))
    problems = [
        ManifestProblem(pos.file, pos.line, pos.column, field, f"unknown field {quote(key)}")
        for pos, field, key in found
    ]
    if "secrets" in root and secrets is not None and not isinstance(secrets, LMap):
        # The model also takes a list (what it turns the mapping into); from YAML only the mapping is
        # valid. Reported here, then emptied so the model does not report the same value again.
        pos = root.val_pos.get("secrets", root.key_pos["secrets"])
        problems.append(ManifestProblem(pos.file, pos.line, pos.column, "secrets",
                                        f"expected a mapping from secret name to its source, got {describe(secrets)}"))
        root["secrets"] = LMap(pos)
    return problems

