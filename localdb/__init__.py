"""localdb: a throwaway local PostgreSQL (the distribution's major: discovery.py) that behaves like a Supabase database.

pg_cron is the real Debian/Ubuntu build; supabase_vault and pg_net are SQL stand-ins (in `extensions/`) that
reproduce the facts in docs/upstream.md, with `networker.py` sending pg_net's HTTP requests. The test
harness (tests/fix_db.py) and `python -m localdb` drive it through `Cluster`.
"""

from localdb.cluster import DEFAULT_PORT, Cluster, create_app_tables
from localdb.errors import LocalDbError

__all__ = ["DEFAULT_PORT", "Cluster", "LocalDbError", "create_app_tables"]
