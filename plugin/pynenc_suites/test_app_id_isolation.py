from pynenc_tests.unit.app_id_isolation.all_tests import *  # noqa: F403
