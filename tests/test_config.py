"""Settings precedence and backend selection by name or import path."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import app_settings

import backends
from backends.memory import MemoryBackend
from tams_server import config
from tams_server.app import create_app
from tams_server.cli import parse_args


def test_command_line_beats_environment_beats_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "tams.toml"
    file.write_text('port = 5000\nhost = "0.0.0.0"\nmedia_url_lifetime = 60\n[backend_options]\nstorage_label = "x"\n')
    monkeypatch.setenv("TAMS_PORT", "6000")
    monkeypatch.setenv("TAMS_MEDIA_URL_LIFETIME", "90")
    settings = config.load(str(file), {"port": 7000, "host": None})
    assert settings.port == 7000
    assert settings.host == "0.0.0.0"
    assert settings.media_url_lifetime == 90
    assert settings.backend_options == {"storage_label": "x"}


def test_unknown_settings_are_refused(tmp_path: Path) -> None:
    file = tmp_path / "tams.toml"
    file.write_text("prot = 5000\n")
    with pytest.raises(ValueError, match="prot"):
        config.load(str(file))


def test_cli_options_map_to_settings() -> None:
    args = parse_args(["--port", "8123", "--backend", "memory", "--public-url", "https://tams.example"])
    assert (args.port, args.backend, args.public_url) == (8123, "memory", "https://tams.example")


def custom_backend(options, services):
    """A third-party style factory, reachable by import path."""
    return backends.memory.create({"storage_label": options.get("label", "custom")}, services)


def test_backends_are_chosen_by_name_or_import_path() -> None:
    assert "memory" in backends.available()
    assert backends.load_factory("memory") is backends.memory.create
    app = create_app(app_settings(backend=f"{__name__}:custom_backend", backend_options={"label": "third"}))
    assert isinstance(app.backend, MemoryBackend)
    assert app.backend.storage_backends()[0]["label"] == "third"
    with pytest.raises(LookupError, match="unknown backend"):
        backends.load_factory("no-such-backend")


def test_backend_options_can_come_from_the_environment_as_json() -> None:
    found = config.from_environment({"TAMS_BACKEND_OPTIONS": '{"bucket": "db", "storage": [{"label": "s3"}]}'})
    assert found["backend_options"] == {"bucket": "db", "storage": [{"label": "s3"}]}
    with pytest.raises(ValueError, match="not JSON"):
        config.from_environment({"TAMS_BACKEND_OPTIONS": "bucket=db"})
    with pytest.raises(ValueError, match="JSON object"):
        config.from_environment({"TAMS_BACKEND_OPTIONS": "[1]"})
