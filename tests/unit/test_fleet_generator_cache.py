"""Generator requests in proportion to change and to the shard, counted at the Management API stand-in."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from localdb.management_api import ManagementApiStandIn
from reconciler.fleet.generator_cache import GeneratorCache, RequestPacer
from reconciler.fleet.shard import shard_of
from reconciler.fleet.targets_file import TargetList, read_targets

TOKEN = "sbp_cache-token-MARKER"
ENV = {"SUPABASE_ACCESS_TOKEN": TOKEN}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def api() -> Iterator[ManagementApiStandIn]:
    with ManagementApiStandIn(token=TOKEN, rate_limit=100_000) as stand_in:
        yield stand_in


def branches_file(tmp_path: Path, api: ManagementApiStandIn, ref: str) -> str:
    path = tmp_path / "targets.yaml"
    path.write_text(f"version: 1\ngenerators:\n  - supabase_branches:\n      project_ref: {ref}\n"
                    f"      api_url: {api.url}\n      secrets: {{project_url: url, service_role_key: service_role_key}}\n")
    return str(path)


def refresh(api: ManagementApiStandIn, path: str, cache: GeneratorCache, shard: tuple[int, int] | None = None,
            environ: dict[str, str] | None = None) -> tuple[TargetList, int]:
    """The targets and how many requests this refresh made."""
    api.clear()
    listing = read_targets(path, environ or ENV, cache=cache, shard=shard)
    assert listing.errors == ()
    return listing, len(api.requests)


def test_a_refresh_costs_one_request_plus_two_per_new_or_changed_branch(api: ManagementApiStandIn,
                                                                         tmp_path: Path) -> None:
    project = api.add_project("app")
    branches = [api.add_branch(project.ref, f"pr-{i}") for i in range(10)]
    path = branches_file(tmp_path, api, project.ref)
    cache = GeneratorCache()
    first, requests = refresh(api, path, cache)
    assert len(first.targets) == 10 and requests == 1 + 10 + 10  # the list, then details and keys of each
    again, requests = refresh(api, path, cache)
    assert requests == 1 and [r.path for r in api.requests] == [f"/v1/projects/{project.ref}/branches"]
    assert {t.name: t.url({}).reveal() for t in again.targets} == {t.name: t.url({}).reveal() for t in first.targets}
    assert {t.name: t.secrets["service_role_key"].value.reveal() for t in again.targets} == {  # type: ignore[union-attr]
        b.name: b.service_role_key for b in branches}
    for i in range(10, 20):
        api.add_branch(project.ref, f"pr-{i}")
    grown, requests = refresh(api, path, cache)
    assert len(grown.targets) == 20 and requests == 1 + 2 * 10
    api.set_status(branches[0].ref, "FUNCTIONS_DEPLOYED")  # its list entry changed: fetched again
    api.remove_branch(branches[1].ref)
    changed, requests = refresh(api, path, cache)
    assert requests == 1 + 2 and len(changed.targets) == 19
    assert len(api.calls(f"/v1/branches/{branches[0].id}")) == 1
    assert TOKEN not in repr(cache) and branches[0].db_pass not in repr(cache.__dict__)


def test_keys_are_reread_on_the_slower_schedule_and_at_once_after_invalidate(api: ManagementApiStandIn,
                                                                              tmp_path: Path) -> None:
    project = api.add_project("app")
    for i in range(5):
        api.add_branch(project.ref, f"pr-{i}")
    path = branches_file(tmp_path, api, project.ref)
    clock = Clock()
    cache = GeneratorCache(keys_max_age=600, clock=clock)
    refresh(api, path, cache)
    clock.now += 599
    assert refresh(api, path, cache)[1] == 1
    clock.now += 2  # the keys are older than keys_max_age: keys again, not the connection details
    assert refresh(api, path, cache)[1] == 1 + 5
    assert len(api.calls("api-keys")) == 5 and api.calls("/v1/branches/") == []
    assert cache.invalidate("pr-3") and not cache.invalidate("declared-not-generated")
    _, requests = refresh(api, path, cache)
    assert requests == 1 + 2 and len(api.calls("/v1/branches/")) == 1
    assert refresh(api, path, cache)[1] == 1


def test_a_replica_fetches_only_its_own_shard(api: ManagementApiStandIn, tmp_path: Path) -> None:
    project = api.add_project("app")
    for i in range(40):
        api.add_branch(project.ref, f"pr-{i}")
    path = branches_file(tmp_path, api, project.ref)
    seen: list[str] = []
    for ordinal in range(4):
        listing, requests = refresh(api, path, GeneratorCache(replicas=4), shard=(ordinal, 4))
        names = listing.names()
        assert names and all(shard_of(n, 4) == ordinal for n in names)
        assert requests == 1 + 2 * len(names)
        seen += names
    assert sorted(seen) == sorted(f"pr-{i}" for i in range(40))


def test_projects_fetch_keys_once_and_only_for_their_shard(api: ManagementApiStandIn, tmp_path: Path) -> None:
    projects = [api.add_project(f"tenant-{i}") for i in range(12)]
    env = {**ENV, **{f"SUPABASE_DB_PASSWORD_{p.ref.upper()}": f"pw-{i}" for i, p in enumerate(projects)}}
    path = tmp_path / "targets.yaml"
    path.write_text(f"version: 1\ngenerators:\n  - supabase_projects:\n      api_url: {api.url}\n"
                    "      secrets: {service_role_key: service_role_key}\n")
    cache = GeneratorCache(replicas=2)
    listing, requests = refresh(api, str(path), cache, shard=(1, 2), environ=env)
    mine = [p for p in projects if shard_of(p.name, 2) == 1]
    assert sorted(listing.names()) == sorted(p.name for p in mine) and requests == 1 + len(mine)
    assert refresh(api, str(path), cache, shard=(1, 2), environ=env)[1] == 1


def test_429_spreads_the_remaining_requests_instead_of_a_burst(tmp_path: Path) -> None:
    # 10 requests per 0.5 s window; 31 requests to make, 4 at a time. After the first 429 the pacer spaces
    # them at half the budget (2 replicas share the token), so no further burst meets the limit.
    with ManagementApiStandIn(token=TOKEN, rate_limit=10, rate_window=0.5) as api:
        project = api.add_project("app")
        for i in range(15):
            api.add_branch(project.ref, f"pr-{i}")
        path = branches_file(tmp_path, api, project.ref)
        cache = GeneratorCache(replicas=2, rate_window=0.5)
        listing = read_targets(path, ENV, cache=cache)
        assert listing.errors == () and len(listing.targets) == 15
        limited = [r for r in api.requests if r.status == 429]
        assert 1 <= len(limited) <= 4  # the first burst only: the requests in flight when the limit was met
        assert cache.pacer.spacing == pytest.approx(0.5 / 5)
        assert cache.pacer.rate_limited_answers == len(limited)


def test_the_pacer_spaces_requests_at_the_replicas_share_from_the_reset() -> None:
    clock = Clock()
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.now += seconds

    pacer = RequestPacer(replicas=4, clock=clock, sleep=sleep)
    pacer.before_request()
    assert slept == []  # no 429 yet: no waiting
    pacer.after_response(429, {"x-ratelimit-limit": "120", "retry-after": "5"})
    start = clock.now
    for _ in range(3):
        pacer.before_request()
    assert clock.now - start == pytest.approx(5 + 2 + 2)  # the reset, then 60 s / (120 / 4) apart
    pacer.relax()
    slept.clear()
    pacer.before_request()
    assert slept == []


def test_the_controller_fetches_its_shard_once_and_again_after_a_rejected_password(api: ManagementApiStandIn,
                                                                                  tmp_path: Path) -> None:
    from reconciler.fleet.controller import FleetController, FleetSettings
    from reconciler.fleet.runner import TargetResult

    project = api.add_project("app")
    for i in range(12):
        api.add_branch(project.ref, f"pr-{i}")
    path = branches_file(tmp_path, api, project.ref)
    controller = FleetController(FleetSettings(targets_file=path, http_port=-1, environ={
        **ENV, "RECONCILE_SHARD_REPLICAS": "2", "RECONCILE_SHARD_ORDINAL": "1"}))
    api.clear()
    controller._read_targets()
    mine = sorted(controller.scheduled)
    assert mine == sorted(f"pr-{i}" for i in range(12) if shard_of(f"pr-{i}", 2) == 1)
    assert len(api.requests) == 1 + 2 * len(mine)
    api.clear()
    controller._read_targets()
    assert len(api.requests) == 1
    controller._refreshed_at = 0.0
    # the database refused the fetched password: the target's details are fetched again, at once
    controller._record(mine[0], TargetResult(mine[0], error="authentication failed: password authentication "
                                                            "failed for user \"postgres\"", retryable=True))
    assert controller._refreshed_at == float("-inf")
    api.clear()
    controller._read_targets()
    assert len(api.requests) == 1 + 2 and len(api.calls("/v1/branches/")) == 1
