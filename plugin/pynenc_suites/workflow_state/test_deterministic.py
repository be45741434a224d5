from pynenc_tests.integration.workflow.state.test_deterministic import *  # noqa: F403
