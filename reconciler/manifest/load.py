"""`load_manifest`: scheduler.yaml (one file, or a base plus overlays) into an immutable `Manifest`.

Data flow: each file ──`reconciler.manifest.yaml`──▶ LMap tree (+ problems) ──`overlay.merge`──▶ one tree
──pydantic──▶ Manifest, with pydantic's errors mapped back to positions by `reconciler.manifest.problems`.
Every problem in every file is reported at once as one ManifestError; nothing else escapes for any input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from reconciler.errors import ManifestError, ManifestProblem
from reconciler.manifest.checks import duplicate_problems, reference_problems
from reconciler.manifest.models import Manifest
from reconciler.manifest.overlay import merge
from reconciler.manifest.positions import LMap
from reconciler.manifest.problems import dedupe, located_cross, manifest_warnings, problem_for
from reconciler.manifest.sections import manifest_model
from reconciler.manifest.types import DEFAULT_CRON_VERSION
from reconciler.manifest.yaml import parse_file
from reconciler.util.gc_pause import paused_gc

__all__ = ["load_manifest"]


def load_manifest(
    paths: Sequence[str | Path] | str | Path, *, cron_version: tuple[int, int] = DEFAULT_CRON_VERSION
) -> Manifest:
    """Load and validate a manifest; later files are overlays merged over earlier ones.

    Raises ManifestError carrying every problem found in every file (never any other exception for any
    file content). Schedules are validated against `cron_version` of pg_cron.
    """
    with paused_gc():  # a tree of objects without cycles (reconciler.util.gc_pause)
        return _load(paths, cron_version)


def _load(paths: Sequence[str | Path] | str | Path, cron_version: tuple[int, int]) -> Manifest:
    if isinstance(paths, str | Path):
        paths = [paths]
    if not paths:
        raise ManifestError([ManifestProblem("(none)", None, None, "", "no manifest file given")])
    labels = [str(p) for p in paths]
    order = {label: i for i, label in enumerate(labels)}
    problems: list[ManifestProblem] = []
    roots: list[LMap] = []
    fatal = False
    for path in paths:
        root, file_problems = parse_file(path)
        problems.extend(file_problems)
        if root is None:
            fatal = True
            continue
        problems.extend(located_cross(root, duplicate_problems(root)))
        roots.append(root)
    if fatal:
        raise ManifestError(dedupe(problems, order))
    merged = roots[0]
    for overlay in roots[1:]:
        merged = merge(merged, overlay, ())
    problems.extend(
        located_cross(merged, reference_problems(merged))  # duplicates were reported per file above
    )
    manifest: Manifest | None = None
    try:
        manifest = manifest_model().model_validate(merged, context={"cron_version": cron_version})
    except ValidationError as exc:
        for error in exc.errors(include_url=False):
            problems.extend(problem_for(merged, error))
    if problems or manifest is None:
        raise ManifestError(dedupe(problems, order))
    return manifest.model_copy(
        update={"source_files": tuple(labels), "warnings": manifest_warnings(merged, manifest, cron_version)}
    )
