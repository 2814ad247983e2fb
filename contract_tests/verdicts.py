"""Verdicts per operation: what the run showed about each operation of the spec, and the reports.

An operation is

* ``FAILED`` when a check blamed it (the first failure is kept, shortened);
* ``xfail`` when its only failures match a known divergence;
* ``passed`` only when a behaviour check (not fuzzing) got a 2xx from it and nothing failed;
* ``schema only`` when only schema fuzzing got a 2xx from it: it answers in shape, its
  behaviour was not checked;
* ``not implemented`` when every answer was 404, 405 or 501 and a behaviour check asked it for
  something that exists (or it said 405/501): a route the server lacks must never look like a pass;
* ``not reached`` when nothing got a 2xx from it (nothing sent, only other 4xx answers, or only
  404s to fuzzing, which asks for ids nobody has).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contract_tests.errors import ContractFailure, ContractWarning

FAILED, XFAIL, PASSED, SCHEMA_ONLY, NOT_IMPLEMENTED, NOT_REACHED = (
    "FAILED",
    "xfail",
    "passed",
    "schema only",
    "not implemented",
    "not reached",
)
ORDER = (FAILED, XFAIL, PASSED, SCHEMA_ONLY, NOT_IMPLEMENTED, NOT_REACHED)
FUZZ_CHECK = "fuzz"


@dataclass
class OperationRecord:
    """Everything the run saw of one operation on one target."""

    checked: Counter[str] = field(default_factory=Counter)  # status classes answered to behaviour checks
    fuzzed: Counter[str] = field(default_factory=Counter)  # ... and to schema fuzzing
    checks: set[str] = field(default_factory=set)  # names of the checks that sent it requests
    failures: int = 0
    xfails: int = 0
    first_failure: str | None = None
    first_failure_check: str | None = None
    cite: str | None = None

    @property
    def verdict(self) -> str:
        if self.failures:
            return FAILED
        if self.xfails:
            return XFAIL
        if self.checked["2xx"]:
            return PASSED
        if self.fuzzed["2xx"]:
            return SCHEMA_ONLY
        seen = self.checked + self.fuzzed
        absent = {"404", "unsupported"}
        if seen and set(seen) <= absent and (self.checked or "unsupported" in seen):
            return NOT_IMPLEMENTED
        return NOT_REACHED

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "checks": sorted(self.checks),
            "responses": dict(self.checked),
            "fuzz_responses": dict(self.fuzzed),
            "failures": self.failures,
            "xfails": self.xfails,
            "first_failure": self.first_failure,
            "first_failure_check": self.first_failure_check,
            "breaks": self.cite,
        }


@dataclass
class TargetRecord:
    """One target's operations and warnings."""

    operations: dict[str, OperationRecord] = field(default_factory=dict)
    warnings: Counter[ContractWarning] = field(default_factory=Counter)
    unblamed_failures: list[str] = field(default_factory=list)

    def op(self, label: str) -> OperationRecord:
        return self.operations.setdefault(label, OperationRecord())

    def observe(self, check: str, hits: dict[str, Counter[str]], warnings: list[ContractWarning]) -> None:
        """What one check's requests got, per operation."""
        for label, classes in hits.items():
            record = self.op(label)
            record.checks.add(check)
            (record.fuzzed if check == FUZZ_CHECK else record.checked).update(classes)
        self.warnings.update(warnings)

    def failed(self, check: str, failure: ContractFailure | None, text: str, expected: bool) -> None:
        for other in failure.others if failure is not None else []:
            self.failed(check, other, "", expected)
        label = failure.operation if failure is not None else None
        summary = (
            failure.summary if failure is not None else text.strip().splitlines()[-1][:160] if text.strip() else ""
        )
        if label is None:
            if not expected:
                self.unblamed_failures.append(f"{check}: {summary}")
            return
        record = self.op(label)
        record.checks.add(check)
        if expected:
            record.xfails += 1
            return
        record.failures += 1
        if record.first_failure is None:
            record.first_failure = summary
            record.first_failure_check = check
            record.cite = failure.cite if failure is not None else None

    def not_implemented(self) -> list[str]:
        return [label for label, r in self.operations.items() if r.verdict == NOT_IMPLEMENTED]


def table_lines(labels: list[str], record: TargetRecord) -> list[tuple[str, str]]:
    """The per-operation table as (line, verdict) pairs, spec operations first, in spec order."""
    names = list(labels) + sorted(set(record.operations) - set(labels))
    width = max(len(n) for n in names) + 2 if names else 20
    out = [(f"{'operation':<{width}}{'verdict':<17}checks", "")]
    for label in names:
        op = record.operations.get(label, OperationRecord())
        verdict = op.verdict
        checks = ", ".join(sorted(op.checks)) or "-"
        out.append((f"{label:<{width}}{verdict:<17}{checks}", verdict))
        if op.first_failure:
            out.append((f"{'':<{width}}  first failure ({op.first_failure_check}): {op.first_failure}", verdict))
            if op.cite:
                out.append((f"{'':<{width}}  breaks: {op.cite}", verdict))
    counts = Counter(record.operations.get(label, OperationRecord()).verdict for label in names)
    summary = ", ".join(f"{counts[v]} {v}" for v in ORDER if counts[v])
    out.append((f"operations: {summary}", ""))
    for line in record.unblamed_failures:
        out.append((f"failure not tied to one operation: {line}", FAILED))
    return out


def warning_lines(record: TargetRecord) -> list[str]:
    return [f"{w}" + (f" (x{n})" if n > 1 else "") for w, n in sorted(record.warnings.items(), key=lambda x: str(x[0]))]


def write_json(
    path: str | Path, targets: dict[str, TargetRecord], info: dict[str, dict[str, Any]], exit_code: int | None
) -> None:
    report = {
        "exit_code": exit_code,
        "targets": {
            name: {
                **info.get(name, {}),
                "operations": {label: op.to_json() for label, op in record.operations.items()},
                "verdicts": dict(Counter(op.verdict for op in record.operations.values())),
                "warnings": [
                    {
                        "operation": w.operation,
                        "check": w.check,
                        "message": w.message,
                        "recommended_by": w.cite,
                        "count": n,
                    }
                    for w, n in record.warnings.items()
                ],
                "failures_not_tied_to_an_operation": record.unblamed_failures,
            }
            for name, record in targets.items()
        },
    }
    Path(path).write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
