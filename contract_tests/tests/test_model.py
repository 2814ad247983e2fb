"""(1) Stateful differential model checking against the reference (our in-memory backend)."""

from __future__ import annotations

import pytest

from contract_tests import differential
from contract_tests.suite import Context


def test_differential_against_reference(tams_context: Context, tams_writable: None) -> None:
    if tams_context.oracle_factory is None:
        pytest.skip("the reference model needs tams-server installed (pip install tams-server)")
    differential.run(tams_context, examples=15, steps=25)
