"""API documentation: each mount's bundled spec at ``<base>/openapi.json`` and ``.yaml``, and its Swagger UI
at ``<base>/ui/`` (the page itself is driven in a real browser by test_docs_browser.py)."""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from conftest import ADMIN_HEADERS, app_settings, operations
from starlette.testclient import TestClient

from tams_server import docs, specload, versions
from tams_server.app import create_app

# app_settings: every version under /v<version>, and 7.0 also at the root.
MOUNTS = {"/v7.0": "7.0", "/v8.2": "8.2", "": "7.0"}
BASES = list(MOUNTS)
IDS = [base or "root" for base in BASES]


@pytest.fixture(scope="module")
def api() -> Iterator[TestClient]:
    with TestClient(create_app(app_settings()), base_url="http://testserver") as client:
        yield client


@pytest.fixture(scope="module")
def mounts() -> dict[str, versions.Mount]:
    planned = versions.plan_mounts(None, "7.0", None, {})
    return {mount.base_path: mount for mount in planned}


_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
bundle = functools.cache(specload.bundle)


def parse(response: Any, kind: str) -> Any:
    return json.loads(response.content) if kind == "json" else yaml.load(response.content, Loader=_YAML_LOADER)


@pytest.mark.parametrize("kind", ["json", "yaml"])
@pytest.mark.parametrize("base", BASES, ids=IDS)
def test_spec_is_the_bundled_spec_with_this_mount_as_its_server(
    api: TestClient, mounts: dict[str, versions.Mount], base: str, kind: str
) -> None:
    response = api.get(f"{base}/openapi.{kind}")
    assert response.status_code == 200
    assert response.headers["content-type"] == {"json": "application/json", "yaml": "application/yaml"}[kind]
    served = parse(response, kind)
    # "Try it out" calls this server under the mount's prefix, on whatever host the page came from.
    assert [server["url"] for server in served.pop("servers")] == [base or "/"]
    assert served == {key: value for key, value in bundle(mounts[base].spec_path).items() if key != "servers"}
    assert served["info"]["version"] == MOUNTS[base]


@pytest.mark.parametrize("base", BASES, ids=IDS)
def test_every_operation_of_the_version_is_documented_with_its_security(api: TestClient, base: str) -> None:
    served = api.get(f"{base}/openapi.json").json()
    documented = [op["operationId"] for item in served["paths"].values() for op in item.values() if "operationId" in op]
    assert len(documented) == len(set(documented))
    # The reference spec (the official one when present) lists the version's operations.
    assert {op.operation_id for op in operations(MOUNTS[base])} <= set(documented)
    # Unlike the document Connexion routes by, the security stays: Authorize offers bearer and basic.
    schemes = served["components"]["securitySchemes"]
    assert schemes["bearer_token_auth"]["scheme"] == "bearer"
    assert schemes["basic_auth"]["scheme"] == "basic"
    assert {"bearer_token_auth": []} in served["security"]


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for key, value in node.items():
            if key not in ("example", "examples", "default", "const", "enum"):
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


@pytest.mark.parametrize("base", ["/v7.0", "/v8.2"])
def test_spec_is_self_contained_and_yaml_and_json_agree(api: TestClient, base: str) -> None:
    as_json = api.get(f"{base}/openapi.json").json()
    assert parse(api.get(f"{base}/openapi.yaml"), "yaml") == as_json
    refs = set(_refs(as_json))
    assert refs, "the bundle keeps its internal references"
    for ref in refs:
        assert ref.startswith("#/"), f"not an internal reference: {ref}"
        node: Any = as_json
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]


@pytest.mark.parametrize("path", ["/v8.2/openapi.json", "/openapi.yaml", "/v7.0/ui/", "/v8.2/ui/swagger-ui.css"])
def test_head_etag_and_revalidation(api: TestClient, path: str) -> None:
    full = api.get(path)
    head = api.head(path)
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == str(len(full.content))
    assert head.headers["content-type"] == full.headers["content-type"]
    assert api.get(path, headers={"If-None-Match": full.headers["etag"]}).status_code == 304


