"""Top-level pytest configuration: loads the database fixtures (tests/fix_db.py) for every test."""

pytest_plugins = ["tests.fix_db"]
