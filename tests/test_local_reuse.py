"""The deletion and webhook tests, run again on the ``local`` backend (they default to memory)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import test_deletion
import test_webhooks
from conftest import app_settings

from tams_server.app import TamsApp, create_app


def _local_app(**settings: object) -> Iterator[TamsApp]:
    app = create_app(app_settings(backend="local", backend_options={"temporary": True, "durable": False}, **settings))
    yield app
    app.backend.close()


class TestDeletionOnLocal:
    @pytest.fixture
    def app(self) -> Iterator[TamsApp]:
        yield from _local_app(
            async_delete_threshold=test_deletion.THRESHOLD,
            delete_chunk=2,
            object_grace_s=0,
            unregistered_object_ttl_s=0,
        )

    client = staticmethod(test_deletion.client)

    def test_runs_on_local(self, app: TamsApp) -> None:
        assert type(app.backend).__name__ == "LocalBackend"


class TestWebhooksOnLocal:
    @pytest.fixture
    def app(self) -> Iterator[TamsApp]:
        yield from _local_app()

    client = staticmethod(test_webhooks.client)
    receiver = staticmethod(test_webhooks.receiver)

    def test_runs_on_local(self, app: TamsApp) -> None:
        assert type(app.backend).__name__ == "LocalBackend"


for _module, _cls in ((test_deletion, TestDeletionOnLocal), (test_webhooks, TestWebhooksOnLocal)):
    for _name in dir(_module):
        if _name.startswith("test_"):
            setattr(_cls, _name, staticmethod(getattr(_module, _name)))
