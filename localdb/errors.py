"""The one error localdb raises for anything the environment causes (missing package, busy port...).

The CLI (`python -m localdb`) prints it as one line and exits 1; the test harness turns it into a
pytest failure. Anything else escaping localdb is a bug.
"""

from __future__ import annotations


class LocalDbError(Exception):
    """A problem with the local cluster a user can act on; the message is one line."""
