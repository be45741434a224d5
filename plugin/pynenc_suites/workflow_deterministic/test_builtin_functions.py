from pynenc_tests.unit.workflow.deterministic.test_builtin_functions import *  # noqa: F403
