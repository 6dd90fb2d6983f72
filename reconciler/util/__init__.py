"""Small shared utilities with no knowledge of plans or databases: files, logs, the GC pause, fault points."""
