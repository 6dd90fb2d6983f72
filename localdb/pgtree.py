"""The private, relocatable PostgreSQL tree a localdb cluster runs from.

Sits under `Cluster`: before initdb or a start, `ensure_tree()` makes `<root>/pgtree` look like Debian's
install (bin, lib, share) so that the server finds our own `extension/` directory, holding the
stand-in extensions, and a `lib/` holding, in the supabase profile, our `supautils` hook library
(built from `localdb/supautils/` with PGXS: see `build_supautils`). PostgreSQL finds share/ and lib/
relative to its executable after resolving symlinks, so the binaries are hard links or copies while
everything else is a symlink to the system install. Nothing is written outside `<root>`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localdb.errors import LocalDbError

MAJOR = "15"
INSTALL_HINT = "apt-get install -y postgresql-15 postgresql-15-cron"
STANDINS_DIR = Path(__file__).resolve().parent / "extensions"
SUPAUTILS_DIR = Path(__file__).resolve().parent / "supautils"
SUPAUTILS_HINT = f"apt-get install -y postgresql-server-dev-{MAJOR} make gcc"

# Only these are run from the private tree; initdb and pg_ctl look for `postgres` next to themselves.
BINARIES = ("postgres", "initdb", "pg_ctl", "psql", "pg_config", "pg_controldata", "pg_isready")


@dataclass(frozen=True)
class SystemInstall:
    """Where Debian put PostgreSQL; a dataclass so tests can point it at a missing install."""

    bindir: Path = Path(f"/usr/lib/postgresql/{MAJOR}/bin")
    pkglibdir: Path = Path(f"/usr/lib/postgresql/{MAJOR}/lib")
    sharedir: Path = Path(f"/usr/share/postgresql/{MAJOR}")
    pg_config: Path = Path(f"/usr/lib/postgresql/{MAJOR}/bin/pg_config")
    pgxs: Path = Path(f"/usr/lib/postgresql/{MAJOR}/lib/pgxs/src/makefiles/pgxs.mk")

    def check(self) -> None:
        """Raise one clear line naming the missing Debian package."""
        if not all((self.bindir / name).is_file() for name in ("postgres", "initdb", "pg_ctl")):
            raise LocalDbError(f"PostgreSQL {MAJOR} is not installed (package postgresql-{MAJOR}); "
                               f"run: {INSTALL_HINT}")
        if not ((self.pkglibdir / "pg_cron.so").is_file()
                and (self.sharedir / "extension" / "pg_cron.control").is_file()):
            raise LocalDbError(f"pg_cron is not installed (package postgresql-{MAJOR}-cron); "
                               f"run: {INSTALL_HINT}")

    def check_build_tools(self) -> None:
        """Building the supautils stand-in needs PGXS (postgresql-server-dev), make and a C compiler."""
        if not (self.pg_config.is_file() and self.pgxs.is_file()):
            raise LocalDbError(f"the supabase profile builds localdb's supautils hook library, which needs "
                               f"PostgreSQL's server headers and PGXS (package postgresql-server-dev-{MAJOR}); "
                               f"run: {SUPAUTILS_HINT}")
        missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
        if missing:
            raise LocalDbError(f"building localdb's supautils hook library needs {' and '.join(missing)}; "
                               f"run: {SUPAUTILS_HINT}")


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
    if profile == "supabase":
        system.check_build_tools()
    tree = Tree(top)
    if not tree.bindir.is_dir():
        _build(tree, system)
    if tree.pkglibdir.is_symlink():  # a tree made before lib/ held our own library
        _unlink_pkglibdir(tree, system)
    _install_extension_files(tree.extdir, system)
    if profile == "supabase":
        build_supautils(tree, system)
    return tree


def build_supautils(tree: Tree, system: SystemInstall = SYSTEM) -> Path:
    """Compile localdb/supautils/ with PGXS in `<tree>/build/supautils`, install it into the tree's lib/.

    Rebuilt only when the sources change (their digest is kept next to the build). Raises one line
    naming the missing package, or the compiler's last line.
    """
    system.check_build_tools()
    sources = sorted(p for p in SUPAUTILS_DIR.iterdir() if p.name in ("Makefile", "supautils.c"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources)).hexdigest()
    build = tree.top / "build" / "supautils"
    stamp = build / "source.sha256"
    target = tree.pkglibdir / "supautils.so"
    if target.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return target
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for src in sources:
        shutil.copyfile(src, build / src.name)
    proc = subprocess.run(["make", "-C", str(build), f"PG_CONFIG={system.pg_config}", "with_llvm=no"],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not (build / "supautils.so").is_file():
        lines = (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        raise LocalDbError(f"building localdb's supautils hook library failed: {lines[-1]} "
                           f"(needs package postgresql-server-dev-{MAJOR}; see {build})")
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(build / "supautils.so", tmp)
    tmp.chmod(0o755)
    tmp.replace(target)
    stamp.write_text(digest)
    return target


def _build(tree: Tree, system: SystemInstall) -> None:
    staging = Tree(tree.top.with_name(tree.top.name + f".tmp{os.getpid()}"))
    shutil.rmtree(staging.top, ignore_errors=True)
    try:
        tree.top.parent.mkdir(parents=True, exist_ok=True)
        staging.bindir.mkdir(parents=True)
        for name in BINARIES:
            if (system.bindir / name).exists():
                _link_or_copy(system.bindir / name, staging.bindir / name)
        _fill_pkglibdir(staging.pkglibdir, system)
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


def _fill_pkglibdir(pkglibdir: Path, system: SystemInstall) -> None:
    # A directory of symlinks rather than one symlink, so our own library can sit beside the system's.
    pkglibdir.mkdir(parents=True)
    for entry in system.pkglibdir.iterdir():
        (pkglibdir / entry.name).symlink_to(entry)


def _unlink_pkglibdir(tree: Tree, system: SystemInstall) -> None:
    staging = tree.pkglibdir.with_name(f"lib.tmp{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    _fill_pkglibdir(staging, system)
    tree.pkglibdir.unlink()
    staging.rename(tree.pkglibdir)


def _link_or_copy(src: Path, dst: Path) -> None:
    # A hard link keeps the tree small; protected_hardlinks forbids it for non-owners, so copy then.
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def _install_extension_files(extdir: Path, system: SystemInstall) -> None:
    # Control files as upstream ships them, untrusted (superuser = t, trusted = f), as on Supabase:
    # there supautils, not the control file, lets postgres create them.
    for src in sorted(STANDINS_DIR.iterdir()):
        if src.suffix in (".control", ".sql"):
            _write_if_changed(extdir / src.name, src.read_text())
    cron_control = extdir / "pg_cron.control"
    if not cron_control.is_symlink():  # a tree made when the profile rewrote it: back to Debian's
        cron_control.unlink(missing_ok=True)
        cron_control.symlink_to(system.sharedir / "extension" / "pg_cron.control")


def _write_if_changed(path: Path, text: str) -> None:
    if path.is_file() and not path.is_symlink() and path.read_text() == text:
        return
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.chmod(0o644)
    tmp.replace(path)
