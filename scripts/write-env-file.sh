#!/usr/bin/env bash
# Usage: scripts/write-env-file.sh FILE NAME...
# Writes the named variables of the current environment to FILE in dotenv format (NAME='value', the
# format Docker Compose and python-dotenv read; `reconcile --env-file FILE`), readable only by its owner
# (mode 0600, created that way, never wider for a moment). Values are never printed.
set -euo pipefail
file="$1"
shift
rm -f -- "$file"
(
  umask 077
  {
    echo "# written by scripts/write-env-file.sh: for reconcile --env-file (or RECONCILE_ENV_FILE)"
    for name in "$@"; do
      value="${!name-}"
      case "$value" in
        *"'"* | *$'\n'*) echo "write-env-file: $name contains a quote or a newline; not written" >&2; exit 1 ;;
      esac
      printf "%s='%s'\n" "$name" "$value"
    done
  } > "$file"
)
chmod 600 -- "$file"
