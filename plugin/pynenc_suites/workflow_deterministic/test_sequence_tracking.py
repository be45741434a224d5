from pynenc_tests.unit.workflow.deterministic.test_sequence_tracking import *  # noqa: F403
