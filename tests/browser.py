"""A headless Chromium for the tests that look at a page: Debian's ``chromium`` driven by Playwright.

Playwright never downloads a browser here: it launches the system's (``/usr/bin/chromium``, or the
``CHROMIUM`` environment variable). Without it, or without Playwright, a test that launches it
skips and says which is missing (``.ci/run`` installs Debian's chromium when it can). A module's
fixture::

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        with launched() as chromium:
            yield chromium
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

DEFAULT_CHROMIUM = "/usr/bin/chromium"
# Headless, and nothing that reaches outside this machine (updates, sync, QUIC probes).
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    """The Chromium executable to drive: ``CHROMIUM``, else Debian's, when it exists."""
    configured = os.environ.get("CHROMIUM")
    if configured:
        return shutil.which(configured) or (configured if Path(configured).is_file() else None)
    return DEFAULT_CHROMIUM if Path(DEFAULT_CHROMIUM).is_file() else None


def why_no_browser() -> str | None:
    """Why no browser test can run here (None when one can)."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install playwright; the test extra has it)"
    if chromium_path() is None:
        wanted = os.environ.get("CHROMIUM") or DEFAULT_CHROMIUM
        return f"no Chromium at {wanted} (apt-get install chromium, or set CHROMIUM)"
    return None


@contextmanager
def launched() -> Iterator[Browser]:
    """A headless Chromium for the block (skips the calling test when there is none)."""
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), args=LAUNCH_ARGS, timeout=30_000)
        try:
            yield browser
        finally:
            browser.close()


@contextmanager
def screenshot_on_failure(page: Page, where: Path, name: str) -> Iterator[None]:
    """Save a screenshot of ``page`` to ``where/name.png`` when the block fails (and say where)."""
    try:
        yield
    except BaseException as exc:
        if isinstance(exc, pytest.skip.Exception):
            raise
        where.mkdir(parents=True, exist_ok=True)
        shot = where / f"{name}.png"
        try:
            page.screenshot(path=str(shot), full_page=True)
        except Exception as shot_error:  # the page may be gone; the original failure matters
            exc.add_note(f"(no screenshot: {shot_error})")
        else:
            exc.add_note(f"screenshot of the page: {shot}")
        raise
