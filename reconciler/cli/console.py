"""The `reconcile` console script: the command, started so that the collector never walks its imports.

Importing click, pydantic (building the manifest's models), PyYAML and the reconciler allocates a few
hundred thousand objects that live until the process ends; the collector would look at them about a
hundred times during the imports and free nothing (the cost per run: docs/benchmarks.md). They are
imported with it paused, then frozen (`gc.freeze`: left out of every later collection) before it resumes.
Only this entry point does so: importing `reconciler.cli.main` elsewhere (the tests do) changes nothing.
"""

from __future__ import annotations

import gc

from reconciler.util.gc_pause import paused_gc


def main() -> None:
    with paused_gc():
        from reconciler.cli.main import main as command

        gc.freeze()
    command()
