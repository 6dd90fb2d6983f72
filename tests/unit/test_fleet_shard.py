"""Sharding targets across a StatefulSet's replicas: a stable hash, the ordinal from the environment."""

from __future__ import annotations

from collections import Counter

import pytest

from reconciler.errors import ReconcilerError
from reconciler.fleet.shard import shard_from_environ, shard_of


def test_the_hash_is_fixed_forever() -> None:
    """Known values: a change to the function would move targets between replicas on upgrade."""
    assert shard_of("a", 2**61 - 1) == 14598278634844962250 % (2**61 - 1)
    assert {n: shard_of(n, 3) for n in ("production", "staging", "branch-1", "branch-2", "tenant-a", "tenant-b")} == {
        "production": 1, "staging": 1, "branch-1": 2, "branch-2": 1, "tenant-a": 0, "tenant-b": 1}
    assert [shard_of(n, 4) for n in ("production", "staging", "branch-1", "branch-2")] == [1, 0, 2, 3]
    assert shard_of("anything", 1) == 0


def test_a_thousand_names_over_four_replicas_are_balanced_within_ten_percent() -> None:
    counts = Counter(shard_of(f"target-{i}", 4) for i in range(1000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(abs(n - 250) <= 25 for n in counts.values()), counts


def test_every_name_belongs_to_exactly_one_replica() -> None:
    names = [f"branch-{i}" for i in range(100)]
    shards = [[name for name in names if shard_of(name, 3) == i] for i in range(3)]
    assert sorted(n for shard in shards for n in shard) == sorted(names)


def test_replicas_must_be_positive() -> None:
    with pytest.raises(ValueError):
        shard_of("a", 0)


def test_not_configured_is_none() -> None:
    assert shard_from_environ({}) is None
    assert shard_from_environ({"HOSTNAME": "reconciler-2"}) is None


@pytest.mark.parametrize(("environ", "expected"), [
    ({"RECONCILE_SHARD_REPLICAS": "3", "RECONCILE_SHARD_ORDINAL": "1"}, (1, 3)),
    ({"RECONCILE_SHARD_REPLICAS": "3", "POD_NAME": "reconciler-fleet-2"}, (2, 3)),
    ({"RECONCILE_SHARD_REPLICAS": "3", "HOSTNAME": "reconciler-0"}, (0, 3)),
    ({"RECONCILE_SHARD_REPLICAS": "3", "POD_NAME": "reconciler-1", "HOSTNAME": "other-2"}, (1, 3)),
    ({"RECONCILE_SHARD_REPLICAS": "3", "RECONCILE_SHARD_ORDINAL": "0", "POD_NAME": "reconciler-2"}, (0, 3)),
])
def test_the_ordinal_comes_from_the_variable_or_the_pod_name(environ: dict[str, str],
                                                             expected: tuple[int, int]) -> None:
    assert shard_from_environ(environ) == expected


@pytest.mark.parametrize(("environ", "message"), [
    ({"RECONCILE_SHARD_REPLICAS": "three", "POD_NAME": "r-0"}, "RECONCILE_SHARD_REPLICAS='three' is not a positive"),
    ({"RECONCILE_SHARD_REPLICAS": "0", "POD_NAME": "r-0"}, "RECONCILE_SHARD_REPLICAS='0' is not a positive"),
    ({"RECONCILE_SHARD_REPLICAS": "3", "POD_NAME": "reconciler"}, "POD_NAME='reconciler' does not end in -<ordinal>"),
    ({"RECONCILE_SHARD_REPLICAS": "3", "RECONCILE_SHARD_ORDINAL": "x"}, "RECONCILE_SHARD_ORDINAL='x' is not a whole"),
    ({"RECONCILE_SHARD_REPLICAS": "3", "POD_NAME": "reconciler-3"}, "shard ordinal 3 is not below"),
    ({"RECONCILE_SHARD_REPLICAS": "3"}, "the ordinal is not"),
])
def test_a_malformed_value_is_one_clear_error(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ReconcilerError) as e:
        shard_from_environ(environ)
    assert message in e.value.one_line()
    assert "\n" not in e.value.one_line()
