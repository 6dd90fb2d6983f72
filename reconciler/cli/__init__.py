"""The thin commands: every click command of `reconcile` (parsing, exit codes, output) and the console script."""
