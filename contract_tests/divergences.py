"""Known divergences: documented deviations of a server that turn matching failures into xfails.

A TOML file of ``[[divergence]]`` tables, each with a ``reason`` and at least one of

* ``operation`` -- ``"METHOD /path/{template}"`` as in the spec (``*`` wildcards allowed);
* ``test`` -- a pattern matched against the test id (``test_fuzz_operation[remote-GET /flows]``);
* ``check`` -- the kind of check that failed (``spec``, ``differential``, ``overlap``, ``paging``, ...).

Every key given must match. ``mode = "skip"`` (with ``test``) skips the test without running it;
the default ``"xfail"`` runs it and reports a matching failure as an expected failure::

    [[divergence]]
    operation = "DELETE /flows/{flowId}/label"
    check = "spec"
    reason = "we answer 403 on read-only flows; the 7.0 spec lists no 403 here"
"""

from __future__ import annotations

import fnmatch
import tomllib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Divergence:
    reason: str
    operation: str | None = None
    test: str | None = None
    check: str | None = None
    mode: str = "xfail"

    def matches(self, test_id: str, operation: str | None, check: str | None) -> bool:
        if self.test is not None and not (fnmatch.fnmatchcase(test_id, self.test) or self.test in test_id):
            return False
        if self.operation is not None and (operation is None or not fnmatch.fnmatchcase(operation, self.operation)):
            return False
        return self.check is None or (check is not None and fnmatch.fnmatchcase(check, self.check))


def load(path: str | Path | None) -> list[Divergence]:
    if not path:
        return []
    with Path(path).open("rb") as f:
        data = tomllib.load(f)
    out = []
    for i, entry in enumerate(data.get("divergence", [])):
        if not entry.get("reason"):
            raise ValueError(f"{path}: divergence #{i + 1} has no reason")
        if not any(entry.get(k) for k in ("operation", "test", "check")):
            raise ValueError(f"{path}: divergence #{i + 1} names no operation, test or check")
        if entry.get("mode", "xfail") not in ("xfail", "skip"):
            raise ValueError(f"{path}: divergence #{i + 1}: mode must be xfail or skip")
        if entry.get("mode") == "skip" and not entry.get("test"):
            raise ValueError(f"{path}: divergence #{i + 1}: mode = skip needs a test pattern")
        unknown = set(entry) - {"reason", "operation", "test", "check", "mode"}
        if unknown:
            raise ValueError(f"{path}: divergence #{i + 1}: unknown keys {sorted(unknown)}")
        out.append(Divergence(**entry))
    return out


def find(divergences: list[Divergence], test_id: str, operation: str | None, check: str | None) -> Divergence | None:
    return next((d for d in divergences if d.mode == "xfail" and d.matches(test_id, operation, check)), None)
