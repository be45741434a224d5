from pynenc_tests.integration.state_backend.all_tests import *  # noqa: F403
