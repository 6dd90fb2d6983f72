"""The `reconcile` command as a user meets it: sub-commands, --env-file, the first hour, the newcomer's path."""
