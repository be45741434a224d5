from pynenc_tests.integration.workflow.state.test_deterministic_task_execution import *  # noqa: F403
