# Shared by scripts/serve and scripts/test: a project venv with the repository's distributions
# installed editable — the stubs (stubs/python), the worker SDK (sdk/python) and the server (.);
# with EXTRAS=dev also the SDK's tracing extra and the dev tools (pyproject.toml's dependency
# group "dev"). The Pynenc plugin needs Python 3.12: scripts/_pynenc_env.sh installs it.
# Re-installs only when one of the pyproject.toml files changed since the last install.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${PYNENC_SIDECAR_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"
# The order matters to tests/test_newcomer_path.py, which computes the same stamp.
PYPROJECTS=("$ROOT/pyproject.toml" "$ROOT/stubs/python/pyproject.toml" "$ROOT/sdk/python/pyproject.toml")
if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
stamp="$VENV/.installed-$(cat "${PYPROJECTS[@]}" | sha256sum | cut -c1-16)-${EXTRAS:-base}"
# An install with the dev extra (scripts/test) holds everything scripts/serve needs.
if [ -z "${EXTRAS:-}" ] && [ -f "${stamp%-base}-dev" ]; then stamp="${stamp%-base}-dev"; fi
if [ ! -f "$stamp" ]; then
  echo "==> installing pynenc-sidecar, pynenc-sidecar-proto and pynenc-sidecar-sdk${EXTRAS:+ (+$EXTRAS)} into $VENV"
  "$VENV/bin/python" -m pip install --quiet --upgrade pip
  if [ "${EXTRAS:-}" = dev ]; then
    # --group needs pip 25.1+ (just upgraded above).
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT/stubs/python" -e "$ROOT/sdk/python[tracing]" -e "$ROOT" \
      --group "$ROOT/pyproject.toml:dev"
  else
    "$VENV/bin/python" -m pip install --quiet -e "$ROOT/stubs/python" -e "$ROOT/sdk/python" -e "$ROOT"
  fi
  touch "$stamp"
fi
export PATH="$VENV/bin:$PATH"
