"""Generators: the targets a targets file does not list one by one (Supabase branches, Supabase projects).

Data flow: a `GeneratorSpec` and the environment (its access token, database passwords) ──
`reconciler.fleet.management_api`──▶ the API's branches or projects ──▶ `Target`s whose database URL and
fetched keys are `SecretValue`s (memory only; never in a message, a repr or a log line). A generator that
fails is one line in `TargetList.errors`; a project or branch it cannot use is one line too, and the
others are still returned. Skipped branches (migrations not passed yet) are `TargetList.notes`.

Names: the branch's (or project's) name, lowercased to ASCII; every run of characters other than a-z, 0-9,
".", "_" and "-" becomes "-"; leading and trailing ".", "_", "-" are dropped; `name_prefix` goes first;
at most 63 characters; an empty result is the ref. When two get the same name, the one created first
keeps it and the others get "-" and the first 8 characters of their ref (stable across refreshes: a
target's name is its metric label and its shard key).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import quote as url_quote

from reconciler.errors import ReconcilerError
from reconciler.fleet.generator_cache import Fetched, GeneratorCache, listed_fingerprint
from reconciler.fleet.management_api import ManagementApi
from reconciler.fleet.shard import shard_of
from reconciler.fleet.target import Target, ValueSource
from reconciler.fleet.targets_models import BranchesSpec, GeneratorSpec, ProjectsSpec
from reconciler.manifest.problems import printable
from reconciler.manifest.types import quote
from reconciler.secret_value import SecretValue

if TYPE_CHECKING:
    import httpx

__all__ = ["READY_BRANCH_STATUSES", "GeneratedTargets", "generate", "target_name"]

#: Branch statuses whose migrations have passed (the others: CREATING_PROJECT, RUNNING_MIGRATIONS,
#: MIGRATIONS_FAILED, or anything new, are skipped until a later refresh).
READY_BRANCH_STATUSES = frozenset({"MIGRATIONS_PASSED", "FUNCTIONS_DEPLOYED", "FUNCTIONS_FAILED"})
READY_PROJECT_STATUS = "ACTIVE_HEALTHY"
#: Requests for branch details in flight at once (the API allows about 120 a minute).
CONCURRENT_REQUESTS = 4
_REF = re.compile(r"[a-z0-9]{1,64}")
_BRANCH_ID = re.compile(r"[A-Za-z0-9-]{1,64}")  # a uuid: it goes into a request path
_TOKEN = re.compile(r"[!-~]+")
#: A host name, an IPv6 address, or a socket directory (the stand-in's local clusters).
_HOST = re.compile(r"[A-Za-z0-9._-]+|[0-9A-Fa-f:]+|/[^?#&\x00-\x1f]*")
_MAX_NAME = 63


@dataclass
class GeneratedTargets:
    """What one generator produced: targets, one line per thing it could not use, and skipped items."""

    targets: list[Target] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def generate(spec: GeneratorSpec, origin: str, files: tuple[str, ...], environ: Mapping[str, str], *,
             transport: httpx.BaseTransport | None = None, cache: GeneratorCache | None = None,
             shard: tuple[int, int] | None = None) -> GeneratedTargets:
    """The targets of one generator now; every failure is a line in `errors`, never an exception.

    `origin` names the generator in messages ("generator supabase_branches (targets.yaml:18)"); `files`
    are its manifest files, already resolved against the targets file's directory. With `shard`
    (ordinal, replicas) only that shard's targets are made (and fetched); with `cache` what was fetched
    at an earlier refresh is reused while the list entry is unchanged (`reconciler.fleet.generator_cache`).
    """
    inner = spec.spec
    token = environ.get(inner.access_token_env)
    if not token or not _TOKEN.fullmatch(token):
        # A token HTTP cannot carry would fail inside httpx with a message that quotes the header.
        state = {None: "is not set", "": "is empty"}.get(token, "does not hold a token (printable ASCII, no spaces)")
        return GeneratedTargets(errors=[f"{origin}: environment variable {inner.access_token_env} {state} "
                                        "(the Management API access token)"])
    out = GeneratedTargets()
    fetch = _Fetching(cache or GeneratorCache(), _generator_key(inner), shard)
    fetch.cache.pacer.relax()
    try:
        with ManagementApi(inner.api_url, token, transport=transport, pacer=fetch.cache.pacer) as api:
            if isinstance(inner, BranchesSpec):
                _branches(inner, api, origin, files, out, fetch)
            else:
                _projects(inner, api, origin, files, environ, out, fetch)
    except ReconcilerError as e:
        return GeneratedTargets(errors=[f"{origin}: {e.one_line()}"], notes=out.notes)
    return out


@dataclass
class _Fetching:
    """One generator's refresh: the cache, its key in it, this replica's shard, the items seen."""

    cache: GeneratorCache
    key: str
    shard: tuple[int, int] | None
    seen: set[str] = field(default_factory=set)

    def mine(self, name: str) -> bool:
        return self.shard is None or shard_of(name, self.shard[1]) == self.shard[0]

    def known(self, item: Mapping[str, Any], name: str) -> Fetched | None:
        self.seen.add(str(item["id"]))
        return self.cache.get(self.key, str(item["id"]), name, listed_fingerprint(item))

    def keys(self, api: ManagementApi, ref: str, spec: BranchesSpec | ProjectsSpec,
             known: Fetched | None) -> tuple[Mapping[str, str], float]:
        """The project's API keys: the ones known while fresh, else fetched now."""
        if not _needs_keys(spec):
            return {}, float("inf")
        if known is not None and known.keys is not None and self.cache.keys_fresh(known):
            return known.keys, known.keys_at
        return api.api_keys(ref), self.cache.clock()

    def done(self) -> None:
        self.cache.keep_only(self.key, self.seen)


