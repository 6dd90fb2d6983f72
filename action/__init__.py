"""The GitHub Action's helpers (action.yml at the repository root runs `python action/main.py`).

Standard library only, and not part of the runtime wheel: the action installs the reconciler into its
own virtualenv and drives its command line; this package talks to GitHub (comments, runs, artifacts).
"""
