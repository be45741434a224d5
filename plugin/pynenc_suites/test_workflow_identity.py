# Module-level app naming no state backend: PYNENC__STATE_BACKEND_CLS selects the sidecar.
from pynenc_tests.unit.workflow.test_workflow_identity import *  # noqa: F403
