"""localdb.discovery: which PostgreSQL major localdb runs and installs, on fake filesystem roots.

The distributions' package facts below are written down from their package lists (the `postgresql`
metapackage's Depends, as `apt-cache depends postgresql` prints it): no Debian 13, Ubuntu 22.04 or
Ubuntu 24.04 machine runs here, only Debian 12, whose line was checked against this machine's apt.
Each distribution also packages `postgresql-N-cron` and `postgresql-server-dev-N` for its default N.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import localdb.__main__ as cli
from localdb import LocalDbError, discovery
from localdb.discovery import choose, debian_install, default_major, installed_majors, prefix_install

REPO = Path(__file__).resolve().parents[2]

#: distribution -> (`apt-cache depends postgresql` output, the metapackage's version, its default major)
DISTRIBUTIONS = {
    "debian-12-bookworm": ("postgresql\n  Depends: postgresql-15\n  Suggests: postgresql-doc\n", "15+248", "15"),
    "debian-13-trixie": ("postgresql\n  Depends: postgresql-17\n  Suggests: postgresql-doc\n", "17+278", "17"),
    "ubuntu-22.04-jammy": ("postgresql\n  Depends: postgresql-14\n  Suggests: postgresql-doc\n", "14+238", "14"),
    "ubuntu-24.04-noble": ("postgresql\n  Depends: postgresql-16\n  Suggests: postgresql-doc\n", "16+257build1", "16"),
}


def install_major(root: Path, major: str, *, cron: bool = True, dev: bool = True) -> None:
    """Lay out the files Debian's postgresql-N (and -cron, server-dev-N) packages install, empty."""
    install = debian_install(root, major)
    files = [install.bindir / name for name in ("postgres", "initdb", "pg_ctl", "psql", "pg_config")]
    files.append(install.pgxs)  # shipped by postgresql-client-N, so present without server-dev
    if cron:
        files += [install.pkglibdir / "pg_cron.so", install.sharedir / "extension" / "pg_cron.control"]
    if dev:
        files.append(install.server_include / "postgres.h")
    for path in files:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch()


def no_apt() -> str:
    return ""


def must_not_ask_apt() -> str:
    raise AssertionError("apt was asked although an installed major has pg_cron")


def one_line(exc: pytest.ExceptionInfo[LocalDbError]) -> str:
    message = str(exc.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("depends", "major"), [(d, m) for d, _, m in DISTRIBUTIONS.values()],
                         ids=list(DISTRIBUTIONS))
def test_the_distribution_default_is_the_metapackage_dependency(depends, major):
    assert default_major(depends) == major


@pytest.mark.parametrize("text", [
    "", "E: No packages found\n", "postgresql\n  Depends: postgresql-common (>= 241)\n",
    "postgresql\n  Depends: postgresql-16-cron\n", "Suggests: postgresql-16\n",
], ids=["no-apt", "no-lists", "common-only", "cron-is-not-a-server", "suggests-only"])
def test_no_default_when_apt_names_no_server_package(text):
    assert default_major(text) is None


def test_apt_cache_show_format_is_read_too():
    stanza = "Package: postgresql\nVersion: 16+257build1\nDepends: postgresql-16\nSuggests: postgresql-doc\n"
    assert default_major(stanza) == "16"


@pytest.mark.parametrize(("depends", "major"), [(d, m) for d, _, m in DISTRIBUTIONS.values()],
                         ids=list(DISTRIBUTIONS))
def test_empty_root_gets_one_actionable_line_for_the_distribution_default(tmp_path, depends, major):
    with pytest.raises(LocalDbError) as info:
        choose(tmp_path, lambda: depends)
    message = one_line(info)
    assert message.startswith(f"PostgreSQL {major} is not installed")
    assert f"run: apt-get install -y postgresql-{major} postgresql-{major}-cron postgresql-server-dev-{major}" in message
    assert "apt.postgresql.org" in message  # where the other majors come from
    # ... and what install.sh installs there: the same three packages
    assert debian_install(tmp_path, major).missing_packages() == [
        f"postgresql-{major}", f"postgresql-{major}-cron", f"postgresql-server-dev-{major}"]


@pytest.mark.parametrize(("depends", "major"), [(d, m) for d, _, m in DISTRIBUTIONS.values()],
                         ids=list(DISTRIBUTIONS))
def test_the_distribution_default_once_installed(tmp_path, depends, major):
    install_major(tmp_path, major)
    chosen = choose(tmp_path, lambda: depends)
    assert chosen.major == major
    assert chosen.bindir == tmp_path / f"usr/lib/postgresql/{major}/bin"
    assert chosen.pg_config == tmp_path / f"usr/lib/postgresql/{major}/bin/pg_config"
    assert chosen.pgxs == tmp_path / f"usr/lib/postgresql/{major}/lib/pgxs/src/makefiles/pgxs.mk"
    assert chosen.sharedir == tmp_path / f"usr/share/postgresql/{major}"
    assert chosen.missing_packages() == []


def test_empty_root_without_apt_is_one_line_too(tmp_path):
    with pytest.raises(LocalDbError) as info:
        choose(tmp_path, no_apt)
    message = one_line(info)
    assert "no PostgreSQL with pg_cron is installed" in message
    assert "apt-get install -y postgresql" in message and "apt.postgresql.org" in message


