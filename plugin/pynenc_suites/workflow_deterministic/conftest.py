"""Pynenc's deterministic-executor fixtures, with its `app` (MemStateBackend) replaced by one
whose state backend is the sidecar."""

import pytest
from pynenc import Pynenc
from pynenc_tests.unit.workflow.conftest import *  # noqa: F403
from pynenc_tests.unit.workflow.deterministic.conftest import *  # noqa: F403

from pynenc_sidecar_plugin import SidecarStateBackend
from pynenc_sidecar_plugin.deterministic import SidecarDeterministicExecutor


@pytest.fixture
def app() -> Pynenc:
    app = Pynenc(config_values={
        "app_id": "test_deterministic", "runner_cls": "ThreadRunner", "state_backend_cls": "SidecarStateBackend",
        "broker_cls": "MemBroker", "orchestrator_cls": "MemOrchestrator", "client_data_store_cls": "MemClientDataStore",
    })
    assert isinstance(app.state_backend, SidecarStateBackend)
    app.purge()
    return app


@pytest.fixture
def deterministic_executor(app: Pynenc, workflow_identity):  # noqa: F811
    """Pynenc's fixture (its name DeterministicExecutor, bound at import), checked to give the
    plugin's executor: these suites then run Pynenc's executor tests against it."""
    from pynenc_tests.unit.workflow.deterministic import conftest as pynencs

    executor = pynencs.DeterministicExecutor(workflow_identity, app)
    assert type(executor) is SidecarDeterministicExecutor
    return executor
