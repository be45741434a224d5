from pynenc_tests.integration.combinations.all_tests import *  # noqa: F403
