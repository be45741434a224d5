"""The stubs' and the SDK's suites on the other Python versions the distributions support
(requires-python >= 3.11; .venv runs 3.11): 3.12 and 3.13, in the venvs scripts/test makes
(scripts/_pythons_env.sh). A missing venv fails: scripts/test installs the interpreter."""

from __future__ import annotations

import os
import subprocess

import pytest

from support import ROOT

# Through the distributions' own code: the stubs (imported by every test), the connection
# helper, the SDK on the in-process server and against real server processes on Redis.
SUITES = ["tests/test_sdk_testing.py", "tests/test_sdk.py",
          "tests/test_client_contract.py::test_python_constants_are_the_contracts"]


@pytest.mark.parametrize("version", ["3.12", "3.13"])
def test_the_stubs_and_sdk_suites_pass_on(version):
    python = ROOT / f".venv-py{version}" / "bin" / "python"
    assert python.exists(), f"no {python.parent.parent.name}: scripts/test makes it (pyenv's Python {version})"
    actual = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                            capture_output=True, text=True, check=True).stdout.strip()
    assert actual == version
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYNENC_SIDECAR_", "OTEL_"))}
    result = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider", *SUITES], cwd=ROOT,
                            env=env, capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, f"on Python {version}:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"
