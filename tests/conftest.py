"""Top-level pytest configuration: loads the database fixtures (tests/fix_db.py) and PgBouncer's (tests/fix_pooler.py).

It also arms reconciler/util/faults.py (RECONCILER_FAULT) for this session and every process it starts:
outside the test suite the fault hook ignores RECONCILER_FAULT.
"""

import os

os.environ["RECONCILER_FAULT_ARMED"] = "tests"

pytest_plugins = ["tests.fix_db", "tests.fix_pooler"]
