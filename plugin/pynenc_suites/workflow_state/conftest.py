# Pynenc's workflow-state fixtures, on the root conftest's app_instance (the sidecar).
from pynenc_tests.integration.workflow.state.conftest import *  # noqa: F403
