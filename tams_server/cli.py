"""``tams-server``: run the TAMS API with uvicorn."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import backends
from tams_server import config, datadir, observe, serving
from tams_server.app import create_app
from tams_server.origins import is_loopback_interface
from tams_server.versions import describe_mounts


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tams-server",
        description="Serve the Time-addressable Media Store API (every version in spec/, each under /v{version}). "
        "Every option can also be set as TAMS_<OPTION> in the environment or in a TOML --config file.",
    )
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 4010)")
    parser.add_argument(
        "--backend",
        help=f"store backend by name or module:factory ({', '.join(backends.available())}; default local)",
    )
    parser.add_argument(
        "--spec",
        action="append",
        default=[],
        metavar="[VERSION=]FILE",
        help="serve VERSION from this spec file instead of ours (repeatable); a bare FILE is served alone",
    )
    parser.add_argument("--versions", help="API versions to serve, comma-separated (default: all of spec/)")
    parser.add_argument(
        "--default-version", dest="default_version", help="version also served at / (default: the newest)"
    )
    parser.add_argument("--public-url", dest="public_url", help="URL clients reach this server at (default: from Host)")
    parser.add_argument("--data-dir", dest="data_dir", help="where the server keeps its state (default ./tams-data)")
    parser.add_argument(
        "--insecure-no-auth",
        dest="insecure_no_auth",
        action="store_true",
        default=None,
        help="DEVELOPMENT ONLY: serve every request without credentials",
    )
    parser.add_argument("--config", help="TOML file of settings")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--log-format",
        dest="log_format",
        choices=observe.LOG_FORMATS,
        help="text (default) or json: one JSON object per line, one line per request",
    )
    return parser.parse_args(argv)


def spec_overrides(values: list[str]) -> dict[str, Any]:
    """``--spec FILE`` (one version, alone) and ``--spec VERSION=FILE`` (repeatable) as settings."""
    found: dict[str, Any] = {}
    for value in values:
        version, sep, path = value.partition("=")
        if sep and not Path(value).exists():
            found.setdefault("specs", {})[version] = path
        else:
            found["spec"] = value
    return found


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    names = ("host", "port", "backend", "public_url", "data_dir", "insecure_no_auth", "versions", "default_version")
    overrides = {k: getattr(args, k) for k in (*names, "log_format")}
    overrides.update(spec_overrides(args.spec))
    settings = config.load(args.config, overrides)
    observe.configure_logging(args.log_level, settings.log_format)
    datadir.private_files()
    app = create_app(settings)
    log = logging.getLogger("tams_server")
    if not settings.public_url and settings.trusted_hosts is None and not is_loopback_interface(settings.host):
        log.warning(
            "listening on %s with neither public_url nor trusted_hosts set: clients choose, through the Host "
            "header, the host of the URLs this server hands out (to other clients and webhook receivers)",
            settings.host,
        )
    log.info(
        "serving %s with the %r backend at http://%s:%d/ (state in %s)",
        describe_mounts(app.mounts),
        settings.backend,
        settings.host,
        settings.port,
        Path(settings.data_dir).resolve() if settings.data_dir else "memory only",
    )
    serving.run(app, settings, args.log_level)


if __name__ == "__main__":
    main()
