"""Fixtures for the HTTP API tests.

Every API test runs once per spec file the server can be started on (``spec_path``: ours and the
official one), and every response a test receives is checked against the official TAMS spec with
openapi-core (see ``TamsClient``). A response the spec does not allow fails the test with
``ResponseCheckFailed`` (deliberately not an ``AssertionError``, so an ``xfail(raises=AssertionError)``
never hides it). ``client.unchecked()`` turns the check off for a call that provokes a status the
spec does not document (405, 404 for an unknown path, ...).

Building an app (bundling and adapting the spec for Connexion) takes ~0.4 s, so each spec's app is
built once per session and every test gets a copy of it with a fresh in-memory backend
(``fresh_app``): a fresh store per test at almost no cost. ``make_client`` builds a genuinely
fresh ``create_app`` when a test needs one (the coverage test does).
"""

from __future__ import annotations

import copy
import datetime as dt
import functools
import json
import os
import re
import socket
import uuid
import weakref
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import yaml
from jsonschema_path import SchemaPath
from openapi_core.testing import MockRequest, MockResponse
from openapi_core.validation.response.validators import (
    V31ResponseHeadersValidator,
    V31ResponseValidator,
)
from starlette.testclient import TestClient

import backends
import spec
from backends.base import Backend, StorageRequest
from contract_tests.spec import self_contained
from tams_server.app import TamsApp, build_services, create_app
from tams_server.config import Settings

SHARED = Path(__file__).resolve().parents[2] / "shared"
# The official spec of each version (absent for an outside user: tests that need it skip).
OFFICIAL_SPECS = {
    "7.0": SHARED / "tams-spec/api/TimeAddressableMediaStore.yaml",
    "8.2": SHARED / "tams-spec-8.2/api/TimeAddressableMediaStore.yaml",
}
OFFICIAL_SPEC = OFFICIAL_SPECS["7.0"]
OUR_SPEC = spec.SPEC_PATH
# The versions the API tests run on: TAMS_TEST_VERSIONS (comma-separated), else these.
DEFAULT_TEST_VERSIONS = "7.0,8.2"
BASE_URL = "http://testserver"
# The admin credential every test app is started with (tests of authentication make their own).
ADMIN_TOKEN = "tams_test-admin-9Kq2vX7pLm4Rz8Tw"  # strong enough for secret_strength
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The spec's first server; openapi-core matches request URLs against the servers list.
VALIDATION_HOST = "http://localhost:4010"
MEDIA_PREFIX = "/_media/"
HTTP_METHODS = ("get", "head", "put", "post", "delete")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

VIDEO = "urn:x-nmos:format:video"
AUDIO = "urn:x-nmos:format:audio"
DATA = "urn:x-nmos:format:data"
IMAGE = "urn:x-tam:format:image"
MULTI = "urn:x-nmos:format:multi"

FLOW_TEMPLATES: dict[str, dict[str, Any]] = {
    "video": {
        "format": VIDEO,
        "codec": "video/h264",
        "container": "video/mp2t",
        "essence_parameters": {"frame_width": 1920, "frame_height": 1080, "frame_rate": {"numerator": 25}},
    },
    "audio": {
        "format": AUDIO,
        "codec": "audio/aac",
        "container": "video/mp2t",
        "essence_parameters": {"sample_rate": 48000, "channels": 2},
    },
    "data": {
        "format": DATA,
        "codec": "text/vtt",
        "container": "text/vtt",
        "essence_parameters": {"data_type": "urn:x-tams:data:subtitle"},
    },
    "image": {
        "format": IMAGE,
        "codec": "image/jpeg",
        "container": "image/jpeg",
        "essence_parameters": {"frame_width": 640, "frame_height": 360},
    },
    "multi": {"format": MULTI, "container": "video/mp2t"},
}


def new_id() -> str:
    return str(uuid.uuid4())


# --------------------------------------------------------------------------- the spec's operations


@dataclass(frozen=True)
class Operation:
    method: str  # upper case
    template: str
    operation_id: str
    success: frozenset[int]  # documented 2xx statuses


def reference_spec(version: str = "7.0") -> Path:
    """The spec responses are checked against: the official one, or ours when it is absent."""
    official = OFFICIAL_SPECS.get(version)
    return official if official is not None and official.is_file() else spec.spec_path(version)


