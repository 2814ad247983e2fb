"""The Swagger UI of each API version in a real browser (headless Debian chromium, via tests/browser.py),
against a real ``tams-server`` process: every operation is shown, Authorize takes a bearer token or
basic credentials, and "Try it out" runs ``GET /flows`` from the page (401 before authorising)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from browser import launched, screenshot_on_failure
from conftest import ADMIN_HEADERS, ADMIN_TOKEN, flow_body, operations, raw_get

from tools import server_process

if TYPE_CHECKING:
    from playwright.sync_api import Browser

ADMIN_USER = "docs-admin"
ADMIN_PASSWORD = "Vq7-kP2x!mZ9rT4w-Lc8nY3s"
# Swagger UI renders ~100 operations from a 400 kB spec: seconds on a shared 2-core machine.
RENDER_MS = 20_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launched() as chromium:
        yield chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    env = {
        **os.environ,
        "TAMS_BACKEND": "memory",
        "TAMS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TAMS_ADMIN_USER": ADMIN_USER,
        "TAMS_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "TAMS_DATA_DIR": str(tmp_path_factory.mktemp("data")),
    }
    with server_process.running(["--log-level", "warning"], env) as url:
        yield url


def operation_ids(server: str, version: str) -> list[str]:
    """The operationIds of the spec the page shows (test_docs checks it is the version's bundle)."""
    document = httpx.get(f"{server}/v{version}/openapi.json").json()
    methods = ("get", "head", "put", "post", "delete", "patch")
    return sorted(op["operationId"] for item in document["paths"].values() for m, op in item.items() if m in methods)


@pytest.mark.parametrize(("version", "credentials"), [("8.2", "bearer"), ("7.0", "basic")])
def test_try_it_out_lists_flows_from_the_page(
    browser: Browser, server: str, tmp_path: Path, version: str, credentials: str
) -> None:
    from playwright.sync_api import expect

    flow = flow_body("data")
    created = httpx.put(f"{server}/v{version}/flows/{flow['id']}", json=flow, headers=ADMIN_HEADERS)
    assert created.status_code == 201, created.text

    page = browser.new_page()
    page.set_default_timeout(10_000)
    with screenshot_on_failure(page, tmp_path, f"swagger-ui-{version}"):
        page.goto(f"{server}/v{version}/ui/")

        # Every operation of the version, once each (webhooks are rendered apart, outside the tag sections).
        ids = operation_ids(server, version)
        assert {op.operation_id for op in operations(version)} <= set(ids)
        shown = page.locator(".opblock-tag-section .opblock")
        expect(shown).to_have_count(len(ids), timeout=RENDER_MS)
        shown_ids = shown.locator(".opblock-summary-operation-id").evaluate_all("els => els.map(e => e.textContent)")
        assert sorted(shown_ids) == ids

        block = page.locator("#operations-Flows-GET_flows")
        block.locator(".opblock-summary-control").click()
        status = block.locator(".live-responses-table .response .response-col_status")
        body = block.locator(".live-responses-table .response-col_description pre").first

        if version == "8.2":  # once is enough (a second page would cost seconds)
            # Try it out is on from the start; without credentials the server refuses.
            block.locator("button.execute").click()
            expect(status).to_have_text(re.compile(r"^\s*401\b"))
            assert "credentials are required" in body.inner_text()

        page.locator("button.authorize").click()
        if credentials == "bearer":
            scheme = page.locator(".modal-ux .auth-container").filter(has_text="bearer_token_auth")
            scheme.locator("input").fill(ADMIN_TOKEN)
            secret = ADMIN_TOKEN
        else:
            scheme = page.locator(".modal-ux .auth-container").filter(has_text="basic_auth")
            scheme.locator("input[type=text]").fill(ADMIN_USER)
            scheme.locator("input[type=password]").fill(ADMIN_PASSWORD)
            secret = ADMIN_PASSWORD
        scheme.locator("button.authorize").click()
        scheme.locator("button.btn-done").click()

        block.locator("button.execute").click()
        expect(status).to_have_text(re.compile(r"^\s*200\b"))
        assert flow["id"] in body.inner_text()
        # The call went to this version's prefix on the host the page came from.
        assert block.locator(".request-url pre").inner_text().startswith(f"{server}/v{version}/flows")

        # persistAuthorization is off: the credentials live in the page, not in the browser's storage.
        stored = page.evaluate("() => JSON.stringify([{...localStorage}, {...sessionStorage}, document.cookie])")
        assert secret not in stored
    page.close()


@pytest.mark.parametrize(
    "target", ["/v8.2/ui/../../../../etc/passwd", "/ui/../../etc/passwd", "/v7.0/ui/..%2f..%2fapp.py"]
)
def test_dot_segments_over_real_http_are_refused(server: str, target: str) -> None:
    answer = raw_get(server, target)
    assert answer.startswith(b"HTTP/1.1 404 "), answer[:200]
    assert b"root:" not in answer
