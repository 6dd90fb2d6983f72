"""`reconcile verify --targets FILE`: a one-shot report of every target's pipeline (an edge, as cli/verify.py).

Each target is verified as `reconcile verify` verifies one database (`verify.collect`: one connection, the
plan's read with the evidence riding on it), `--parallel` at a time. The text report is a table, target x
check family (`fleet.verification.CHECK_FAMILIES`: a family is as bad as its worst check), then one line
per failing check; `--format json` is one document. Exit 1 when a target could not be verified (or a
generator failed), else 2 when any target's check fails, else 0. No secret value is printed: every
target's resolved values are scrubbed from its lines.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from reconciler.cli.support import EXIT_CHANGES, EXIT_ERROR, EXIT_OK

if TYPE_CHECKING:
    from collections.abc import Callable

    from reconciler.engine.session import Session
    from reconciler.fleet.runner import ManifestCache
    from reconciler.fleet.target import Target
    from reconciler.fleet.targets_file import TargetList

    #: (a session, --wait, the manifest's name) -> verify's check results
    Collect = Callable[[Session, float | None, str], list[Any]]

_RANK = {"fail": 3, "warn": 2, "pass": 1, "skip": 0}


@dataclass
class TargetReport:
    name: str
    results: list[Any] = field(default_factory=list)
    error: str | None = None
    secrets: list[str] = field(default_factory=list, repr=False)

    def families(self) -> dict[str, str]:
        from reconciler.fleet.verification import family_of

        out: dict[str, str] = {}
        for r in self.results:
            family = family_of(r.name)
            if family is not None and _RANK[r.status.value] >= _RANK.get(out.get(family, "skip"), 0):
                out[family] = r.status.value
        return out


def verify_targets(listing: TargetList, files: Sequence[str], environ: Mapping[str, str], *, parallel: int,
                   fmt: str, collect: Collect) -> int:
    """`collect` is `reconcile verify`'s (cli/verify.py, which imports this module: passed, not imported)."""
    from reconciler.fleet.runner import ManifestCache

    manifests = ManifestCache()
    with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="verify") as pool:
        reports = list(pool.map(lambda t: _verify_one(t, files, environ, manifests, collect), listing.targets))
    from reconciler.secret_value import scrub

    every_secret = [secret for report in reports for secret in report.secrets]
    shown = to_json(reports, listing.errors) if fmt == "json" else to_text(reports)
    click.echo(scrub(shown, every_secret), nl=False)
    for error in listing.errors:
        click.echo(f"error: {error}", err=True)
    for report in reports:
        if report.error is not None:
            click.echo(f"error: target {report.name}: {report.error}", err=True)
    if listing.errors or any(r.error is not None for r in reports):
        return EXIT_ERROR
    return EXIT_CHANGES if any(r.status.value == "fail" for rep in reports for r in rep.results) else EXIT_OK


def _verify_one(target: Target, files: Sequence[str], environ: Mapping[str, str], manifests: ManifestCache,
                collect: Collect) -> TargetReport:
    from reconciler.engine.session import Session
    from reconciler.errors import ManifestError, ReconcilerError, SecretSourceError
    from reconciler.fleet.runner import target_files
    from reconciler.kinds import Planes, open_planes
    from reconciler.secret_value import scrub

    report = TargetReport(target.name)
    paths = target_files(files, target)
    try:
        manifest = manifests.load(paths)
        url = target.url(environ).reveal()
        values, secret_error = None, None
        try:
            values = target.secret_values(manifest, environ)
        except SecretSourceError as e:  # a failed preflight check, as `reconcile verify` reports it
            secret_error = e.one_line()
        report.secrets = [v.reveal() for v in (values or {}).values()]
        environment = target.environment(environ)
        planes = open_planes(manifest, environment) if values is not None else Planes()
        try:
            report.results = collect(Session(manifest, url, environment, values, secret_error, planes), None,
                                     ", ".join(paths))
        finally:
            planes.close()
    except ManifestError as e:
        report.error = "; ".join(e.one_line().splitlines())
    except ReconcilerError as e:  # the outputs name the target once
        report.error = scrub(e.one_line(), report.secrets)
    except Exception as e:  # a bug in one target must not stop the report of the others
        report.error = f"unexpected {type(e).__name__} (a bug in the reconciler)"
    return report


def to_text(reports: Sequence[TargetReport]) -> str:
    from reconciler.fleet.verification import CHECK_FAMILIES
    from reconciler.secret_value import scrub

    header = ("TARGET", *CHECK_FAMILIES, "ERROR")
    rows: list[tuple[str, ...]] = [header]
    for rep in reports:
        families = rep.families()
        rows.append((rep.name, *(families.get(f, "-") if rep.error is None else "-" for f in CHECK_FAMILIES),
                     rep.error or "-"))
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    lines = ["  ".join(f"{cell:<{widths[i]}}" for i, cell in enumerate(row[:-1])) + "  " + row[-1] for row in rows]
    failing = [f"target {rep.name}: {r.name}: {scrub(r.summary, rep.secrets)}"
               for rep in reports for r in rep.results if r.status.value == "fail"]
    failed_targets = sum(1 for rep in reports if any(r.status.value == "fail" for r in rep.results))
    errors = sum(rep.error is not None for rep in reports)
    lines += ["", f"{len(reports)} target(s): {failed_targets} with failing checks, {errors} not verified."]
    if failing:
        lines += ["", "Failing checks:", *(f"  {line}" for line in failing)]
    return "\n".join(line.rstrip() for line in lines) + "\n"


def to_json(reports: Sequence[TargetReport], generator_errors: Sequence[str]) -> str:
    from reconciler.secret_value import scrub

    document = {"targets": {rep.name: {"error": rep.error, "checks": [
        {**r.as_dict(), "summary": scrub(r.summary, rep.secrets),
         "evidence": [scrub(line, rep.secrets) for line in r.evidence]} for r in rep.results]} for rep in reports},
        "errors": list(generator_errors)}
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
