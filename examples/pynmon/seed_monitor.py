"""The Pynenc app pynmon opens to watch the seed workflows that sidecar SDK workers run
(examples/seed_workflows.py, app id "pynenc"):

    PYNENC_SIDECAR_ADDRESS=127.0.0.1:50051 pynenc --app examples/pynmon/seed_monitor.py monitor --port 8000

Its state backend is the sidecar; its orchestrator answers statuses from the sidecar's
history (SDK workers have no Pynenc orchestrator). It defines no tasks: the SDK workers'
tasks get stand-ins when pynmon reads their invocations (pynenc_sidecar_plugin.foreign_tasks).
"""

from pynenc import Pynenc

app = Pynenc(config_values={"app_id": "pynenc", "state_backend_cls": "SidecarStateBackend",
                            "orchestrator_cls": "SidecarMonitorOrchestrator"})
