"""The verification rider: another reader's queries carried by a plan's or an apply's round trips.

verify's evidence (`verify.read.EvidenceRead`: `reconcile verify`, the pipeline checks of `--watch` and
of the fleet) needs its own queries, and a connection and two round trips of its own cost more than the
queries. So it rides on the live-state read, in three steps:

1. its head query (which relations exist and may be read) goes in the capabilities' round trip:
   `transaction.begin_locked` for an apply, `db.read_capabilities` for a read;
2. its queries go last in the kinds' pipeline, in a read-only transaction only (`db.read_live` with
   `rider_queries`): a rider's failing query aborts the transaction, which there ends right after, and
   `tolerates` says when such a failure is the rider's alone (the kinds' queries had all answered);
3. it finishes on the same connection once the caller's transaction is over (`after_read`,
   `after_apply`): after an apply's COMMIT in one round trip more, so it sees what the apply made; after
   an apply with nothing to do, its ROLLBACK goes at the start of the rider's round trip (none more).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import psycopg
from psycopg.pq import ExecStatus


class Rider(Protocol):
    """The steps above, as the reader implements them (`verify.read.EvidenceRead`).

    `finish(conn, rollback_first=True)`: the caller's transaction is still open and only has to be
    rolled back, which the rider does at the start of its own round trip.
    """

    def queue_head(self, conn: psycopg.Connection[Any]) -> None: ...

    def queue_queries(self, conn: psycopg.Connection[Any]) -> None: ...

    def finish(self, conn: psycopg.Connection[Any], *, rollback_first: bool = False) -> None: ...


def queue_head(rider: Rider | None, conn: psycopg.Connection[Any]) -> None:
    """Step 1, inside the pipeline of the capabilities query."""
    if rider is not None:
        rider.queue_head(conn)


def queue_queries(rider: Rider | None, conn: psycopg.Connection[Any], queries: bool) -> None:
    """Step 2, last in the kinds' pipeline, when the caller's transaction is a read that ends there."""
    if rider is not None and queries:
        rider.queue_queries(conn)


def tolerates(rider: Rider | None, queries: bool, kinds: Iterable[psycopg.Cursor[Any]]) -> bool:
    """Whether a failure in the kinds' pipeline was the rider's own query: every kind's query answered."""
    return rider is not None and queries and all(
        cur.pgresult is not None and cur.pgresult.status == ExecStatus.TUPLES_OK for cur in kinds)


def after_read(rider: Rider | None, conn: psycopg.Connection[Any]) -> None:
    """Step 3 after a read-only transaction, on its idle connection."""
    if rider is not None:
        rider.finish(conn)


def after_apply(rider: Rider | None, conn: psycopg.Connection[Any], *, committed: bool) -> None:
    """Step 3 after an apply: after its COMMIT, or carrying the ROLLBACK of an apply with nothing to do."""
    if rider is not None:
        rider.finish(conn, rollback_first=not committed)