def _generator_key(spec: BranchesSpec | ProjectsSpec) -> str:
    scope = spec.project_ref if isinstance(spec, BranchesSpec) else "projects"
    return f"{spec.api_url.rstrip('/')} {scope} {spec.access_token_env}"


# ---------------------------------------------------------------------------------------------------------
# supabase_branches
# ---------------------------------------------------------------------------------------------------------


def _branches(spec: BranchesSpec, api: ManagementApi, origin: str, files: tuple[str, ...],
              out: GeneratedTargets, fetch: _Fetching) -> None:
    chosen = []
    for branch in api.branches(spec.project_ref):
        shown = _shown(branch.get("name"))
        if branch.get("is_default") is True and not spec.include_default:
            continue
        status = branch.get("status")
        if not (isinstance(status, str) and status in READY_BRANCH_STATUSES):
            out.notes.append(f"{origin}: branch {shown} skipped: status {_shown(status)} "
                             "(its migrations have not passed yet)")
            continue
        branch_id = branch.get("id")
        if not (isinstance(branch_id, str) and _BRANCH_ID.fullmatch(branch_id)) or not _is_ref(branch.get("project_ref")):
            out.errors.append(f"{origin}: branch {shown}: the Management API returned no id or project_ref")
            continue
        chosen.append(branch)
    names = unique_names(chosen, spec.name_prefix or "")
    mine = [(b, names[b["id"]]) for b in chosen if fetch.mine(names[b["id"]])]
    known = [fetch.known(b, name) for b, name in mine]
    with ThreadPoolExecutor(CONCURRENT_REQUESTS) as pool:
        made = list(pool.map(lambda bk: _branch_target(spec, api, origin, files, bk[0][0], bk[0][1], bk[1], fetch),
                             zip(mine, known, strict=True)))
    fetch.done()
    for target, error in made:
        if target is not None:
            out.targets.append(target)
        else:
            out.errors.append(error)


def _branch_target(spec: BranchesSpec, api: ManagementApi, origin: str, files: tuple[str, ...],
                   branch: Mapping[str, Any], name: str, known: Fetched | None,
                   fetch: _Fetching) -> tuple[Target | None, str]:
    ref = str(branch["project_ref"])
    try:
        if known is not None and known.url is not None:
            keys, keys_at = fetch.keys(api, ref, spec, known)
            fetch.cache.put(fetch.key, str(branch["id"]), Fetched(known.listed, known.url, keys, keys_at))
            return _target(spec, name, ref, known.url, keys, origin, files)
    except ReconcilerError as e:
        return None, f"{origin}: branch {_shown(branch.get('name'))}: {e.one_line()}"
    made, url, keys, keys_at = _fetched_branch(spec, api, origin, files, branch, name, fetch)
    if made[0] is not None and url is not None:
        fetch.cache.put(fetch.key, str(branch["id"]), Fetched(listed_fingerprint(branch), url, keys, keys_at))
    return made


