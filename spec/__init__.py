"""The TAMS 7.0 interface as described by tams-server (OpenAPI 3.1 + JSON schemas)."""

from pathlib import Path

SPEC_DIR: Path = Path(__file__).resolve().parent
SPEC_PATH: Path = SPEC_DIR / "TimeAddressableMediaStore.yaml"

__all__ = ["SPEC_DIR", "SPEC_PATH"]
