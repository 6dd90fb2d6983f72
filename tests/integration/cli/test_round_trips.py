"""Round trips after the connection's set-up, counted on the wire (localdb's fault proxy), for each row
of issue 31's table: the same steps as `bench/latency.py`, without the delays (the counts are stable,
times are not)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from bench.common import manifest_file
from bench.latency import ROWS, large_row, small_rows
from localdb.faultproxy import FaultProxy
from tests.fix_db import DbTarget

#: Round trips after set-up, and connections, per row. Lower them as the reads and the apply get cheaper.
EXPECTED = {
    ROWS[0]: (4, 1),
    ROWS[1]: (4, 1),
    ROWS[2]: (22, 1),
    ROWS[3]: (9, 1),
    ROWS[4]: (22, 1),
}


def test_round_trips_of_the_runbook_rows(audited_db: DbTarget) -> None:
    with FaultProxy(audited_db.cluster.port) as proxy:
        measured = small_rows(proxy, audited_db.superuser_url, lambda: None)
    assert {m.row: (m.round_trips, m.connections) for m in measured} == {r: EXPECTED[r] for r in ROWS[:4]}


def test_round_trips_of_a_first_apply_of_1013_jobs(audited_db: DbTarget) -> None:
    with FaultProxy(audited_db.cluster.port) as proxy, tempfile.TemporaryDirectory() as tmp:
        measured = large_row(proxy, manifest_file(1013, Path(tmp)), lambda: None)
    assert (measured.round_trips, measured.connections) == EXPECTED[ROWS[4]]