@functools.cache
def reference_document(version: str = "7.0") -> dict[str, Any]:
    return _load(reference_spec(version))


@functools.cache
def operations(version: str = "7.0") -> tuple[Operation, ...]:
    document = reference_document(version)
    found = []
    for template, item in document["paths"].items():
        for method in HTTP_METHODS:
            if method in item:
                statuses = frozenset(int(s) for s in item[method]["responses"] if str(s).startswith("2"))
                found.append(Operation(method.upper(), template, item[method]["operationId"], statuses))
    return tuple(found)


@functools.cache
def _template_patterns(version: str) -> tuple[tuple[re.Pattern[str], str], ...]:
    """(regex over the raw, percent-encoded path, template); object ids may span segments."""
    table = []
    for template in dict.fromkeys(op.template for op in operations(version)):
        regex = ""
        for part in re.split(r"(\{[^}]+\})", template):
            if part == "{objectId}":
                regex += ".+"
            elif part.startswith("{"):
                regex += "[^/]+"
            else:
                regex += re.escape(part)
        table.append((re.compile(f"^{regex}$"), template))
    # The longest template first: /objects/{objectId}/instances before /objects/{objectId}.
    return tuple(sorted(table, key=lambda entry: -len(entry[1])))


def match_template(raw_path: str, version: str = "7.0") -> str | None:
    """The spec's path template of a path below the API's base path."""
    for pattern, template in _template_patterns(version):
        if pattern.match(raw_path):
            return template
    return None


def _load(path: Path) -> Any:
    text = path.read_text(encoding="utf-8")
    return json.loads(text) if path.suffix == ".json" else yaml.load(text, Loader=_YAML_LOADER)


@functools.cache
def _validators(version: str) -> tuple[V31ResponseValidator, V31ResponseHeadersValidator]:
    path = reference_spec(version)
    document = self_contained(reference_document(version), path)
    # A SchemaPath skips openapi-core's check of the spec itself (~3 s); the spec is known valid.
    schema = SchemaPath.from_dict(document, base_uri=path.as_uri())
    return V31ResponseValidator(schema), V31ResponseHeadersValidator(schema)


# --------------------------------------------------------------------------- the checking client


class ResponseCheckFailed(Exception):
    """A response that the official spec or the server's error contract does not allow."""


