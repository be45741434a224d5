"""Each Python distribution of the repository installs alone, with pip, from its directory in the
repository, into a fresh virtualenv, and imports there. The repository's own siblings it depends
on come from a wheelhouse built here from the same tree (as they would from an index); all else
from the index. The worker SDK's environment must hold no Redis, no Prometheus and no server."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIP_TIMEOUT_S = 600
# Distributions a worker must not get with the SDK (issue 15).
NOT_IN_THE_SDK = {"pynenc-sidecar", "redis", "hiredis", "prometheus-client", "opentelemetry-exporter-prometheus"}


def pynenc_python() -> str:
    """The Python 3.12 that scripts/_pynenc_env.sh made .venv-pynenc with (Pynenc 0.4.0 needs 3.12)."""
    venv_python = ROOT / ".venv-pynenc" / "bin" / "python"
    assert venv_python.exists(), "no .venv-pynenc: scripts/test makes it (Python 3.12 from pyenv)"
    return subprocess.run([str(venv_python), "-c", "import sys; print(sys._base_executable)"], check=True,
                          capture_output=True, text=True).stdout.strip()


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    """The repository's files as git sees them (tracked, and new ones not ignored), copied: what a
    clean clone holds plus uncommitted edits. Ignored leftovers of a long-lived checkout (an old
    build/ that setuptools would pack, a stale package directory shadowing the stubs) stay out."""
    copy = tmp_path_factory.mktemp("tree")
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                            check=True, capture_output=True).stdout.decode().split("\0")
    for name in filter(None, listed):
        source = ROOT / name
        if source.is_file():  # a tracked file deleted in the work tree is not copied
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory, tree) -> Path:
    """The stubs' and the server's wheels: the repository-local dependencies of the others."""
    house = tmp_path_factory.mktemp("wheelhouse")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(house), str(tree / "stubs/python"), str(tree)],
                   check=True, capture_output=True, timeout=PIP_TIMEOUT_S)
    return house


class FreshVenv:
    """A virtualenv without pip of its own: the suite's pip installs into it (pip --python)."""

    def __init__(self, path: Path, base_python: str = sys.executable) -> None:
        self.path = path
        subprocess.run([base_python, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120)
        self.python = str(path / "bin" / "python")

    def install(self, wheelhouse: Path, *requirements: str) -> None:
        result = subprocess.run([sys.executable, "-m", "pip", "--python", self.python, "install", "--quiet",
                                 "--find-links", str(wheelhouse), *requirements],
                                capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        assert result.returncode == 0, f"pip install {' '.join(requirements)} failed:\n{result.stdout}{result.stderr}"

    def run(self, code: str) -> str:
        result = subprocess.run([self.python, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                                timeout=300, cwd=self.path)  # not the repository: nothing imports from the tree
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout

    def distributions(self) -> set[str]:
        out = self.run("import json, importlib.metadata as m;"
                       "print(json.dumps([d.metadata['Name'] for d in m.distributions()]))")
        return {name.lower().replace("_", "-") for name in json.loads(out)}


def test_the_stubs_install_alone_with_the_pinned_grpcio_and_protobuf(tmp_path, tree, wheelhouse):
    venv = FreshVenv(tmp_path / "venv")
    venv.install(wheelhouse, str(tree / "stubs/python"))
    venv.run("""
        from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc, state_backend_pb2_grpc
        from pynenc_sidecar_proto.connection import ClientSecurity
        import grpc, google.protobuf
        assert grpc.__version__ == "1.85.1", grpc.__version__
        assert google.protobuf.__version__.startswith("7.36."), google.protobuf.__version__
        assert ClientSecurity.resolve(environ={"PYNENC_SIDECAR_TLS": "true"}).tls
    """)
    assert venv.distributions() - {"typing-extensions"} == {"pynenc-sidecar-proto", "grpcio", "protobuf"}


def test_the_sdk_installs_alone_then_its_tracing_and_testing_extras(tmp_path, tree, wheelhouse):
    venv = FreshVenv(tmp_path / "venv")
    venv.install(wheelhouse, str(tree / "sdk/python"))
    venv.run("""
        import sys
        from pynenc_sidecar_sdk import Pynenc
        app = Pynenc("alone", address="127.0.0.1:1")
        assert not any(m.startswith(("opentelemetry", "pynenc_sidecar.", "redis")) for m in sys.modules)
        try:
            import pynenc_sidecar_sdk.testing
        except ImportError as exc:
            assert "pynenc-sidecar-sdk[testing]" in str(exc), exc
        else:
            raise AssertionError("the testing module imported without the server")
    """)
    alone = venv.distributions()
    assert {"pynenc-sidecar-sdk", "pynenc-sidecar-proto", "grpcio"} <= alone
    assert not alone & NOT_IN_THE_SDK, alone & NOT_IN_THE_SDK
    assert not any(name.startswith("opentelemetry") for name in alone), alone

    venv.install(wheelhouse, f"{tree / 'sdk/python'}[tracing]")
    traced = venv.distributions()
    assert {"opentelemetry-sdk", "opentelemetry-exporter-otlp-proto-grpc", "opentelemetry-instrumentation-grpc"} \
        <= traced
    assert not traced & NOT_IN_THE_SDK, traced & NOT_IN_THE_SDK
    venv.run("""
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        trace.set_tracer_provider(TracerProvider())
        from pynenc_sidecar_sdk import tracing
        assert tracing.tracer() is not None
    """)

    venv.install(wheelhouse, f"{tree / 'sdk/python'}[testing]")
    assert "pynenc-sidecar" in venv.distributions()
    assert venv.run("""
        from pynenc_sidecar_sdk.testing import InProcessSidecar
        with InProcessSidecar() as sidecar:
            app = sidecar.app("extra")
            @app.task
            def hello(name: str) -> str:
                return f"hello {name} {hello.wf.random() < 1}"
            print(app.run_workflow(hello, "wf", "you").result)
    """).strip() == "hello you True"


def test_the_server_installs_alone_without_the_sdk(tmp_path, tree, wheelhouse):
    venv = FreshVenv(tmp_path / "venv")
    venv.install(wheelhouse, str(tree))
    venv.run("import pynenc_sidecar.server, pynenc_sidecar.cli")
    installed = venv.distributions()
    assert {"pynenc-sidecar", "pynenc-sidecar-proto", "redis"} <= installed
    assert "pynenc-sidecar-sdk" not in installed
    script = subprocess.run([str(venv.path / "bin" / "pynenc-sidecar"), "serve", "--help"], capture_output=True,
                            text=True, timeout=120)
    assert script.returncode == 0 and "--redis-url" in script.stdout, script.stderr


def test_the_plugin_installs_alone_on_the_stubs_not_the_server(tmp_path, tree, wheelhouse):
    venv = FreshVenv(tmp_path / "venv", base_python=pynenc_python())
    venv.install(wheelhouse, str(tree / "plugin"))
    venv.run("""
        import pynenc_sidecar_plugin.state_backend, pynenc_sidecar_plugin.builder
        from pynenc_sidecar_plugin.conf import ConnectionSettings
    """)
    installed = venv.distributions()
    assert {"pynenc-sidecar-plugin", "pynenc-sidecar-proto", "pynenc"} <= installed
    assert not installed & {"pynenc-sidecar", "pynenc-sidecar-sdk"}, installed


def test_no_distribution_ships_another_ones_package(wheelhouse):
    import zipfile

    tops = {wheel.name.split("-")[0]: {n.split("/")[0] for n in zipfile.ZipFile(wheel).namelist()
                                      if not n.split("/")[0].endswith(".dist-info")}
            for wheel in wheelhouse.glob("*.whl")}
    assert tops == {"pynenc_sidecar": {"pynenc_sidecar"}, "pynenc_sidecar_proto": {"pynenc_sidecar_proto"}}
