"""Crashes, locks and concurrent edits: an apply is all or nothing and converges."""