def _is_rfc3339(value: Any) -> bool:
    if not isinstance(value, str) or not re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$", value):
        return False
    try:
        dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def error_body_problems(response: httpx.Response) -> str | None:
    """Why a 4xx/5xx body is not the JSON ``{type, summary, time}`` error shape (None when it is)."""
    try:
        body = response.json()
    except ValueError:
        return f"error body is not JSON: {response.content[:200]!r}"
    if not isinstance(body, dict):
        return f"error body is not an object: {body!r}"
    for key in ("type", "summary"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"error body has no string {key!r}: {body!r}"
    if not _is_rfc3339(body.get("time")):
        return f"error body has no RFC 3339 'time': {body!r}"
    return None


class AppClient(TestClient):
    """A TestClient of the app whose requests to other hosts (media at S3 presigned URLs) go over
    the network, without our credentials (a presigned URL carries its own)."""

    def request(self, method: str, url: Any, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        target = httpx.URL(str(url))
        if target.is_absolute_url and target.host != httpx.URL(str(self.base_url)).host:
            kwargs.pop("auth", None)
            with httpx.Client(timeout=30) as outside:
                return outside.request(method, target, **kwargs)
        return super().request(method, url, **kwargs)


class TamsClient(AppClient):
    """A TestClient of one API version that checks every TAMS API response it receives against
    that version's official spec. Paths are relative to the version's base path (``/v7.0``, or
    ``base_path``).

    It also records the (method, path template) of every API request in ``hits``.
    """

    def __init__(self, app: Any, version: str = "7.0", base_path: str | None = None) -> None:
        self.version = version
        self.base_path = f"/v{version}" if base_path is None else base_path
        super().__init__(app, base_url=BASE_URL + self.base_path, headers=ADMIN_HEADERS)
        self.check_spec = True
        self.hits: set[tuple[str, str]] = set()
        self.event_hooks = {"request": [], "response": [self._check_response]}

    @contextmanager
    def unchecked(self) -> Iterator[TamsClient]:
        """Skip the spec check for the calls in this block (for statuses the spec does not list)."""
        self.check_spec = False
        try:
            yield self
        finally:
            self.check_spec = True

    def _check_response(self, response: httpx.Response) -> None:
        response.read()
        request = response.request
        method = request.method.upper()
        raw_path = request.url.raw_path.decode("ascii").partition("?")[0]
        if raw_path.startswith(MEDIA_PREFIX):
            return  # media URLs are not part of the TAMS API
        if self.base_path and (raw_path == self.base_path or raw_path.startswith(self.base_path + "/")):
            raw_path = raw_path[len(self.base_path) :] or "/"
        template = match_template(raw_path, self.version)
        if template is not None:
            self.hits.add((method, template))
        if not self.check_spec:
            return
        where = f"{method} {request.url} -> {response.status_code}"
        if template is None:
            raise ResponseCheckFailed(f"{where}: the spec has no such path")
        problems = self._spec_problems(self.version, method, template, response)
        if method == "HEAD" and response.content:
            problems.append(f"HEAD response has a body: {response.content[:200]!r}")
        if response.status_code == 204 and response.content:
            problems.append(f"204 response has a body: {response.content[:200]!r}")
        if response.status_code >= 400 and method != "HEAD":
            problem = error_body_problems(response)
            if problem:
                problems.append(problem)
        if problems:
            raise ResponseCheckFailed(f"{where}: " + "; ".join(problems) + f"\nbody: {response.text[:500]}")

    @staticmethod
    def _spec_problems(version: str, method: str, template: str, response: httpx.Response) -> list[str]:
        full, headers_only = _validators(version)
        mock_request = MockRequest(VALIDATION_HOST, method.lower(), template, path_pattern=template)
        mock_response = MockResponse(
            response.content,
            status_code=response.status_code,
            headers=dict(response.headers),
            content_type=response.headers.get("content-type", "application/json"),
        )
        # The spec gives every HEAD response a JSON body; HEAD has none, so check status and headers only.
        validator = headers_only if method == "HEAD" else full
        return [_describe(error) for error in validator.iter_errors(mock_request, mock_response)]


def _describe(error: Exception) -> str:
    cause = error.__cause__ or getattr(error, "schema_errors", None)
    return f"{error!r}" + (f" ({cause})" if cause else "")


# --------------------------------------------------------------------------- apps and clients


def app_settings(**overrides: Any) -> Settings:
    """Settings for an app under test: every API version (7.0 also at the root, as tests written
    before other versions assume), the memory backend, credentials in memory, the admin token
    below, loopback webhooks."""
    defaults: dict[str, Any] = {
        "default_version": "7.0",
        "backend": "memory",
        "data_dir": None,
        "admin_token": ADMIN_TOKEN,
        "webhooks_allow_private": True,
    }
    return Settings(**{**defaults, **overrides})


def backend_settings(name: str) -> dict[str, Any]:
    """Settings that start ``name`` empty each time its factory is called (so every ``fresh_app``
    starts empty): the backend's self-contained options (a temporary directory for ``local``, an
    emulated cluster for ``vast``), or a real cluster's from ``TAMS_TEST_<NAME>_OPTIONS``."""
    return {"backend": name, "backend_options": backend_options(name)}


def backend_options(name: str) -> dict[str, Any]:
    """``TAMS_TEST_<NAME>_OPTIONS`` (JSON backend options: opt-in tests against real services, e.g. a
    VAST cluster), with a fresh ``schema`` per call so every store starts empty; else the backend's
    self-contained options."""
    configured = os.environ.get(f"TAMS_TEST_{name.upper()}_OPTIONS")
    if not configured:
        return backends.self_contained_options(name)
    options = json.loads(configured)
    if "schema" in options:
        options["schema"] = f"{options['schema']}_{uuid.uuid4().hex[:12]}"
    return options


def test_backends(config: pytest.Config) -> list[str]:
    """The backends the API tests run on: ``--backend NAME`` (repeatable), else ``TAMS_TEST_BACKENDS``
    (comma-separated), else memory, local and vast (emulated)."""
    chosen = config.getoption("--backend") or os.environ.get("TAMS_TEST_BACKENDS", "memory,local,vast").split(",")
    return [name.strip() for name in chosen if name.strip()]


test_backends.__test__ = False  # type: ignore[attr-defined]

_open_backends: list[Any] = []


def fresh_app(template: TamsApp) -> TamsApp:
    """A copy of a built app (same routes, settings, credentials) with a new, empty backend.

    The backend is closed when the test ends.
    """
    app = copy.copy(template)
    settings = template.settings
    holder: list[Any] = []
    app.services = build_services(settings, lambda: holder[0])
    app.backend = backends.load_factory(settings.backend)(settings.backend_options, app.services)
    holder.append(app.backend)
    _open_backends.append(app.backend)
    return app


@pytest.fixture(scope="module")
def built_apps() -> Iterator[dict[Any, TamsApp]]:
    """Apps a module builds once, by a key of its choosing (building one, with every version's
    routes, takes seconds); tests copy them with ``fresh_app``. Closed when the module ends."""
    built: dict[Any, TamsApp] = {}
    yield built
    for app in built.values():
        app.backend.close()


@pytest.fixture(autouse=True)
def _close_fresh_backends() -> Iterator[None]:
    yield
    while _open_backends:
        _open_backends.pop().close()


def make_client(spec_file: Path, version: str = "7.0") -> TamsClient:
    """A client of ``version`` on a genuinely fresh ``create_app`` serving it from ``spec_file`` (slow: ~0.4 s)."""
    return TamsClient(create_app(app_settings(specs={version: str(spec_file)})), version)


SPECS = ("ours", "official")


def test_versions() -> list[str]:
    """The API versions the API tests run on: ``TAMS_TEST_VERSIONS`` (comma-separated), else the default."""
    chosen = os.environ.get("TAMS_TEST_VERSIONS", DEFAULT_TEST_VERSIONS).split(",")
    return [name.strip() for name in chosen if name.strip()]


test_versions.__test__ = False  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def spec_path(api_version: str, spec_kind: str) -> Path:
    """The spec file the version under test is served from: every API test runs on ours and the
    official one (see pytest_generate_tests)."""
    if spec_kind == "official":
        official = OFFICIAL_SPECS[api_version]
        if not official.is_file():
            pytest.skip(f"official {api_version} spec not found at {official}")
        return official
    return spec.spec_path(api_version)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--backend",
        action="append",
        default=[],
        help="run the API tests on this backend (repeatable; default: $TAMS_TEST_BACKENDS or memory,local,vast)",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """API versions, spec files and backends: the newest version runs on every backend, older ones
    on the first two (see ``_older_beyond_second``); the first backend runs on every spec file, the
    others on our spec only, as the spec file changes routing and validation, not what a backend
    does (every version on every backend and spec with ``TAMS_TEST_ALL_SPECS=1``). A test marked
    ``versions("7.0")`` runs on those versions only, on every backend."""
    if "spec_kind" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("versions")
    versions = [v for v in test_versions() if marker is None or v in marker.args]
    if not versions:
        versions = [marker.args[0]] if marker else ["7.0"]
    if "backend_name" not in metafunc.fixturenames:
        combos2 = [(version, kind) for version in versions for kind in SPECS]
        metafunc.parametrize(
            ("api_version", "spec_kind"), combos2, scope="session", ids=[f"{v}-{k}" for v, k in combos2]
        )
        return
    every_spec = os.environ.get("TAMS_TEST_ALL_SPECS", "") not in ("", "0")
    names = test_backends(metafunc.config)
    combos = [
        (version, kind, name)
        for version in versions
        for i, name in enumerate(names)
        for kind in SPECS
        if (every_spec or i == 0 or kind == "ours") and (every_spec or not _older_beyond_second(version, i, versions))
    ]
    metafunc.parametrize(
        ("api_version", "spec_kind", "backend_name"),
        combos,
        scope="session",
        ids=[f"{version}-{kind}-{name}" for version, kind, name in combos],
    )


def _older_beyond_second(version: str, backend_index: int, versions: list[str]) -> bool:
    """Older versions run their API tests on the first two backends only (memory and local by
    default), to keep the default run within its time budget; 7.0 on the vast backend is still
    run by the upgrade, deletion and webhook tests (``TAMS_TEST_ALL_SPECS=1``: all)."""
    return version != versions[-1] and backend_index >= 2


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "versions(*names): run this API test on these API versions only")


@pytest.fixture(scope="session")
def app_template(spec_path: Path, backend_name: str, api_version: str) -> Iterator[TamsApp]:
    """The app every API test copies: one per version, spec file and backend (it serves every
    version; the one under test from ``spec_path``)."""
    app = create_app(app_settings(specs={api_version: str(spec_path)}, **backend_settings(backend_name)))
    yield app
    app.backend.close()


@pytest.fixture
def client(app_template: TamsApp, api_version: str) -> Iterator[TamsClient]:
    """A client of the version under test on an app with a fresh, empty store of the backend under test."""
    with TamsClient(fresh_app(app_template), api_version) as c:
        yield c


# --------------------------------------------------------------------------- TAMS helpers


def flow_body(kind: str = "video", flow_id: str | None = None, source_id: str | None = None, **fields: Any) -> dict:
    """A valid flow of ``kind`` (video, audio, data, image, multi) with ``container`` set."""
    body = {"id": flow_id or new_id(), "source_id": source_id or new_id(), **copy.deepcopy(FLOW_TEMPLATES[kind])}
    for key, value in fields.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return body


_LINK = re.compile(r'^<([^>]+)>;\s*rel="next"$')


def next_link(response: httpx.Response) -> str | None:
    """The URL of ``Link: <url>; rel="next"``, None when absent; fails on any other form."""
    link = response.headers.get("link")
    if link is None:
        return None
    match = _LINK.match(link.strip())
    assert match, f'Link header not of the form <url>; rel="next": {link!r}'
    return match.group(1)


def allocate_objects(client: TestClient, flow_id: str, count: int = 1, base: str = "") -> list[str]:
    """``count`` object ids the server allocates for ``flow_id`` (1,000 per storage POST under
    ``base``), for any client: a segment must name an allocated (or registered) object, or bring
    its own ``get_urls``."""
    ids: list[str] = []
    while len(ids) < count:
        response = client.post(f"{base}/flows/{flow_id}/storage", json={"limit": min(1000, count - len(ids))})
        assert response.status_code == 201, response.text
        ids += [o["object_id"] for o in response.json()["media_objects"]]
    return ids


def allocate_in_backend(backend: Backend, flow_id: str, object_ids: Iterable[str]) -> None:
    """Allocate these object ids for ``flow_id`` on a backend called directly (1,000 per call), as a
    client must before registering segments on them; ids repeated are allocated once."""
    ids = list(dict.fromkeys(object_ids))
    for start in range(0, len(ids), 1000):
        backend.allocate_storage(flow_id, StorageRequest(object_ids=tuple(ids[start : start + 1000])))


# Object ids ``post_segment`` allocates at a time for a flow (one storage POST serves several segments).
POOL_SIZE = 8
_app_objects: weakref.WeakKeyDictionary[Any, tuple[set[str], dict[str, list[str]]]] = weakref.WeakKeyDictionary()


class Tams:
    """Small helpers over a client, asserting the status each step must have.

    Segments are registered as a real client must: on objects allocated for the flow first
    (``POST /flows/{id}/storage``) or with their own ``get_urls``; the server refuses a segment on
    an object it has never seen that brings no URLs. ``post_segment`` allocates what it needs
    (a few ids at a time); a test posting many segments allocates them in bulk (``new_objects``,
    ``allocate_ids``).
    """

    def __init__(self, client: TamsClient) -> None:
        self.client = client
        # Shared by every Tams on the app (a 7.0 and an 8.2 one): object ids allocated or registered
        # through these helpers, and per flow the ids allocated for it and not used yet.
        self.known, self._pool = _app_objects.setdefault(client.app, (set(), {}))

    flow_body = staticmethod(flow_body)

    def put_flow(self, kind: str = "video", **fields: Any) -> dict:
        body = flow_body(kind, **fields)
        response = self.client.put(f"/flows/{body['id']}", json=body)
        assert response.status_code == 201, response.text
        return body

    def get_flow(self, flow_id: str, **params: Any) -> dict:
        response = self.client.get(f"/flows/{flow_id}", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def get_source(self, source_id: str) -> dict:
        response = self.client.get(f"/sources/{source_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def segment(self, timerange: str, object_id: str | None = None, **fields: Any) -> dict:
        """A segment body; without ``object_id``, on a new id the server has never seen (for a
        segment that brings its own ``get_urls``, or that must be refused before its object matters)."""
        return {"object_id": object_id or new_id(), "timerange": timerange, **fields}

    def post_segment(self, flow_id: str, timerange: str, object_id: str | None = None, **fields: Any) -> dict:
        """Register one segment (201): on ``object_id`` (allocated for the flow first unless known
        to these helpers), else on an object allocated for the flow; a segment with ``get_urls``
        and no ``object_id`` gets a new id, an object only those URLs hold."""
        if object_id is None:
            object_id = new_id() if fields.get("get_urls") else self._pooled(flow_id)
        elif not fields.get("get_urls"):
            self.allocate_ids(flow_id, object_id)
        body = self.segment(timerange, object_id, **fields)
        response = self.client.post(f"/flows/{flow_id}/segments", json=body)
        assert response.status_code == 201, response.text
        self.known.add(object_id)
        return body

    def new_objects(self, flow_id: str, count: int) -> list[str]:
        """``count`` object ids the server allocates for ``flow_id`` (1,000 per request)."""
        ids: list[str] = []
        while len(ids) < count:
            ids += [o["object_id"] for o in self.allocate(flow_id, limit=min(1000, count - len(ids)))]
        return ids

    def allocate_ids(self, flow_id: str, *object_ids: str) -> list[str]:
        """Allocate these client-chosen ids for ``flow_id`` (those not known to these helpers yet,
        1,000 per request); returns them all."""
        wanted = [i for i in dict.fromkeys(object_ids) if i not in self.known]
        for start in range(0, len(wanted), 1000):
            self.allocate(flow_id, object_ids=wanted[start : start + 1000])
        return list(object_ids)

    def _pooled(self, flow_id: str) -> str:
        pool = self._pool.setdefault(flow_id, [])
        if not pool:
            pool += self.new_objects(flow_id, POOL_SIZE)
        return pool.pop(0)

    def segments(self, flow_id: str, **params: Any) -> list[dict]:
        response = self.client.get(f"/flows/{flow_id}/segments", params=params)
        assert response.status_code == 200, response.text
        return response.json()

    def timeranges(self, flow_id: str, **params: Any) -> list[str]:
        return [s["timerange"] for s in self.segments(flow_id, **params)]

    def allocate(self, flow_id: str, **body: Any) -> list[dict]:
        response = self.client.post(f"/flows/{flow_id}/storage", json=body)
        assert response.status_code == 201, response.text
        objects = response.json()["media_objects"]
        self.known.update(o["object_id"] for o in objects)
        return objects

    def pages(self, path: str, **params: Any) -> list[httpx.Response]:
        """GET ``path`` and follow ``Link: rel="next"`` until it is absent."""
        responses = [self.client.get(path, params=params)]
        while True:
            assert responses[-1].status_code == 200, responses[-1].text
            url = next_link(responses[-1])
            if url is None:
                return responses
            assert len(responses) < 1000, "paging does not end"
            responses.append(self.client.get(url))


@pytest.fixture
def tams(client: TamsClient) -> Tams:
    return Tams(client)


def raw_get(server: str, target: str) -> bytes:
    """The whole answer to ``GET target`` sent byte for byte to ``server`` (HTTP clients and browsers
    remove dot segments before sending: this does not)."""
    where = urlsplit(server)
    with socket.create_connection((where.hostname, where.port), timeout=10) as connection:
        connection.sendall(f"GET {target} HTTP/1.1\r\nHost: {where.netloc}\r\nConnection: close\r\n\r\n".encode())
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def same_headers(head: httpx.Response, get: httpx.Response) -> bool:
    """Whether HEAD answered with GET's headers: all of them, but each response's own X-Request-Id."""

    def others(response: httpx.Response) -> dict[str, str]:
        assert response.headers.get("x-request-id"), "every response carries an X-Request-Id"
        return {k: v for k, v in response.headers.items() if k != "x-request-id"}

    return others(head) == others(get)
