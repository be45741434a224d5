from pynenc_tests.unit.workflow.deterministic.test_execute_task import *  # noqa: F403
