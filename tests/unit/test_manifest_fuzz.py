"""Property: whatever bytes a manifest file holds, load_manifest returns a Manifest or raises ManifestError."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.errors import ManifestError
from reconciler.manifest import Manifest, load_manifest

ROOT = Path(__file__).resolve().parents[2]
SCHEDULER = (ROOT / "scheduler.yaml").read_text(encoding="utf-8")
LINES = SCHEDULER.splitlines(keepends=True)

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
YAML_CHARS = ":-[]{}#&*!|>'\"%@`,?\\\n\t 0123456789abcxyz~.$/\x00\x07\u00e9\u2028\ufeff"


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fuzz")


def check(workdir: Path, content: bytes, name: str = "m.yaml") -> None:
    path = workdir / name
    path.write_bytes(content)
    try:
        result = load_manifest([path])
    except ManifestError as exc:
        assert exc.problems, "a ManifestError must carry at least one problem"
        for problem in exc.problems:
            assert problem.file == str(path)
            assert problem.line is None or problem.line >= 1
            assert problem.column is None or problem.column >= 1
            assert "\n" not in str(problem), "each problem is one line"
    else:
        assert isinstance(result, Manifest)


@FUZZ
@given(st.text(alphabet=st.sampled_from(YAML_CHARS), max_size=300))
def test_random_yaml_like_text(workdir: Path, text: str) -> None:
    check(workdir, text.encode("utf-8", "surrogatepass"))


@FUZZ
@given(st.binary(max_size=300))
def test_random_bytes(workdir: Path, data: bytes) -> None:
    check(workdir, data)


@st.composite
def mutated(draw: st.DrawFn) -> str:
    lines = list(LINES)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "indent", "dedent", "truncate"]))
        i = draw(st.integers(0, len(lines) - 1)) if lines else 0
        if not lines:
            break
        if op == "delete":
            del lines[i]
        elif op == "duplicate":
            lines.insert(i, lines[i])
        elif op == "swap":
            line = lines[i]
            if len(line) > 2:
                j = draw(st.integers(0, len(line) - 2))
                lines[i] = line[:j] + line[j + 1] + line[j] + line[j + 2 :]
        elif op == "insert":
            line = lines[i]
            j = draw(st.integers(0, len(line)))
            lines[i] = (
                line[:j] + draw(st.text(st.sampled_from(YAML_CHARS), min_size=1, max_size=3)) + line[j:]
            )
        elif op == "indent":
            lines[i] = "  " + lines[i]
        elif op == "dedent":
            lines[i] = lines[i][2:] if lines[i].startswith("  ") else lines[i]
        elif op == "truncate":
            lines = lines[:i]
    return "".join(lines)


@FUZZ
@given(mutated())
def test_mutations_of_scheduler_yaml(workdir: Path, text: str) -> None:
    check(workdir, text.encode("utf-8"))


json_like = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=30,
)
FIELDS = [
    "version",
    "extensions",
    "secrets",
    "jobs",
    "triggers",
    "tables",
    "prune",
    "name",
    "schedule",
    "http_post",
    "url",
    "headers",
    "body",
    "secret",
    "now",
    "from_env",
    "generate",
    "bytes",
]


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELDS) | st.text(max_size=6), json_like, max_size=6), st.booleans())
def test_random_structures(workdir: Path, data: dict, with_version: bool) -> None:
    if with_version:
        data = {"version": 1, **data}
    check(workdir, yaml.safe_dump(data, allow_unicode=True).encode("utf-8"))


@FUZZ
@given(
    st.sampled_from(["jobs", "triggers", "secrets", "extensions", "prune", "tables"]),
    json_like,
    st.integers(0, 40),
)
def test_replaced_sections_and_nesting(workdir: Path, section: str, value: object, depth: int) -> None:
    for _ in range(depth % 8):
        value = [value] if depth % 2 else {"k": value}
    data = yaml.safe_load(SCHEDULER)
    data[section] = value
    check(workdir, yaml.safe_dump(data, allow_unicode=True).encode("utf-8"))


@FUZZ
@given(mutated(), mutated())
def test_overlays_of_mutations(workdir: Path, base: str, overlay: str) -> None:
    (workdir / "base.yaml").write_text(base, encoding="utf-8")
    (workdir / "over.yaml").write_text(overlay, encoding="utf-8")
    try:
        load_manifest([workdir / "base.yaml", workdir / "over.yaml"])
    except ManifestError as exc:
        assert exc.problems
