"""What a failed contract check raises: which operation it blames and which check found it."""

from __future__ import annotations


class ContractFailure(AssertionError):
    """A response of the target that breaks the contract.

    ``operation`` is ``"METHOD /path/{template}"`` (None when no single operation is to blame) and
    ``check`` names the kind of check (``spec``, ``differential``, ``timeline``, ...); both are what a
    known-divergences entry matches on.
    """

    def __init__(self, message: str, operation: str | None = None, check: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.check = check

    def __str__(self) -> str:
        where = " ".join(x for x in (f"[{self.check}]" if self.check else "", self.operation or "") if x)
        return f"{where}: {self.message}" if where else self.message


class ReadOnlyViolation(RuntimeError):
    """The suite tried to send a non-GET/HEAD request while in read-only mode (a bug in the suite)."""


def find(exc: BaseException | None) -> ContractFailure | None:
    """The ContractFailure in ``exc``, also inside exception groups (Hypothesis' Flaky, ...)."""
    if exc is None:
        return None
    if isinstance(exc, ContractFailure):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            found = find(inner)
            if found is not None:
                return found
    return find(exc.__cause__) if exc.__cause__ is not exc else None
