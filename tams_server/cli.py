"""``tams-server``: run the TAMS API with uvicorn."""

from __future__ import annotations

import argparse
import logging

import uvicorn

import backends
from tams_server import config
from tams_server.app import create_app


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tams-server",
        description="Serve the Time-addressable Media Store API 7.0. "
        "Every option can also be set as TAMS_<OPTION> in the environment or in a TOML --config file.",
    )
    parser.add_argument("--host", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 4010)")
    parser.add_argument(
        "--backend", help=f"store backend by name or module:factory ({', '.join(backends.available())})"
    )
    parser.add_argument("--spec", help="TAMS spec file to serve (default: the spec shipped with tams-server)")
    parser.add_argument("--public-url", dest="public_url", help="URL clients reach this server at (default: from Host)")
    parser.add_argument("--config", help="TOML file of settings")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    overrides = {k: getattr(args, k) for k in ("host", "port", "backend", "spec", "public_url")}
    settings = config.load(args.config, overrides)
    app = create_app(settings)
    logging.getLogger("tams_server").info(
        "serving TAMS 7.0 with the %r backend at http://%s:%d/", settings.backend, settings.host, settings.port
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
