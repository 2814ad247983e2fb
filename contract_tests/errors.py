"""What a check reports: failures (the server breaks the contract) and warnings (it departs from a
recommendation), each blaming one operation, naming the check that found it and citing what it breaks.
"""

from __future__ import annotations

from dataclasses import dataclass

# Each line of a failure is cut to this many characters, and a failure to this many lines: a
# 100 KB response on one line helps nobody (the offending item and its index are what matter).
MAX_LINE = 400
MAX_LINES = 24

# What a failure of each kind of check breaks, when the failure does not say more precisely.
CITES = {
    "spec": "the spec's response declaration (status, headers, body schema)",
    "schemathesis": "the spec's response declaration (schemathesis)",
    "server-error": "the spec: no operation declares a 5xx",
    "differential": "the reference model (what a conforming store answers)",
    "consistency": "the spec: `created` is set once; `*_by` are strings",
    "shape": "the spec's schema (RFC 3339 date-time)",
    "overlap": "the spec: segments of a flow MUST NOT overlap",
    "timeline": "the spec: segment listings select by timerange overlap, in time order",
    "paging": "the spec's paging rules (Link / X-Paging-* headers, page keys)",
    "paging-headers": "the spec declares these paging headers (optional: a warning when missing)",
    "filters": "the spec's query filters of the listing",
    "media": "the spec: a segment's get_urls return the bytes uploaded to its object",
    "read-only": "the spec: a read_only flow refuses changes with 403",
    "sources": "the spec: a source exists while a flow refers to it",
    "auth": "the spec's security schemes: wrong or missing credentials get 401",
    "auth-header": "RFC 9110: a 401 response sends WWW-Authenticate",
    "auth-status": "the spec: missing credentials get 401",
    "head-without-body": "HTTP (RFC 9110): a HEAD response has no body",
    "head-matches-get": "the spec: HEAD answers with GET's headers",
    "accept-get-urls": "the spec: accept_get_urls= (empty) returns no get_urls",
    "deletion": "the spec: a deletion request ends done (or error)",
    "observe": "the spec: segments are listed in time order and do not overlap",
    "webhooks": "the spec's webhook management (8.x: by id, with status)",
    "profiles": "the spec's flow profiles (8.2)",
    "instances": "the spec's object instances (8.x)",
    "init-segments": "the spec's init segments (8.2)",
    "ordering": "the spec: sort_by / reverse_order of listings (8.2, ADR-0052)",
    "tags": "the spec: tag.{name} filters match any of a comma-separated list (8.x)",
    "service": "the spec's /service body",
    "objects": "the spec: GET /objects/{objectId} (8.1+: 404 until registered)",
    "storage": "the spec's storage allocation (/flows/{flowId}/storage)",
    "version": "the spec's api_version",
}


def shorten(text: str, max_line: int = MAX_LINE, max_lines: int = MAX_LINES) -> str:
    """``text`` with each line cut to ``max_line`` characters and at most ``max_lines`` lines."""
    lines = text.splitlines() or [""]
    out = [
        line if len(line) <= max_line else line[:max_line] + f"... ({len(line) - max_line} more chars)"
        for line in lines
    ]
    if len(out) > max_lines:
        out = [*out[:max_lines], f"... ({len(out) - max_lines} more lines)"]
    return "\n".join(out)


class ContractFailure(AssertionError):
    """A response of the target that breaks the contract.

    ``operation`` is ``"METHOD /path/{template}"`` (None when no single operation is to blame),
    ``check`` names the kind of check (``spec``, ``differential``, ``timeline``, ...) and ``cite``
    what it breaks (by default the check's entry in ``CITES``); operation and check are what a
    known-divergences entry matches on.
    """

    def __init__(
        self, message: str, operation: str | None = None, check: str | None = None, cite: str | None = None
    ) -> None:
        message = shorten(message)
        super().__init__(message)
        self.message = message
        self.operation = operation
        self.check = check
        self._cite = cite
        self.others: list[ContractFailure] = []  # further failures of the same test (each blames its own)

    @property
    def cite(self) -> str:
        return self._cite or CITES.get(self.check or "", "the spec")

    def __str__(self) -> str:
        where = " ".join(x for x in (f"[{self.check}]" if self.check else "", self.operation or "") if x)
        text = f"{where}: {self.message}" if where else self.message
        return f"{text}\n  breaks: {self.cite}"

    @property
    def summary(self) -> str:
        """The first line of the message, for tables."""
        return self.message.splitlines()[0][:160] if self.message else ""


@dataclass(frozen=True)
class ContractWarning:
    """A departure from what the spec recommends (SHOULD, "may"), or a choice stricter than the spec.

    Reported in its own section; ``--strict`` turns each into a failure.
    """

    message: str
    operation: str | None
    check: str
    cite: str

    def failure(self) -> ContractFailure:
        return ContractFailure(f"(strict) {self.message}", self.operation, self.check, self.cite)

    def __str__(self) -> str:
        return f"[{self.check}] {self.operation or ''}: {self.message} (recommended by: {self.cite})"


class ReadOnlyViolation(RuntimeError):
    """The suite tried to send a non-GET/HEAD request while in read-only mode (a bug in the suite)."""


class CannotTest(RuntimeError):
    """The target cannot be tested at all (unreachable, not TAMS, credentials refused, wrong base path).

    Its message is one sentence for the user; the run exits with code 2 before any test runs.
    """


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
