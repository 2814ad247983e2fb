"""``tams-server``: run the TAMS API with uvicorn."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

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
        "--backend",
        help=f"store backend by name or module:factory ({', '.join(backends.available())}; default local)",
    )
    parser.add_argument("--spec", help="TAMS spec file to serve (default: the spec shipped with tams-server)")
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    names = ("host", "port", "backend", "spec", "public_url", "data_dir", "insecure_no_auth")
    overrides = {k: getattr(args, k) for k in names}
    settings = config.load(args.config, overrides)
    app = create_app(settings)
    logging.getLogger("tams_server").info(
        "serving TAMS 7.0 with the %r backend at http://%s:%d/ (state in %s)",
        settings.backend,
        settings.host,
        settings.port,
        Path(settings.data_dir).resolve() if settings.data_dir else "memory only",
    )
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
