"""In-process targets: a tams-server app on a named backend, called without sockets.

This is the only module of the suite that imports server code (``backends``, ``tams_server``), and
it does so lazily, so the suite still runs against a URL with nothing but its own dependencies.
Backends are found through the server's own registry (``backends.available()`` /
``backends.load_factory``), so a backend added by any package is tested without naming it here.
"""

from __future__ import annotations

from typing import Any

IN_PROCESS_BASE_URL = "http://testserver"
ASYNC_DELETE_THRESHOLD = 4


def server_available() -> bool:
    try:
        import backends  # noqa: F401
        import tams_server.app  # noqa: F401
    except ImportError:
        return False
    return True


def available_backends() -> list[str]:
    """Backend names the server knows: built-ins, then those of installed entry points."""
    import backends

    return list(backends.available())


def build_app(
    backend: str,
    options: dict[str, Any] | None = None,
    token: str | None = None,
    data_dir: str | None = None,
    version: str | None = None,
) -> Any:
    """A fresh ``tams-server`` ASGI app on ``backend`` (resolved by the server's registry), serving
    API ``version`` (the suite's) at its root when the server has that version.

    ``data_dir`` is the server's data directory (a fresh temporary one, for backends that keep
    files); ``token`` becomes the admin bearer token; webhook receivers on loopback are allowed
    (the suite registers only a closed loopback port). Without ``options``, the backend runs on
    the options it declares self-contained (e.g. an emulated cluster), if any.
    """
    import dataclasses

    import backends
    import spec
    from tams_server.app import create_app
    from tams_server.config import Settings

    backends.load_factory(backend)  # fail early, with the registry's message, on an unknown name
    if options is None:
        options = backends.self_contained_options(backend)
    wanted: dict[str, Any] = {
        "backend": backend,
        "backend_options": dict(options),
        "data_dir": data_dir,
        "admin_token": token,
        "webhooks_allow_private": True,
        # Deletes of more than a few segments answer 202 here, so the suite walks the
        # asynchronous path (deletion requests) as well as the immediate one.
        "async_delete_threshold": ASYNC_DELETE_THRESHOLD,
        "default_version": version if version in spec.versions() else None,
    }
    known = {f.name for f in dataclasses.fields(Settings)}
    return create_app(Settings(**{k: v for k, v in wanted.items() if k in known}))


def make_client(app: Any, headers: dict[str, str] | None = None) -> Any:
    """An httpx-compatible client calling ``app`` in process (enter it to run the app's lifespan)."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from starlette.testclient import TestClient

    return TestClient(app, base_url=IN_PROCESS_BASE_URL, raise_server_exceptions=False, headers=headers)
