"""Targets: what the suite tests (an in-process app on a named backend, or a server by URL)."""

from __future__ import annotations

import contextlib
import secrets
import shutil
import tempfile
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


class HeadBodyTap:
    """ASGI wrapper recording how many body bytes the app sent for each HEAD request.

    In process there is no wire to look at, and Starlette's test client (like any HTTP client)
    discards a HEAD response's body, so a server that sends one would go unseen. The tap sees
    what the app sent; requests are matched by the ``x-conformance-request`` header ``Api`` adds.
    """

    HEADER = "x-conformance-request"

    def __init__(self, app: Any) -> None:
        self.app = app
        self.sent: dict[str, int] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http" or scope.get("method") != "HEAD":
            await self.app(scope, receive, send)
            return
        key = dict(scope.get("headers") or []).get(self.HEADER.encode(), b"").decode()

        async def counting_send(message: Any) -> None:
            if message.get("type") == "http.response.body" and key:
                self.sent[key] = self.sent.get(key, 0) + len(message.get("body", b""))
            await send(message)

        await self.app(scope, receive, counting_send)

    def body_bytes(self, key: str) -> int:
        return self.sent.pop(key, 0)


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
    tap: HeadBodyTap | None = None
    _closers: list[Callable[[], Any]] = field(default_factory=list)

    def api(self, spec: Spec | None, read_only: bool = False, strict: bool = False) -> Api:
        return Api(
            self.http,
            name=self.name,
            spec=spec,
            read_only=read_only,
            media_http=self.media_http,
            tap=self.tap,
            strict=strict,
        )

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


def in_process(
    backend: str, options: dict[str, Any] | None = None, name: str | None = None, version: str | None = None
) -> Target:
    """A tams-server app on ``backend``, called in process with a random admin token, serving API
    ``version`` at the root."""
    from contract_tests import inprocess

    token = f"tams_conformance-{secrets.token_urlsafe(16)}"
    data_dir = tempfile.mkdtemp(prefix=f"tams-conformance-{backend}-")
    try:
        app = inprocess.build_app(backend, options, token, data_dir, version)
    except BaseException:
        shutil.rmtree(data_dir, ignore_errors=True)
        raise
    tap = HeadBodyTap(app)
    client = inprocess.make_client(tap, {"Authorization": f"Bearer {token}"})
    client.__enter__()  # runs the app's lifespan (background work of the backend)
    media = httpx.Client(timeout=30)  # media at other origins (S3 presigned URLs) is over the network
    target = Target(
        name or backend,
        "in-process",
        inprocess.IN_PROCESS_BASE_URL,
        client,
        media,
        app=app,
        credentials=Credentials(token=token),
        tap=tap,
    )
    target._closers.append(lambda: shutil.rmtree(data_dir, ignore_errors=True))
    target._closers.append(lambda: client.__exit__(None, None, None))
    target._closers.append(media.close)
    return target
