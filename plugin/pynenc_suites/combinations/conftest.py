"""Pynenc's combinations suites with SidecarStateBackend in every combination.

The combinations are Pynenc's own (build_test_combinations: each runner with one serializer,
on the in-memory family where the runner allows it and on the SQLite family), plus the
ThreadRunner with each serializer; only the state backend is replaced. The other components
keep Pynenc's choice, so the process runners exercise the plugin across processes (its
channel renewed after fork).
"""

from __future__ import annotations

import dataclasses
import os

import pytest
from _pytest.monkeypatch import MonkeyPatch
from pynenc import Pynenc
from pynenc.runner import ThreadRunner
from pynenc.serializer.base_serializer import BaseSerializer
from pynenc.util.subclasses import get_all_subclasses
from pynenc_tests import util
from pynenc_tests.integration.combinations.conftest import *  # noqa: F403
from pynenc_tests.integration.combinations.conftest import (
    MEM_CLASSES,
    AppComponents,
    BackendFamily,
    build_test_combinations,
)

from pynenc_sidecar_plugin import SidecarStateBackend

# Left out: Pynenc 0.4.0's own all-SQLite run of this combination is flaky here (1 run in 8 of
# its async tests hangs on "sqlite3.OperationalError: disk I/O error" between the runner's
# processes, measured with `pytest --pyargs pynenc_tests.integration.combinations`), and so
# is it with the sidecar as state backend.
FLAKY_UPSTREAM = {("MultiThreadRunner", BackendFamily.SQLITE)}


def sidecar_combinations() -> list[AppComponents]:
    combinations = [dataclasses.replace(c, state_backend=SidecarStateBackend) for c in build_test_combinations()
                    if (c.runner.__name__, c.family) not in FLAKY_UPSTREAM]
    serializers = sorted(get_all_subclasses(BaseSerializer), key=lambda cls: cls.__name__)  # type: ignore[type-abstract]
    for serializer in serializers:
        extra = AppComponents(*MEM_CLASSES, serializer, ThreadRunner, BackendFamily.MEM)  # type: ignore[arg-type]
        extra = dataclasses.replace(extra, state_backend=SidecarStateBackend)
        if extra not in combinations:
            combinations.append(extra)
    return combinations


@pytest.fixture(params=sidecar_combinations(), ids=lambda comp: f"Sidecar {comp.combination_id}")
def app_combination_instance(request: pytest.FixtureRequest, monkeypatch: MonkeyPatch,
                             temp_sqlite_db_path: str) -> Pynenc:
    """Pynenc's fixture of the same name, by the same environment variables (which the
    process runners' children inherit), with the sidecar as state backend."""
    components: AppComponents = request.param
    test_module, test_name = util.get_module_name(request)
    settings = {
        "APP_ID": f"{test_module}.{test_name}",
        "CLIENT_DATA_STORE_CLS": components.client_data_store.__name__,
        "ORCHESTRATOR_CLS": components.orchestrator.__name__,
        "BROKER_CLS": components.broker.__name__,
        "SERIALIZER_CLS": components.serializer.__name__,
        "STATE_BACKEND_CLS": components.state_backend.__name__,
        "TRIGGER_CLS": components.trigger.__name__,
        "RUNNER_CLS": components.runner.__name__,
        "LOGGING_LEVEL": "info",
        "PRINT_ARGUMENTS": "False",
        "RUNNER_LOOP_SLEEP_TIME_SEC": "0.01",
        "INVOCATION_WAIT_RESULTS_SLEEP_TIME_SEC": "0.01",
        "SIDECAR_ADDRESS": os.environ["PYNENC_SIDECAR_ADDRESS"],
    }
    if components.family.is_sqlite:
        settings["SQLITE_DB_PATH"] = temp_sqlite_db_path
    for name, value in settings.items():
        monkeypatch.setenv(f"PYNENC__{name}", value)
    app = Pynenc()
    assert isinstance(app.state_backend, SidecarStateBackend)
    return app
