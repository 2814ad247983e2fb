"""(4) Robustness: schemathesis-generated requests for every operation of the oracle spec."""

from __future__ import annotations

from typing import Any

import pytest


def test_fuzz_operation(tams_fuzzer: Any, tams_operation: str) -> None:
    reason = tams_fuzzer.skip_reason(tams_operation)
    if reason:
        pytest.skip(reason)
    tams_fuzzer.run_operation(tams_operation)
