#!/usr/bin/env bash
# The benchmark in one command, from a clean checkout:
#   bench/run.sh            full run (about 10 minutes), writes bench/results/latest.{md,json}
#   bench/run.sh --quick    tiny sizes (about a minute); the CI smoke test runs this
# Installs what it needs: the project venv (scripts/_env.sh), redis-server (Debian package) if
# missing; bench/run.py then installs ghz (go install) and the Pynenc 0.4.0 venv if missing.
# Options go to bench/run.py (see `bench/run.sh --help`).
source "$(dirname "$0")/../scripts/_env.sh"
if ! command -v redis-server >/dev/null 2>&1; then
  echo "==> installing redis-server (Debian package)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi
  $SUDO apt-get update -qq && $SUDO apt-get install -y -qq redis-server >/dev/null
fi
cd "$ROOT"
exec python bench/run.py "$@"
