"""The data directory holds credentials, the database (webhook API keys in clear) and media: only
the server's own user may read it."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

log = logging.getLogger("tams_server")
PRIVATE_DIR = 0o700
PRIVATE_UMASK = 0o077  # files the server creates: owner only


def make_private(data_dir: Path) -> None:
    """Create ``data_dir`` owner-only, or make an existing one so (with a warning when it was open)."""
    data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    mode = stat.S_IMODE(data_dir.stat().st_mode)
    if mode & 0o077:
        try:
            data_dir.chmod(PRIVATE_DIR)
        except PermissionError:
            log.warning("the data directory %s is readable by others (mode %o) and cannot be changed", data_dir, mode)
            return
        log.warning("the data directory %s was readable by others (mode %o): now owner-only", data_dir, mode)


def private_files() -> None:
    """Every file the process creates from now on is owner-only (the database, media, temporaries)."""
    os.umask(PRIVATE_UMASK)