def _fetched_branch(spec: BranchesSpec, api: ManagementApi, origin: str, files: tuple[str, ...],
                    branch: Mapping[str, Any], name: str, fetch: _Fetching) -> tuple[
                        tuple[Target | None, str], str | None, Mapping[str, str], float]:
    """The branch's target from its details fetched now: (target or error), url, keys, when the keys were read."""
    shown = _shown(branch.get("name"))
    ref = str(branch["project_ref"])
    try:
        detail = api.branch(str(branch["id"]))
        host, port, user, password = (detail.get(k) for k in ("db_host", "db_port", "db_user", "db_pass"))
        if isinstance(port, str) and port.isascii() and port.isdigit():
            port = int(port)
        if not (isinstance(host, str) and _HOST.fullmatch(host) and isinstance(port, int)
                and not isinstance(port, bool) and 0 < port < 65536):
            return (None, f"{origin}: branch {shown}: the Management API returned no valid db_host or db_port"), \
                None, {}, 0.0
        if not (isinstance(user, str) and user and isinstance(password, str) and password):
            return (None, f"{origin}: branch {shown}: the Management API returned no db_user or db_pass "
                          "(the token may not read database credentials)"), None, {}, 0.0
        keys, keys_at = fetch.keys(api, ref, spec, None)
    except ReconcilerError as e:
        return (None, f"{origin}: branch {shown}: {e.one_line()}"), None, {}, 0.0
    url = database_url(host, port, user, password, spec.sslmode)
    return _target(spec, name, ref, url, keys, origin, files), url, keys, keys_at


# ---------------------------------------------------------------------------------------------------------
# supabase_projects
# ---------------------------------------------------------------------------------------------------------


def _projects(spec: ProjectsSpec, api: ManagementApi, origin: str, files: tuple[str, ...],
              environ: Mapping[str, str], out: GeneratedTargets, fetch: _Fetching) -> None:
    pattern = re.compile(spec.name_pattern) if spec.name_pattern is not None else None
    chosen = []
    for project in api.projects():
        project_name = project.get("name")
        if pattern is not None and not (isinstance(project_name, str) and pattern.search(project_name)):
            continue
        shown = _shown(project_name)
        if project.get("status") != READY_PROJECT_STATUS:
            out.notes.append(f"{origin}: project {shown} skipped: status {_shown(project.get('status'))}")
            continue
        if not _is_ref(project.get("ref")):
            out.errors.append(f"{origin}: project {shown}: the Management API returned no valid ref")
            continue
        chosen.append({**project, "id": project["ref"], "project_ref": project["ref"]})
    names = unique_names(chosen, spec.name_prefix or "")
    for project in chosen:
        shown, ref = _shown(project.get("name")), str(project["ref"])
        if not fetch.mine(names[ref]):
            continue
        variable = f"{spec.database_password_env}{ref.upper()}"
        password = environ.get(variable)
        if not password:
            out.errors.append(f"{origin}: project {shown}: environment variable {variable} is "
                              f"{'empty' if password == '' else 'not set'} (its database password)")
            continue
        database = project.get("database")
        host = database.get("host") if isinstance(database, Mapping) else None
        host = host if isinstance(host, str) and _HOST.fullmatch(host) else f"db.{ref}.supabase.co"
        known = fetch.known(project, names[ref])
        try:
            keys, keys_at = fetch.keys(api, ref, spec, known)
        except ReconcilerError as e:
            out.errors.append(f"{origin}: project {shown}: {e.one_line()}")
            continue
        fetch.cache.put(fetch.key, ref, Fetched(listed_fingerprint(project), None, keys, keys_at))
        url = database_url(host, 5432, spec.database_user, password, spec.sslmode)
        target, error = _target(spec, names[ref], ref, url, keys, origin, files)
        if target is not None:
            out.targets.append(target)
        else:
            out.errors.append(error)
    fetch.done()


