# Sourced by scripts/test after _env.sh: .venv-pynenc, a Python 3.12 venv (Pynenc 0.4.0 needs
# 3.12+; the server stays on .venv's 3.11) with pynenc, what its test suites import, this
# the stubs distribution (stubs/python: pynenc_sidecar_proto) and the plugin (plugin/), editable.
# Re-installs only when one of the files it installs from changed.
PYNENC_VENV="$ROOT/.venv-pynenc"
PYNENC_PYTHON_VERSION=3.12.1

find_python312() {
  local candidate
  for candidate in "${PYNENC_PYTHON:-}" "$(command -v pyenv >/dev/null 2>&1 && pyenv root)/versions/$PYNENC_PYTHON_VERSION/bin/python" \
                   "$HOME/.pyenv/versions/$PYNENC_PYTHON_VERSION/bin/python" "$(command -v python3.12 || true)" \
                   "$(command -v python3.13 || true)"; do
    if [ -n "$candidate" ] && [ -x "$candidate" ] && "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  return 1
}

if [ ! -x "$PYNENC_VENV/bin/python" ]; then
  PY312="$(find_python312 || true)"
  if [ -z "$PY312" ] && command -v pyenv >/dev/null 2>&1; then
    echo "==> installing Python $PYNENC_PYTHON_VERSION (pyenv install -s) for Pynenc's suites"
    pyenv install -s "$PYNENC_PYTHON_VERSION" || true
    PY312="$(find_python312 || true)"
  fi
  if [ -z "$PY312" ]; then
    echo "error: Pynenc 0.4.0's suites need Python 3.12+ and none was found or could be installed" >&2
    echo "       (set PYNENC_PYTHON to a python3.12, or install pyenv's $PYNENC_PYTHON_VERSION)" >&2
    exit 1
  fi
  echo "==> creating $PYNENC_VENV with $PY312"
  "$PY312" -m venv "$PYNENC_VENV"
fi
pynenc_stamp="$PYNENC_VENV/.installed-$(cat "$ROOT/stubs/python/pyproject.toml" "$ROOT/plugin/pyproject.toml" \
  "$ROOT/plugin/pynenc-test-requirements.txt" | sha256sum | cut -c1-16)"
if [ ! -f "$pynenc_stamp" ]; then
  echo "==> installing pynenc 0.4.0, its suites' needs and the plugin into $PYNENC_VENV"
  "$PYNENC_VENV/bin/python" -m pip install --quiet --upgrade pip
  "$PYNENC_VENV/bin/python" -m pip install --quiet -r "$ROOT/plugin/pynenc-test-requirements.txt" \
    -e "$ROOT/stubs/python" -e "$ROOT/plugin"
  touch "$pynenc_stamp"
fi
