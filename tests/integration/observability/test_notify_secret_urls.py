"""Webhook URLs are credentials: from RECONCILE_NOTIFY_URLS and from a file (a mounted Secret) they are
used, and neither the URL nor its path (the token) shows in any output: logs, stdout, /metrics, /readyz,
/healthz, the process's command line, or an error about a malformed one."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fix_db import DbTarget, free_port
from tests.integration.apply_support import reconcile
from tests.integration.controller_support import copy_manifest, wait_until, watcher
from tests.integration.observability_support import Receiver


def _secret_parts(url: str) -> list[str]:
    """The URL, its path and each segment of the path long enough to be a token."""
    path = "/" + url.split("://", 1)[1].split("/", 1)[1]
    return [url, path, *(segment for segment in path.split("/") if len(segment) >= 8)]


def test_urls_from_the_environment_and_a_file_are_used_and_never_shown(audited_db: DbTarget,
                                                                      tmp_path: Path) -> None:
    from_env, from_file = Receiver(), Receiver()
    env_url = from_env.url.replace("receiver-token-4f1c", "env-token-7d2a9c61")
    file_url = from_file.url.replace("receiver-token-4f1c", "file-token-b83e05f2")
    dead_url = f"http://127.0.0.1:{free_port()}/hooks/T000/B000/dead-token-51c0e7aa"  # delivery fails: logged
    urls_file = tmp_path / "notify-urls"
    urls_file.write_text(f"# from the Secret\n{file_url}\n\n{dead_url}\n")
    manifest = copy_manifest(tmp_path)
    try:
        with watcher(audited_db.url, manifest, "--apply", "--notify-file", str(urls_file), interval="0.3s",
                     workdir=tmp_path, env={"RECONCILE_NOTIFY_URLS": env_url}) as w:
            # the first cycle applies the manifest (a roll-out, not drift): a message to every URL
            wait_until("manifest_rolled_out at both receivers",
                       lambda: from_env.events("manifest_rolled_out") and from_file.events("manifest_rolled_out"), 20)
            w.wait_event("notification_failed", timeout=20)  # the dead URL: 4 attempts with backoff
            w.wait_http()
            outputs = {
                "stderr": w.stderr(), "stdout": w.stdout(),
                "cmdline": Path(f"/proc/{w.proc.pid}/cmdline").read_bytes().decode(errors="replace"),
                **{p: w.get(p).text for p in ("/metrics", "/readyz", "/healthz")},
            }
            sent = w.events("notification_sent")
        assert {e["target"] for e in sent} >= {env_url.split("/hooks")[0]}
        for url in (env_url, file_url, dead_url):
            for part in _secret_parts(url):
                for name, text in outputs.items():
                    assert part not in text, f"{part!r} appeared in {name}"
    finally:
        from_env.close()
        from_file.close()


@pytest.mark.parametrize(("content", "where"), [
    ("https://hooks.example.test/services/T0/B0/tok-9f3a\nhooks.example.test/services/T0/B1/tok-77e2\n",
     "notify-urls:2: the URL's scheme must be http or https"),
    ("http://hooks.example.test:tok-77e2/services\n", "notify-urls:1: not a URL"),
], ids=["no-scheme", "bad-port"])
def test_a_malformed_url_in_the_file_names_its_line_not_its_text(tmp_path: Path, content: str, where: str) -> None:
    urls_file = tmp_path / "notify-urls"
    urls_file.write_text(content)
    result = reconcile("postgresql://127.0.0.1:1/none", "--watch", "--notify-file", str(urls_file),
                       manifest=copy_manifest(tmp_path))
    assert result.exit_code == 1
    assert len(result.stderr.strip().splitlines()) == 1 and where in result.stderr, result.stderr
    for part in ("tok-9f3a", "tok-77e2", "/services/T0", "hooks.example.test"):
        assert part not in result.stderr


def test_a_malformed_url_in_the_environment_names_the_variable_not_the_url(tmp_path: Path) -> None:
    result = reconcile("postgresql://127.0.0.1:1/none", "--watch", manifest=copy_manifest(tmp_path),
                       env={"RECONCILE_NOTIFY_URLS": "https://ok.example.test/a ftp://hooks.example.test/tok-5e1b"})
    assert result.exit_code == 1
    assert result.stderr.startswith("error: RECONCILE_NOTIFY_URLS (URL 2): the URL's scheme must be http or https")
    assert "tok-5e1b" not in result.stderr and "hooks.example" not in result.stderr


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    result = reconcile("postgresql://127.0.0.1:1/none", "--watch", "--notify-file", str(tmp_path / "absent"),
                       manifest=copy_manifest(tmp_path))
    assert result.exit_code == 1
    assert result.stderr.startswith(f"error: --notify-file {tmp_path / 'absent'}: cannot read it (No such file")
    assert len(result.stderr.strip().splitlines()) == 1
