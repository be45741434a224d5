from pynenc_tests.unit.workflow.test_workflow_identity_inheritance import *  # noqa: F403
