from pynenc_tests.integration.workflow.state.test_data import *  # noqa: F403
