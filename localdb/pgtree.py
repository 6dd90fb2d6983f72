"""The private, relocatable PostgreSQL tree a localdb cluster runs from.

Sits under `Cluster`: before initdb or a start, `ensure_tree()` makes `<root>/pgtree` look like the
install `localdb.discovery` chose (Debian's `lib/postgresql/N/bin`, `share/postgresql/N`, or a prefix's
bin, lib, share) so that the server finds our own `extension/` directory, holding the
stand-in extensions, and a `lib/` holding, in the supabase profile, our `supautils` hook library
(built from `localdb/supautils/` with PGXS: see `build_supautils`). PostgreSQL finds share/ and lib/
relative to its executable after resolving symlinks, so the binaries are hard links or copies while
everything else is a symlink to the system install. Nothing is written outside `<root>`."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from localdb.discovery import PgInstall, from_environment
from localdb.errors import LocalDbError

STANDINS_DIR = Path(__file__).resolve().parent / "extensions"
SUPAUTILS_DIR = Path(__file__).resolve().parent / "supautils"
#: Where a tree records the install it was made from (its major and relative layout).
LAYOUT_FILE = "layout.json"
#: A tree made before trees recorded their layout was always Debian's PostgreSQL 15.
_LEGACY_LAYOUT = {"major": "15", "bindir": "lib/postgresql/15/bin", "pkglibdir": "lib/postgresql/15/lib",
                  "sharedir": "share/postgresql/15"}

# Only these are run from the private tree; initdb and pg_ctl look for `postgres` next to themselves.
BINARIES = ("postgres", "initdb", "pg_ctl", "psql", "pg_config", "pg_controldata", "pg_isready")


def system_install(explicit: str | None = None) -> PgInstall:
    """The install this machine's clusters run from (localdb.discovery; one LocalDbError line if none)."""
    return from_environment(explicit)


def check(system: PgInstall, *, need_cron: bool = True) -> None:
    """Raise one clear line naming the missing package (the server; pg_cron when it is preloaded)."""
    if not system.has_server:
        raise LocalDbError(f"PostgreSQL {system.major} is not installed (package {_package(system, 0)}, "
                           f"no {system.bindir / 'postgres'}); run: {system.install_hint()}")
    if need_cron and not system.has_cron:
        raise LocalDbError(f"pg_cron is not installed for PostgreSQL {system.major} (package "
                           f"{_package(system, 1)}); run: {system.install_hint()}")


def check_build_tools(system: PgInstall) -> None:
    """Building the supautils stand-in needs pg_config, PGXS and the server headers, make and a C compiler."""
    if not system.has_build_files:
        raise LocalDbError(f"the supabase profile builds localdb's supautils hook library, which needs "
                           f"PostgreSQL {system.major}'s server headers and PGXS (package {_package(system, 2)}, "
                           f"no {system.server_include / 'postgres.h'}); run: {_build_hint(system)}")
    missing = [tool for tool in ("make", "gcc") if shutil.which(tool) is None]
    if missing:
        raise LocalDbError(f"building localdb's supautils hook library needs {' and '.join(missing)}; "
                           f"run: {_build_hint(system)}")


def _package(system: PgInstall, index: int) -> str:
    return system.packages[index] if system.packages else f"files under {system.prefix}"


def _build_hint(system: PgInstall) -> str:
    dev = system.packages[2] if system.packages else None
    return "apt-get install -y " + " ".join(name for name in (dev, "make", "gcc") if name)


@dataclass(frozen=True)
class Tree:
    """Paths inside `<root>/pgtree`, laid out as the install it copies is (relative to its prefix), so
    the server's relative lookups of share/ and lib/ land here."""

    top: Path
    layout: tuple[tuple[str, str], ...] = tuple(_LEGACY_LAYOUT.items())

    @classmethod
    def for_install(cls, top: Path, system: PgInstall) -> Tree:
        layout = {"major": system.major}
        for name in ("bindir", "pkglibdir", "sharedir"):
            layout[name] = str(getattr(system, name).relative_to(system.prefix))
        return cls(top, tuple(layout.items()))

    @classmethod
    def open(cls, top: Path) -> Tree:
        """The tree in `top` as it was made (its recorded layout; Debian's 15 for a tree from before)."""
        try:
            layout = json.loads((top / LAYOUT_FILE).read_text())
        except (OSError, ValueError):
            layout = _LEGACY_LAYOUT
        return cls(top, tuple((k, str(layout[k])) for k in _LEGACY_LAYOUT))

    def _get(self, key: str) -> str:
        return dict(self.layout)[key]

    @property
    def major(self) -> str:
        return self._get("major")

    @property
    def bindir(self) -> Path:
        return self.top / self._get("bindir")

    @property
    def pkglibdir(self) -> Path:
        return self.top / self._get("pkglibdir")

    @property
    def sharedir(self) -> Path:
        return self.top / self._get("sharedir")

    @property
    def extdir(self) -> Path:
        return self.sharedir / "extension"

    def bin(self, name: str) -> str:
        return str(self.bindir / name)


