from pynenc_tests.unit.workflow.deterministic.test_deterministic_operations import *  # noqa: F403
