# Sourced by scripts/test after _env.sh: one venv per further Python version the stubs and the
# SDK are tested on (tests/test_python_versions.py), .venv-py3.13 and .venv-py3.12, each with the
# stubs, the SDK (tracing and testing extras, which bring the server) and pytest, editable.
# The interpreters come from pyenv (installed with `pyenv install -s` when missing); one that
# cannot be found or installed stops the run: a missing version is a failure, not a skip.
# Re-installs only when a pyproject.toml changed.
PYNENC_SIDECAR_PYTHONS="${PYNENC_SIDECAR_PYTHONS:-3.13.0 3.12.1}"

pyenv_python() {  # full version -> its interpreter, or nothing
  local root
  for root in "$(command -v pyenv >/dev/null 2>&1 && pyenv root)" "$HOME/.pyenv"; do
    if [ -n "$root" ] && [ -x "$root/versions/$1/bin/python" ]; then echo "$root/versions/$1/bin/python"; return 0; fi
  done
  return 1
}

for version in $PYNENC_SIDECAR_PYTHONS; do
  short="${version%.*}"
  venv="$ROOT/.venv-py$short"
  if [ ! -x "$venv/bin/python" ]; then
    interpreter="$(pyenv_python "$version" || true)"
    if [ -z "$interpreter" ] && command -v pyenv >/dev/null 2>&1; then
      echo "==> installing Python $version (pyenv install -s) for the stubs' and SDK's suites"
      pyenv install -s "$version" || true
      interpreter="$(pyenv_python "$version" || true)"
    fi
    if [ -z "$interpreter" ]; then
      echo "error: the stubs and the SDK are tested on Python $version, which was not found and could not be" >&2
      echo "       installed (install pyenv, or set PYNENC_SIDECAR_PYTHONS to the versions to test)" >&2
      exit 1
    fi
    echo "==> creating $venv with $interpreter"
    "$interpreter" -m venv "$venv"
  fi
  versions_stamp="$venv/.installed-$(cat "${PYPROJECTS[@]}" | sha256sum | cut -c1-16)"
  if [ ! -f "$versions_stamp" ]; then
    echo "==> installing the stubs, the SDK and pytest into $venv"
    "$venv/bin/python" -m pip install --quiet --upgrade pip
    "$venv/bin/python" -m pip install --quiet -e "$ROOT/stubs/python" -e "$ROOT/sdk/python[tracing,testing]" \
      -e "$ROOT" "pytest>=9" "pytest-timeout>=2.4"
    touch "$versions_stamp"
  fi
done
