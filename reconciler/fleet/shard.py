"""Which replica of a StatefulSet reconciles which target: a stable hash of the name, modulo the replicas.

Replica i of N takes the targets with `shard_of(name, N) == i`. The hash is the first 8 bytes of the
SHA-256 of the name (UTF-8, big-endian): the same in every process, machine and release (Python's own
`hash()` is salted per process), and spread evenly. N and i come from the environment: N from
RECONCILE_SHARD_REPLICAS, i from RECONCILE_SHARD_ORDINAL or else the trailing `-<ordinal>` of the pod's
name (POD_NAME, else HOSTNAME), as a StatefulSet names its pods `<statefulset>-<ordinal>`.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from reconciler.errors import ReconcilerError

REPLICAS_VARIABLE = "RECONCILE_SHARD_REPLICAS"
ORDINAL_VARIABLE = "RECONCILE_SHARD_ORDINAL"
POD_NAME_VARIABLES = ("POD_NAME", "HOSTNAME")

_TRAILING_ORDINAL = re.compile(r"-(\d+)$")


def shard_of(name: str, replicas: int) -> int:
    """The replica (0 .. replicas-1) that owns the target called `name`."""
    if replicas < 1:
        raise ValueError("replicas must be at least 1")
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % replicas


def shard_from_environ(environ: Mapping[str, str]) -> tuple[int, int] | None:
    """(ordinal, replicas) when sharding is configured, else None; a malformed value is one ReconcilerError."""
    raw_replicas = environ.get(REPLICAS_VARIABLE, "").strip()
    if not raw_replicas:
        return None
    if not raw_replicas.isdigit() or int(raw_replicas) < 1:
        raise ReconcilerError(f"{REPLICAS_VARIABLE}={raw_replicas!r} is not a positive whole number",
                              hint="set it to the StatefulSet's number of replicas")
    replicas = int(raw_replicas)
    ordinal = _ordinal(environ)
    if ordinal >= replicas:
        raise ReconcilerError(f"shard ordinal {ordinal} is not below {REPLICAS_VARIABLE}={replicas}",
                              hint="set RECONCILE_SHARD_REPLICAS to the StatefulSet's replicas after scaling it")
    return ordinal, replicas


def _ordinal(environ: Mapping[str, str]) -> int:
    explicit = environ.get(ORDINAL_VARIABLE, "").strip()
    if explicit:
        if not explicit.isdigit():
            raise ReconcilerError(f"{ORDINAL_VARIABLE}={explicit!r} is not a whole number (0, 1, 2, ...)")
        return int(explicit)
    for variable in POD_NAME_VARIABLES:
        pod = environ.get(variable, "").strip()
        if pod:
            match = _TRAILING_ORDINAL.search(pod)
            if match is None:
                raise ReconcilerError(f"{variable}={pod!r} does not end in -<ordinal> as a StatefulSet pod's name does",
                                      hint=f"set {ORDINAL_VARIABLE}, or run as a StatefulSet pod")
            return int(match.group(1))
    raise ReconcilerError(f"{REPLICAS_VARIABLE} is set but the ordinal is not",
                          hint=f"set {ORDINAL_VARIABLE}, or POD_NAME to the pod's name (the downward API)")
