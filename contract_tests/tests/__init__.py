"""The conformance suite's tests (collected with ``--pyargs contract_tests.tests``)."""