# ---------------------------------------------------------------------------------------------------------
# Shared
# ---------------------------------------------------------------------------------------------------------


def _needs_keys(spec: BranchesSpec | ProjectsSpec) -> bool:
    return any(value != "url" for value in spec.secrets.values())


def _target(spec: BranchesSpec | ProjectsSpec, name: str, ref: str, url: str, keys: Mapping[str, str],
            origin: str, files: tuple[str, ...]) -> tuple[Target | None, str]:
    values = {"url": f"https://{ref}.supabase.co", "service_role_key": keys.get("service_role"),
              "anon_key": keys.get("anon")}
    secrets: dict[str, ValueSource] = {}
    for secret, what in spec.secrets.items():
        value = values[what]
        if not value:
            return None, f"{origin}: {name}: the Management API returned no {what.removesuffix('_key')} API key"
        secrets[secret] = ValueSource(value=SecretValue(value))
    return Target(name=name, database_url=ValueSource(value=SecretValue(url)), secrets=secrets,
                  environ={"SUPABASE_PROJECT_REF": ref}, files=files, labels=dict(spec.labels), origin=origin), ""


def database_url(host: str, port: int, user: str, password: str, sslmode: str) -> str:
    """A libpq URL with user and password percent-encoded; a socket directory host goes in `host=`."""
    auth = f"{url_quote(user, safe='')}:{url_quote(password, safe='')}"
    if host.startswith("/"):
        return f"postgresql://{auth}@/postgres?host={url_quote(host, safe='/')}&port={port}&sslmode={sslmode}"
    shown_host = f"[{host}]" if ":" in host else host
    return f"postgresql://{auth}@{shown_host}:{port}/postgres?sslmode={sslmode}"


def target_name(raw: object, prefix: str, fallback: str) -> str:
    """A valid target name from a branch's or project's name (the rule is in the module docstring)."""
    text = raw if isinstance(raw, str) else ""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    text = re.sub(r"[^a-z0-9._-]+", "-", text).strip("-._")
    name = (prefix + text)[:_MAX_NAME].rstrip("-._") if text else ""
    return name or (prefix + fallback)[:_MAX_NAME]


def unique_names(items: Iterable[Mapping[str, Any]], prefix: str) -> dict[str, str]:
    """id -> target name; the item created first keeps a shared name, the others get "-<ref[:8]>"."""
    ordered = sorted(items, key=lambda i: (str(i.get("created_at") or ""), str(i["id"])))
    taken: dict[str, str] = {}
    out: dict[str, str] = {}
    for item in ordered:
        ref = str(item["project_ref"])
        name = target_name(item.get("name"), prefix, ref)
        if name in taken:
            name = f"{name[:_MAX_NAME - 9].rstrip('-._')}-{ref[:8]}"
        taken[name] = str(item["id"])
        out[str(item["id"])] = name
    return out


def _is_ref(value: object) -> bool:
    return isinstance(value, str) and _REF.fullmatch(value) is not None


def _shown(value: object) -> str:
    return printable(quote(value[:80])) if isinstance(value, str) else "(none)"


def merge_generated(declared: Sequence[Target], runs: Sequence[GeneratedTargets]) -> tuple[
        tuple[Target, ...], tuple[str, ...], tuple[str, ...]]:
    """Declared targets, then each generator's in order; a name already taken is an error line, not a target."""
    targets = list(declared)
    taken = {t.name: t.origin for t in declared}
    errors: list[str] = []
    notes: list[str] = []
    for run in runs:
        errors.extend(run.errors)
        notes.extend(run.notes)
        for target in run.targets:
            if target.name in taken:
                errors.append(f"{target.origin}: target name {quote(target.name)} is taken already (by "
                              f"{taken[target.name]}): not generated")
                continue
            taken[target.name] = target.origin
            targets.append(target)
    return tuple(targets), tuple(errors), tuple(notes)
