"""``tams-admin``: manage the credentials a tams-server accepts, and report what its store holds.

Credentials live (hashed) in ``<data dir>/credentials.json``; the server reads them at start-up,
so restart it after a change.

``tams-admin report`` reads the store the server's settings name (``--config``, ``TAMS_*``,
``--data-dir``, as ``tams-server`` reads them) and prints a report of it (``backends.report``);
``--json`` for scripts. It opens the store read-only, beside a running server: the local
store's SQLite file without the directory lock (WAL readers do not stop the writer), the VAST
schema through its engine. The memory store lives inside the server: ``--url`` asks a running
server for its report (``GET <url>/admin/report``, with an admin token).
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from backends import report, report_text
from backends.tabular.engine import EngineError, TableEngine
from tams_server import config
from tams_server.auth import SCOPES, CredentialStore
from tams_server.secret_strength import weakness

REPORT_ROUTE = "/admin/report"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tams-admin", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        help="the server's data directory (default: $TAMS_DATA_DIR, the config file's, or ./tams-data)",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    scopes_help = f"comma-separated scopes from {', '.join(SCOPES)} (default: read)"
    token = commands.add_parser("add-token", help="create an API token and show it once")
    token.add_argument("name")
    token.add_argument("--scopes", default="read", help=scopes_help)
    user = commands.add_parser("add-user", help="create a user for HTTP basic authentication")
    user.add_argument("name")
    user.add_argument("--scopes", default="read", help=scopes_help)
    user.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    commands.add_parser("list", help="list credentials (names and scopes, never secrets)")
    remove = commands.add_parser("remove", help="remove every credential with this name")
    remove.add_argument("name")
    described = "report what the store holds: per source and flow, segments, timelines and gaps, objects"
    rep = commands.add_parser("report", help=described, description=described)
    rep.add_argument("--config", help="the server's TOML settings file")
    rep.add_argument("--backend", help="the store's backend (default: the server's setting)")
    rep.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    rep.add_argument("--url", help="ask the server at this URL instead (needed for the memory backend)")
    rep.add_argument("--token", default=os.environ.get("TAMS_TOKEN"), help="admin API token for --url ($TAMS_TOKEN)")
    rep.add_argument("--hours", type=int, default=24, help="hours of ingest shown in the text (default 24)")
    rep.add_argument("--batch-rows", type=int, default=report.BATCH_ROWS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def _data_dir(args: argparse.Namespace) -> str:
    return args.data_dir or os.environ.get("TAMS_DATA_DIR", "tams-data")


def open_report_tables(settings: config.Settings, batch_rows: int) -> tuple[AbstractContextManager[Any], str]:
    """The report tables of the store ``settings`` name, opened read-only, and what it is."""
    from backends.tabular.export import export_tables, stored_storage
    from backends.tabular.tables import TABLES

    options: Mapping[str, Any] = settings.backend_options
    engine: TableEngine
    if settings.backend == "local":
        from backends.local import DATABASE_FILE, LEGACY_DATABASE_FILE
        from backends.tabular.sqlite_engine import SQLiteEngine

        where = options.get("data_dir") or settings.data_dir
        if not where:
            raise ValueError("the local backend has no data directory here: give --data-dir")
        path = Path(where) / DATABASE_FILE
        if not path.exists():
            legacy = (
                ""
                if not (Path(where) / LEGACY_DATABASE_FILE).exists()
                else " (a store from before 8.x: start the server once to migrate it)"
            )
            raise ValueError(f"no local store at {where}{legacy}")
        engine = SQLiteEngine(path, read_only=True)
        what = f"local store at {Path(where).resolve()} (read-only)"
    elif settings.backend == "vast":
        from backends import vast

        emulate = options.get("emulate")
        if emulate and not isinstance(emulate, str):
            raise ValueError("an emulated VAST cluster lives inside its server: use --url")
        if emulate:
            from backends.tabular.vast_engine import VastEngine

            cluster = vast.emulated_cluster(emulate)
            engine = VastEngine(cluster.session, "tams", str(options.get("schema", "tams")), commit_markers=False)
        else:
            engine = vast._engine(options)
        what = f"vast store {engine.description}"
    else:
        raise ValueError(f"the {settings.backend} store cannot be opened from outside its server: use --url")
    try:
        engine.ensure_tables(TABLES)  # read-only engines only learn the tables; the rest are existing stores
        storage = stored_storage(engine, options)
    except BaseException:
        engine.close()
        raise
    return _closing(export_tables(engine, storage, batch_rows), engine), what


class _closing(AbstractContextManager[Any]):
    """``tables`` as a context that closes ``engine`` when it ends."""

    def __init__(self, tables: AbstractContextManager[Any], engine: TableEngine) -> None:
        self._tables = tables
        self._engine = engine

    def __enter__(self) -> Any:
        try:
            return self._tables.__enter__()
        except BaseException:
            self._engine.close()
            raise

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._tables.__exit__(*exc)
        finally:
            self._engine.close()


def fetch_report(url: str, token: str | None, timeout: float = 300.0) -> dict[str, Any]:
    """The report a running server makes of its store (``GET <url>/admin/report``)."""
    request = urllib.request.Request(url.rstrip("/") + REPORT_ROUTE, headers={"Accept": "application/json"})
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise ValueError(f"{url}{REPORT_ROUTE} answered {exc.code} {exc.reason}") from None
    except urllib.error.URLError as exc:
        raise ValueError(f"cannot reach {url}: {exc.reason}") from None


def run_report(args: argparse.Namespace) -> int:
    if args.url:
        found = fetch_report(args.url, args.token)
    else:
        settings = config.load(args.config, {"data_dir": args.data_dir, "backend": args.backend})
        tables, what = open_report_tables(settings, args.batch_rows)
        found = report.build_from(tables, backend=what, unregistered_ttl_s=settings.unregistered_object_ttl_s)
    if args.json:
        json.dump(found, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(report_text.text(found, hours=args.hours))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "report":
        try:
            return run_report(args)
        except (ValueError, EngineError, OSError) as exc:
            print(f"tams-admin: {exc}", file=sys.stderr)
            return 2
    store = CredentialStore(Path(_data_dir(args)) / "credentials.json")
    try:
        if args.command == "add-token":
            token = store.add_token(args.name, args.scopes.split(","))
            print(f"API token for {args.name} (shown this once; send it as 'Authorization: Bearer <token>'):")
            print(token)
        elif args.command == "add-user":
            if args.password_stdin:
                password = sys.stdin.readline().rstrip("\n")
            else:
                password = getpass.getpass(f"password for {args.name}: ")
            weak = weakness(password)
            if weak is not None:
                print(f"tams-admin: that password is too weak: {weak}", file=sys.stderr)
                return 2
            store.add_password(args.name, password, args.scopes.split(","))
            print(f"user {args.name} added")
        elif args.command == "list":
            for entry in store.names():
                print(f"{entry['name']:24} {entry['kind']:9} {','.join(entry['scopes']):28} {entry['created']}")
        elif args.command == "remove":
            if not store.remove(args.name):
                print(f"tams-admin: no credential named {args.name!r}", file=sys.stderr)
                return 1
            print(f"removed {args.name}")
    except ValueError as exc:
        print(f"tams-admin: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
