"""Pynenc 0.4.0's own suites (package pynenc_tests) against SidecarStateBackend.

Pynenc's plugin pattern: each test module here star-imports one of Pynenc's test modules
(nothing is copied) and the conftests override the fixtures that build the app, so that its
state backend is the sidecar at $PYNENC_SIDECAR_ADDRESS. tests/test_pynenc_plugin.py runs
this folder with a real sidecar, once on Redis and once on the embedded store.

The run's environment also carries PYNENC__STATE_BACKEND_CLS=SidecarStateBackend, so that
Pynenc's module-level test apps that name no state backend use the sidecar too.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest
from pynenc import Pynenc, PynencBuilder

from pynenc_sidecar_plugin import SidecarStateBackend
from pynenc_sidecar_plugin.conf import ConfigSidecar, ConnectionSettings
from pynenc_sidecar_plugin.rpc import StateBackendRpc

pytest_plugins = ["pynenc_tests.conftest", "pynenc_tests.integration.conftest"]

if not os.environ.get("PYNENC_SIDECAR_ADDRESS"):
    raise pytest.UsageError("set PYNENC_SIDECAR_ADDRESS to the sidecar these suites run against")


def app_id_for(request: pytest.FixtureRequest) -> str:
    """One app per test (and parameter): the sidecar outlives the test, an app id must not."""
    return "psc." + re.sub(r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid)[-200:]


def purge_every_app() -> None:
    """The sidecar serves this run only: after each test, drop what any app left (Pynenc's
    tests also build sibling apps of fixed ids that no fixture purges)."""
    settings = ConnectionSettings.from_conf(ConfigSidecar())
    for app_id in SidecarStateBackend.discover_app_infos():
        StateBackendRpc(settings, app_id).purge_app(delete_app_info=True)


@pytest.fixture(autouse=True)
def _clean_sidecar(request: pytest.FixtureRequest) -> Iterator[None]:
    module_app = getattr(request.module, "app", None)
    if isinstance(module_app, Pynenc):  # a module-level test app: it must be on the sidecar too
        assert isinstance(module_app.state_backend, SidecarStateBackend), (
            f"{request.module.__name__}.app uses {type(module_app.state_backend).__name__}")
    yield
    purge_every_app()


@pytest.fixture
def app_instance(request: pytest.FixtureRequest) -> Pynenc:
    """Pynenc's app_instance (memory and SQLite in Pynenc's own run): in-memory broker and
    orchestrator, the sidecar as state backend."""
    app = PynencBuilder().memory().app_id(app_id_for(request)).sidecar().build()
    assert isinstance(app.state_backend, SidecarStateBackend)
    return app


# Not run, by name, each for its reason (tests/test_pynenc_plugin.py asserts this exact list):
NOT_RUN = {
    # Wall-clock assertions (a task within 1.5 s, cached vs uncached start, parallel speedup):
    # this machine is shared and noisy, and the project runs no timed tests.
    "test_task_execution": "wall-clock limit",
    "test_batch_parallelization_overhead": "wall-clock comparison",
    "test_client_data_effect_on_task_start": "wall-clock comparison",
    "test_distributed_cpu_work_performance": "wall-clock bounds",
    "test_parallel_performance": "wall-clock speedup",
}
# Pynenc skips this one when the *state backend* is in-memory, for its runner in another
# process needs shared state; with the sidecar as state backend but Pynenc's in-memory
# orchestrator and broker (the Mem family) the other process still cannot see the task.
NOT_RUN_IN_MEM_FAMILY = {"test_runner_reroutes_on_real_os_signal": "in-memory orchestrator and broker"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    keep, drop = [], []
    for item in items:
        name = getattr(item, "originalname", item.name)
        mem_family = "[Sidecar Mem " in item.nodeid
        (drop if name in NOT_RUN or (mem_family and name in NOT_RUN_IN_MEM_FAMILY) else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
