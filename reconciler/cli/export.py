"""`reconcile export`: write the manifest of a live database (adopting what exists).

Data flow: DATABASE_URL ──db.read_live (the same reads as a plan)──▶ LiveState ──export.export_manifest──▶
text, checked with load_manifest, then written to -o FILE or stdout. The main click group (cli/main.py)
registers `export_command`. Errors are one line and exit 1, like every command.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click

from reconciler.cli.support import (
    EXIT_OK,
    Command,
    KindsHelpOption,
    database_url_option,
    env_file_option,
    environment,
)
from reconciler.errors import ReconcilerError

__all__ = ["export_command"]


def _reading_manifest(env: Mapping[str, str]) -> object:
    """A manifest that asks only for the planes that can be read (each kind's `export_reading`)."""
    from reconciler import kinds
    from reconciler.manifest import Manifest

    sections: dict[str, Any] = {}
    for kind in kinds.REGISTRY:
        sections.update(kind.export_reading(env))
    return Manifest(version=1, **sections)


def schema_reference(output: Path) -> str | None:
    """The manifest schema's path as seen from `output`'s folder: the nearest scheduler.schema.json in that
    folder or one above it (a repository keeps it at its root), or None when there is none to point at."""
    from reconciler.export import SCHEMA_FILE

    folder = output.absolute().parent
    for candidate in (folder, *folder.parents):
        if (candidate / SCHEMA_FILE).is_file():
            relative = Path(os.path.relpath(candidate / SCHEMA_FILE, folder)).as_posix()
            return relative if relative.startswith("../") else f"./{relative}"
    return None


def _check(text: str) -> None:
    """The export must load back: a problem here is a bug in export, reported without the text."""
    from reconciler.manifest import load_manifest

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "export.yaml"
        path.write_text(text, encoding="utf-8")
        try:
            load_manifest(path)
        except ReconcilerError as e:
            raise ReconcilerError("the exported manifest does not validate (a bug in reconcile export): "
                                  + e.one_line().replace(str(path), "export")) from None


@click.command("export", cls=Command, short_help="Write the manifest of the live database.")
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False), default=None,
              help="Write to FILE instead of stdout (its $schema comment then points at the nearest "
                   "scheduler.schema.json, relative to FILE).")
@click.option("--kinds", "kinds_text", cls=KindsHelpOption, default=None, metavar="KIND,...",
              help="Only these kinds ({kinds}); default all.")
@database_url_option
@env_file_option
def export_command(output: str | None, kinds_text: str | None, database_url: str | None,
                   env_file: str | None) -> int:
    """Read the live state (as a plan does) and write it as a manifest: secrets as `from_env:` placeholders,
    never values. The first `reconcile --apply` of that manifest only adopts what exists."""
    from reconciler import kinds
    from reconciler.engine import db
    from reconciler.export import export_manifest

    only = None
    if kinds_text is not None:
        only = {k.strip() for k in kinds_text.split(",") if k.strip()}
        known = {k.name for k in kinds.REGISTRY}
        unknown = sorted(only - known)
        if unknown or not only:
            raise click.BadParameter(f"unknown kind(s) {', '.join(unknown) or '(none)'}; "
                                     f"choose from {', '.join(sorted(known))}", param_hint="--kinds")
    env = environment(env_file)
    url = database_url or env.get("DATABASE_URL")
    if not url:
        raise ReconcilerError("no database given",
                              hint="pass --database-url or set DATABASE_URL, in the environment or an --env-file")
    manifest = _reading_manifest(env)
    with kinds.open_planes(manifest, env) as planes, db.connect(url, autocommit=True) as conn:  # type: ignore[arg-type]
        live = db.read_live(conn, None, planes)
    text = export_manifest(live, only, schema=None if output is None else schema_reference(Path(output)))
    _check(text)
    if output is None:
        click.echo(text, nl=False)
    else:
        try:
            Path(output).write_text(text, encoding="utf-8")
        except OSError as e:
            raise ReconcilerError(f"cannot write {output}: {e.strerror or e}") from e
        click.echo(f"Wrote {output}.", err=True)
    return EXIT_OK


