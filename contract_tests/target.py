"""Targets: what the suite tests (an in-process app on a named backend, or a server by URL)."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from contract_tests.api import Api
from contract_tests.spec import Spec

DEFAULT_TIMEOUT = 30.0


@dataclass
class Credentials:
    token: str | None = None
    user: str | None = None
    password: str | None = None

    def apply(self, client_kwargs: dict[str, Any]) -> None:
        """Send the credentials when given: a bearer token, or HTTP basic."""
        if self.token:
            client_kwargs.setdefault("headers", {})["Authorization"] = f"Bearer {self.token}"
        elif self.user is not None:
            client_kwargs["auth"] = httpx.BasicAuth(self.user, self.password or "")

    @property
    def given(self) -> bool:
        return bool(self.token) or self.user is not None


@dataclass
class Target:
    """One system under test. ``api()`` gives a checking client; ``close()`` releases it."""

    name: str
    kind: str  # "in-process" or "remote"
    base_url: str
    http: httpx.Client
    media_http: httpx.Client
    app: Any = None  # the ASGI app, in process
    credentials: Credentials = field(default_factory=Credentials)
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    def api(self, spec: Spec | None, read_only: bool = False) -> Api:
        return Api(self.http, name=self.name, spec=spec, read_only=read_only, media_http=self.media_http)

    @property
    def backend(self) -> Any:
        """The backend object of an in-process app (None for a remote target)."""
        return getattr(self.app, "backend", None)

    def close(self) -> None:
        while self._closers:
            with contextlib.suppress(Exception):
                self._closers.pop()()


def remote(url: str, credentials: Credentials | None = None, timeout: float = DEFAULT_TIMEOUT) -> Target:
    credentials = credentials or Credentials()
    kwargs: dict[str, Any] = {"base_url": url.rstrip("/"), "timeout": timeout}
    credentials.apply(kwargs)
    http = httpx.Client(**kwargs)
    media = httpx.Client(timeout=timeout)
    target = Target("remote", "remote", url.rstrip("/"), http, media, credentials=credentials)
    target._closers += [http.close, media.close]
    return target


def in_process(backend: str, options: dict[str, Any] | None = None, name: str | None = None) -> Target:
    """A tams-server app on ``backend``, called in process with a random admin token."""
    from contract_tests import inprocess

    token = f"tams_conformance-{secrets.token_urlsafe(16)}"
    app = inprocess.build_app(backend, options, token)
    client = inprocess.make_client(app, {"Authorization": f"Bearer {token}"})
    client.__enter__()  # runs the app's lifespan (background work of the backend)
    target = Target(
        name or backend,
        "in-process",
        inprocess.IN_PROCESS_BASE_URL,
        client,
        client,
        app=app,
        credentials=Credentials(token=token),
    )
    target._closers.append(lambda: client.__exit__(None, None, None))
    return target
