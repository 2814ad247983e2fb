"""The TAMS interfaces served by tams-server, one folder per API version (OpenAPI 3.1 + JSON schemas).

Each ``spec/<version>/TimeAddressableMediaStore.yaml`` describes that version in our own words; the
drift check (``tools/spec_drift.py``) keeps its structure equal to the official file of that version.
"""

from pathlib import Path

SPEC_ROOT: Path = Path(__file__).resolve().parent
SPEC_FILE_NAME = "TimeAddressableMediaStore.yaml"


def spec_path(version: str) -> Path:
    """Our spec file of ``version`` (e.g. ``"7.0"``)."""
    return SPEC_ROOT / version / SPEC_FILE_NAME


def versions() -> list[str]:
    """The API versions this package describes, oldest first."""
    found = [p.parent.name for p in SPEC_ROOT.glob(f"*/{SPEC_FILE_NAME}")]
    return sorted(found, key=lambda v: tuple(int(part) for part in v.split(".")))


# The 7.0 files, for code written before other versions were served.
SPEC_DIR: Path = SPEC_ROOT / "7.0"
SPEC_PATH: Path = spec_path("7.0")

__all__ = ["SPEC_DIR", "SPEC_FILE_NAME", "SPEC_PATH", "SPEC_ROOT", "spec_path", "versions"]
