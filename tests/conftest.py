"""Top-level pytest configuration: loads the database fixtures (tests/fix_db.py) and PgBouncer's (tests/fix_pooler.py)."""

pytest_plugins = ["tests.fix_db", "tests.fix_pooler"]
