from pynenc_tests.unit.workflow.deterministic.test_workflow_isolation import *  # noqa: F403
