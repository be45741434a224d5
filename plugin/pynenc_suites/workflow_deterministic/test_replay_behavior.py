from pynenc_tests.unit.workflow.deterministic.test_replay_behavior import *  # noqa: F403
