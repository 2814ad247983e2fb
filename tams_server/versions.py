"""Which TAMS API versions a server mounts, and under which base paths.

Every mounted version is served under ``/v{version}`` (the spec's own server template,
``https://example.com/tams/{version}`` with ``version`` = ``v8.2``), and one of them, the default,
also at the root. What differs between versions in behaviour lives in ``handlers/versions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import spec
from tams_server import specload


@dataclass(frozen=True)
class Mount:
    """One API version served under one base path ("" for the root)."""

    version: str
    base_path: str
    spec_path: Path


def version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:
        raise ValueError(f"not a TAMS API version: {version!r} (expected e.g. 8.2)") from None


def prefix(version: str) -> str:
    return f"/v{version}"


def spec_version(spec_path: Path) -> str:
    """The ``info.version`` a spec file declares."""
    version = str(specload.load_document(spec_path).get("info", {}).get("version", ""))
    version_key(version)
    return version


def plan_mounts(
    versions: list[str] | None,
    default_version: str | None,
    single_spec: str | None,
    specs: dict[str, str],
) -> list[Mount]:
    """The mounts a server serves: every version under its prefix, then the default at the root.

    ``single_spec`` (the ``--spec FILE`` of a single-version server) serves that file's version only;
    ``specs`` replaces our spec file of a version by another (e.g. the official one).
    """
    files = {v: spec.spec_path(v) for v in spec.versions()}
    files.update({v: Path(p) for v, p in specs.items()})
    if single_spec:
        only = spec_version(Path(single_spec))
        files[only] = Path(single_spec)
        versions = [only]
    chosen = sorted(dict.fromkeys(versions or files), key=version_key)
    unknown = [v for v in chosen if v not in files]
    if unknown:
        raise ValueError(f"no spec file for TAMS {', '.join(unknown)} (served: {', '.join(sorted(files))})")
    root = default_version or chosen[-1]
    if root not in chosen:
        raise ValueError(f"default_version {root} is not one of the served versions {', '.join(chosen)}")
    for version in chosen:
        declared = spec_version(files[version])
        if declared != version:
            raise ValueError(f"{files[version]} describes TAMS {declared}, not {version}")
    mounts = [Mount(v, prefix(v), files[v]) for v in chosen]
    return [*mounts, Mount(root, "", files[root])]


def match(mounts: list[Mount], path: str) -> tuple[Mount, str]:
    """The mount serving ``path`` and the path below its base path (the root mount catches the rest)."""
    for mount in mounts:
        if mount.base_path and (path == mount.base_path or path.startswith(mount.base_path + "/")):
            return mount, path[len(mount.base_path) :] or "/"
    return mounts[-1], path


def describe_mounts(mounts: list[Mount]) -> str:
    """E.g. "TAMS 7.0 at /v7.0, TAMS 8.2 at /v8.2 and /"."""
    places: dict[str, list[str]] = {}
    for mount in mounts:
        places.setdefault(mount.version, []).append(mount.base_path or "/")
    return ", ".join(f"TAMS {version} at {' and '.join(paths)}" for version, paths in places.items())