@pytest.mark.parametrize("path", ["/v8.2/openapi.json", "/v8.2/ui/", "/v8.2/ui/swagger-ui-bundle.js"])
def test_only_get_and_head(api: TestClient, path: str) -> None:
    response = api.post(path, json={}, headers=ADMIN_HEADERS)
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, HEAD"


@pytest.mark.parametrize("base", BASES, ids=IDS)
def test_ui_page_loads_our_initializer_and_the_bundle(api: TestClient, base: str) -> None:
    redirect = api.get(f"{base}/ui", follow_redirects=False)
    assert redirect.status_code == 308
    assert redirect.headers["location"] == "ui/"  # relative: right behind a proxy's prefix too
    page = api.get(f"{base}/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"] == "text/html; charset=utf-8"
    assert f"TAMS {MOUNTS[base]}" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset, kind in [("swagger-ui-bundle.js", "javascript"), ("swagger-ui.css", "text/css"), ("tams-docs.js", "")]:
        assert f'"{asset}"' in page.text
        served = api.get(f"{base}/ui/{asset}")
        assert served.status_code == 200, asset
        assert kind in served.headers["content-type"]
        assert served.headers["x-content-type-options"] == "nosniff"
    initializer = api.get(f"{base}/ui/tams-docs.js").text
    assert 'url: "../openapi.json"' in initializer
    # Credentials stay in the page: never written to the browser's storage.
    assert "persistAuthorization: false" in initializer
    assert "tryItOutEnabled: true" in initializer


def test_the_bundled_swagger_ui_renders_openapi_3_1() -> None:
    # Swagger UI before 5 refuses an "openapi: 3.1.0" document ("does not specify a valid version field").
    directory = docs.swagger_ui_dir()
    assert docs.swagger_ui_version(directory) >= docs.MIN_SWAGGER_UI, f"{directory}: Swagger UI 5 or later needed"


@pytest.mark.parametrize(
    "path",
    [
        "/v8.2/ui/%2e%2e/%2e%2e/etc/passwd",  # the path the server sees for a literal /ui/../../etc/passwd too
        "/v8.2/ui/..%2f..%2f..%2fetc%2fpasswd",
        "/v8.2/ui/%2e%2e%2fopenapi.json",
        "/ui/..%5c..%5cetc%5cpasswd",
        "/ui/%2fetc%2fpasswd",
        "/ui//etc/passwd",
        "/v7.0/ui/swagger-ui.css%00.png",
        "/v7.0/ui/swagger-ui.css/",
        "/v7.0/ui/index.html",  # the bundle's own page and initializer load the Petstore demo
        "/v7.0/ui/swagger-initializer.js",
        "/v7.0/ui/no-such-file.js",
    ],
)
def test_only_bundle_files_are_served(api: TestClient, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404, response.text
    assert "root:" not in response.text
    assert response.json()["summary"] == "no such documentation file"


def test_docs_paths_leave_the_api_alone(api: TestClient) -> None:
    documentation = docs.ApiDocs(versions.plan_mounts(None, "7.0", None, {}))
    for base in ("/v8.2", ""):
        assert documentation.route(f"{base}/flows") is None
        assert documentation.route(f"{base}/flows/x/tags/openapi.json") is None
        served = api.get(f"{base}/openapi.json").json()
        assert not [p for p in served["paths"] if p.endswith(("/openapi.json", "/openapi.yaml")) or p.startswith("/ui")]
    assert api.get("/v8.2/flows", headers=ADMIN_HEADERS).status_code == 200
    assert api.get("/v8.2/flows").status_code == 401


def test_docs_need_no_credentials_unless_configured(api: TestClient) -> None:
    assert api.get("/v8.2/openapi.json").status_code == 200
    # The same app with docs_require_auth (a copy: building another app costs seconds).
    app = copy.copy(api.app)
    app.settings = dataclasses.replace(app.settings, docs_require_auth=True)
    guarded = TestClient(app)
    for path in ("/v8.2/openapi.json", "/v8.2/ui/", "/ui/swagger-ui.css"):
        assert guarded.get(path).status_code == 401, path
        assert guarded.get(path, headers=ADMIN_HEADERS).status_code == 200, path
