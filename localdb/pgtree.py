"""The private, relocatable PostgreSQL tree a localdb cluster runs from.

Sits under `Cluster`: before initdb or a start, `ensure_tree()` makes `<root>/pgtree` look like Debian's
install (bin, lib, share) so that the server finds our own `extension/` directory, holding the
stand-in extensions and, in the supabase profile, "trusted" copies of the control files. PostgreSQL
finds share/ and lib/ relative to its executable after resolving symlinks, so the binaries are hard
links or copies while everything else is a symlink to the system install. Nothing is written outside
`<root>`.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from localdb.errors import LocalDbError

MAJOR = "15"
INSTALL_HINT = "apt-get install -y postgresql-15 postgresql-15-cron"
STANDINS_DIR = Path(__file__).resolve().parent / "extensions"

# Only these are run from the private tree; initdb and pg_ctl look for `postgres` next to themselves.
BINARIES = ("postgres", "initdb", "pg_ctl", "psql", "pg_config", "pg_controldata", "pg_isready")
# Extensions whose control file gets `trusted = true` in the supabase profile (supautils' job there).
TRUSTED_EXTENSIONS = ("pg_cron", "pg_net", "supabase_vault")


@dataclass(frozen=True)
class SystemInstall:
    """Where Debian put PostgreSQL; a dataclass so tests can point it at a missing install."""

    bindir: Path = Path(f"/usr/lib/postgresql/{MAJOR}/bin")
    pkglibdir: Path = Path(f"/usr/lib/postgresql/{MAJOR}/lib")
    sharedir: Path = Path(f"/usr/share/postgresql/{MAJOR}")

    def check(self) -> None:
        """Raise one clear line naming the missing Debian package."""
        if not all((self.bindir / name).is_file() for name in ("postgres", "initdb", "pg_ctl")):
            raise LocalDbError(f"PostgreSQL {MAJOR} is not installed (package postgresql-{MAJOR}); "
                               f"run: {INSTALL_HINT}")
        if not ((self.pkglibdir / "pg_cron.so").is_file()
                and (self.sharedir / "extension" / "pg_cron.control").is_file()):
            raise LocalDbError(f"pg_cron is not installed (package postgresql-{MAJOR}-cron); "
                               f"run: {INSTALL_HINT}")


SYSTEM = SystemInstall()


@dataclass(frozen=True)
class Tree:
    """Paths inside `<root>/pgtree`, laid out as Debian does so relative lookups land here."""

    top: Path

    @property
    def bindir(self) -> Path:
        return self.top / "lib" / "postgresql" / MAJOR / "bin"

    @property
    def pkglibdir(self) -> Path:
        return self.top / "lib" / "postgresql" / MAJOR / "lib"

    @property
    def sharedir(self) -> Path:
        return self.top / "share" / "postgresql" / MAJOR

    @property
    def extdir(self) -> Path:
        return self.sharedir / "extension"

    def bin(self, name: str) -> str:
        return str(self.bindir / name)


def ensure_tree(top: Path, profile: str, system: SystemInstall = SYSTEM) -> Tree:
    """Build the tree once (atomically), then refresh only our own extension files on every call."""
    system.check()
    tree = Tree(top)
    if not tree.bindir.is_dir():
        _build(tree, system)
    _install_extension_files(tree.extdir, profile, system)
    return tree


def _build(tree: Tree, system: SystemInstall) -> None:
    staging = Tree(tree.top.with_name(tree.top.name + f".tmp{os.getpid()}"))
    shutil.rmtree(staging.top, ignore_errors=True)
    try:
        tree.top.parent.mkdir(parents=True, exist_ok=True)
        staging.bindir.mkdir(parents=True)
        for name in BINARIES:
            if (system.bindir / name).exists():
                _link_or_copy(system.bindir / name, staging.bindir / name)
        staging.pkglibdir.symlink_to(system.pkglibdir)
        staging.sharedir.mkdir(parents=True)
        for entry in system.sharedir.iterdir():
            if entry.name != "extension":
                (staging.sharedir / entry.name).symlink_to(entry)
        staging.extdir.mkdir()
        for entry in (system.sharedir / "extension").iterdir():
            (staging.extdir / entry.name).symlink_to(entry)
        shutil.rmtree(tree.top, ignore_errors=True)
        staging.top.rename(tree.top)
    except BaseException:
        shutil.rmtree(staging.top, ignore_errors=True)
        raise


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link keeps the tree small; protected_hardlinks forbids it for non-owners, so copy then.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _install_extension_files(extdir: Path, profile: str, system: SystemInstall) -> None:
    for src in sorted(STANDINS_DIR.iterdir()):
        if src.suffix in (".control", ".sql"):
            text = src.read_text()
            if src.suffix == ".control" and profile == "supabase":
                text = _trusted(text)
            _write_if_changed(extdir / src.name, text)
    cron_control = extdir / "pg_cron.control"
    system_text = (system.sharedir / "extension" / "pg_cron.control").read_text()
    _write_if_changed(cron_control, _trusted(system_text) if profile == "supabase" else system_text)


def _trusted(control: str) -> str:
    lines = [line for line in control.splitlines() if not line.strip().startswith("trusted")]
    return "\n".join(lines + ["trusted = true"]) + "\n"


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and not path.is_symlink() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)