def test_of_several_majors_the_one_with_pg_cron(tmp_path):
    install_major(tmp_path, "17", cron=False)
    install_major(tmp_path, "16", cron=False)
    install_major(tmp_path, "14")
    assert installed_majors(tmp_path) == ["17", "16", "14"]
    assert choose(tmp_path, must_not_ask_apt).major == "14"


def test_of_several_majors_with_pg_cron_the_newest(tmp_path):
    install_major(tmp_path, "15")
    install_major(tmp_path, "17")
    assert choose(tmp_path, must_not_ask_apt).major == "17"


def test_a_major_without_its_server_is_not_installed(tmp_path):
    install_major(tmp_path, "15")
    (tmp_path / "usr/lib/postgresql/17/lib").mkdir(parents=True)  # a leftover directory, no server
    assert installed_majors(tmp_path) == ["15"]
    assert choose(tmp_path, must_not_ask_apt).major == "15"


def test_installed_without_pg_cron_names_its_cron_package(tmp_path):
    install_major(tmp_path, "15", cron=False)
    with pytest.raises(LocalDbError) as info:
        choose(tmp_path, lambda: DISTRIBUTIONS["debian-12-bookworm"][0])
    message = one_line(info)
    assert message.startswith("PostgreSQL 15 is installed but not its pg_cron")
    assert "run: apt-get install -y postgresql-15-cron (other majors: " in message


def test_missing_headers_are_the_one_package_to_install(tmp_path):
    # Debian's postgresql-client-15 ships pg_config and pgxs.mk, but not the server headers.
    install_major(tmp_path, "15", dev=False)
    assert choose(tmp_path, must_not_ask_apt).missing_packages() == ["postgresql-server-dev-15"]


def test_an_explicit_major_is_used_even_when_older(tmp_path):
    install_major(tmp_path, "15")
    install_major(tmp_path, "17")
    assert choose(tmp_path, must_not_ask_apt, explicit="15").major == "15"


def test_an_explicit_major_that_is_missing_is_one_line_with_the_repository(tmp_path):
    install_major(tmp_path, "15")
    with pytest.raises(LocalDbError) as info:
        choose(tmp_path, lambda: DISTRIBUTIONS["debian-12-bookworm"][0], explicit="17")
    message = one_line(info)
    assert message.startswith("PostgreSQL 17 is not installed")
    assert "apt-get install -y postgresql-17 postgresql-17-cron postgresql-server-dev-17" in message
    assert "your distribution ships 15" in message and "apt.postgresql.org" in message
    assert "PostgreSQL 15 is installed with pg_cron" in message


@pytest.mark.parametrize("text", ["abc", "13", "", "15.4"])
def test_an_explicit_major_must_be_a_supported_number(tmp_path, text):
    with pytest.raises(LocalDbError, match="must be a PostgreSQL major version, 14 or newer"):
        choose(tmp_path, no_apt, explicit=text)


@pytest.mark.parametrize("nested", [False, True], ids=["prefix", "prefix-with-postgresql-subdirs"])
def test_a_make_install_prefix(tmp_path, nested):
    sub = "postgresql" if nested else ""
    for path in (f"include/{sub}/server/pg_config.h", f"lib/{sub}/pgxs/src/makefiles/pgxs.mk",
                 f"share/{sub}/postgres.bki", "bin/postgres"):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).touch()
    (tmp_path / f"include/{sub}/server/pg_config.h").write_text('#define PG_MAJORVERSION "17"\n')
    install = prefix_install(tmp_path)
    assert install.major == "17"
    assert install.pkglibdir == (tmp_path / "lib" / sub if nested else tmp_path / "lib")
    assert install.sharedir == (tmp_path / "share" / sub if nested else tmp_path / "share")
    assert install.pgxs == install.pkglibdir / "pgxs/src/makefiles/pgxs.mk"
    assert install.packages is None and install.missing_packages() == []


def test_a_directory_that_is_no_prefix(tmp_path):
    with pytest.raises(LocalDbError, match="is not a PostgreSQL install prefix"):
        prefix_install(tmp_path)


def test_the_cli_on_an_empty_machine_is_one_line(monkeypatch, capsys, tmp_path):
    monkeypatch.setattr(discovery, "FS_ROOT", tmp_path / "empty-root")
    monkeypatch.setattr(discovery, "apt_cache_depends", lambda: DISTRIBUTIONS["ubuntu-24.04-noble"][0])
    monkeypatch.delenv(discovery.ENV_MAJOR, raising=False)
    with pytest.raises(SystemExit) as info:
        cli.main(["up", "--root", str(tmp_path / "c"), "--port", "5"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("localdb: PostgreSQL 16 is not installed")
    assert "apt-get install -y postgresql-16 postgresql-16-cron postgresql-server-dev-16" in err
    assert not (tmp_path / "c" / "data").exists()


def test_the_cli_with_a_major_this_machine_lacks(tmp_path):
    # A real `python -m localdb` on this machine: PostgreSQL 99 is nowhere.
    for argv, env in ((["up", "--pg-major", "99"], {}), (["up"], {discovery.ENV_MAJOR: "99"}),
                      (["pg", "--pg-major", "x"], {})):
        proc = subprocess.run([sys.executable, "-m", "localdb", *argv, "--root", str(tmp_path / "c")],
                              cwd=REPO, capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin", **env},
                              check=False)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
        assert proc.stderr.startswith("localdb: ")
        assert ("PostgreSQL 99 is not installed" in proc.stderr) or ("'x'" in proc.stderr)
