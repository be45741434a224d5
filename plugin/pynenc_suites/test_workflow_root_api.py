from pynenc_tests.unit.workflow.test_workflow_root_api import *  # noqa: F403