def ensure_tree(top: Path, profile: str, system: PgInstall, *, need_cron: bool = True) -> Tree:
    """Build the tree once (atomically), then refresh only our own extension files on every call.

    A tree made from another install (another major, or before trees recorded theirs) is made again."""
    check(system, need_cron=need_cron)
    if profile == "supabase":
        check_build_tools(system)
    tree = Tree.for_install(top, system)
    if not tree.bindir.is_dir() or Tree.open(top) != tree:
        _build(tree, system)
    if tree.pkglibdir.is_symlink():  # a tree made before lib/ held our own library
        _unlink_pkglibdir(tree, system)
    _install_extension_files(tree.extdir, system)
    if profile == "supabase":
        build_supautils(tree, system)
    return tree


def build_supautils(tree: Tree, system: PgInstall) -> Path:
    """Compile localdb/supautils/ with PGXS in `<tree>/build/supautils`, install it into the tree's lib/.

    Rebuilt only when the sources or the install change (their digest is kept next to the build).
    Raises one line naming the missing package, or the compiler's last line.
    """
    check_build_tools(system)
    sources = sorted(p for p in SUPAUTILS_DIR.iterdir() if p.name in ("Makefile", "supautils.c"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in sources) + str(system.pg_config).encode()).hexdigest()
    build = tree.top / "build" / "supautils"
    stamp = build / "source.sha256"
    target = tree.pkglibdir / "supautils.so"
    if target.is_file() and stamp.is_file() and stamp.read_text() == digest:
        return target
    compile_supautils(system, build)
    tmp = target.with_name(target.name + ".tmp")
    shutil.copyfile(build / "supautils.so", tmp)
    tmp.chmod(0o755)
    tmp.replace(target)
    stamp.write_text(digest)
    return target


def compile_supautils(system: PgInstall, build: Path, *, strict: bool = False) -> Path:
    """`make` localdb/supautils/ against `system`'s headers and PGXS in a fresh `build` directory;
    `strict`: warnings are errors (an undeclared function is only a warning in C, then fails at load)."""
    check_build_tools(system)
    shutil.rmtree(build, ignore_errors=True)
    build.mkdir(parents=True)
    for src in SUPAUTILS_DIR.iterdir():
        if src.name in ("Makefile", "supautils.c"):
            shutil.copyfile(src, build / src.name)
    proc = subprocess.run(["make", "-C", str(build), f"PG_CONFIG={system.pg_config}", "with_llvm=no",
                           *(["COPT=-Werror"] if strict else [])],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not (build / "supautils.so").is_file():
        errors = [line for line in (proc.stderr or proc.stdout).splitlines() if "error" in line]
        lines = errors or (proc.stderr or proc.stdout).strip().splitlines() or ["(no output)"]
        raise LocalDbError(f"building localdb's supautils hook library against PostgreSQL {system.major} failed: "
                           f"{lines[0] if errors else lines[-1]} (see {build})")
    return build / "supautils.so"


def _build(tree: Tree, system: PgInstall) -> None:
    staging = Tree(tree.top.with_name(tree.top.name + f".tmp{os.getpid()}"), tree.layout)
    shutil.rmtree(staging.top, ignore_errors=True)
    try:
        tree.top.parent.mkdir(parents=True, exist_ok=True)
        staging.bindir.mkdir(parents=True)
        for name in BINARIES:
            if (system.bindir / name).exists():
                _link_or_copy(system.bindir / name, staging.bindir / name)
        _fill_pkglibdir(staging.pkglibdir, system)
        staging.sharedir.mkdir(parents=True, exist_ok=True)
        for entry in system.sharedir.iterdir():
            if entry.name != "extension" and not (staging.sharedir / entry.name).exists():
                (staging.sharedir / entry.name).symlink_to(entry)
        staging.extdir.mkdir()
        for entry in (system.sharedir / "extension").iterdir():
            (staging.extdir / entry.name).symlink_to(entry)
        (staging.top / LAYOUT_FILE).write_text(json.dumps(dict(tree.layout)) + "\n")
        shutil.rmtree(tree.top, ignore_errors=True)
        staging.top.rename(tree.top)
    except BaseException:
        shutil.rmtree(staging.top, ignore_errors=True)
        raise


def _fill_pkglibdir(pkglibdir: Path, system: PgInstall) -> None:
    # A directory of symlinks rather than one symlink, so our own library can sit beside the system's.
    pkglibdir.mkdir(parents=True)
    for entry in system.pkglibdir.iterdir():
        (pkglibdir / entry.name).symlink_to(entry)


def _unlink_pkglibdir(tree: Tree, system: PgInstall) -> None:
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


def _install_extension_files(extdir: Path, system: PgInstall) -> None:
    # Control files as upstream ships them, untrusted (superuser = t, trusted = f), as on Supabase:
    # there supautils, not the control file, lets postgres create them.
    for src in sorted(STANDINS_DIR.iterdir()):
        if src.suffix in (".control", ".sql"):
            _write_if_changed(extdir / src.name, src.read_text())
    cron_control = extdir / "pg_cron.control"
    if not system.has_cron:  # a cluster that does not preload pg_cron (a server without it)
        return
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
