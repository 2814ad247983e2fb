"""``tams-admin``: manage the credentials a tams-server accepts.

Credentials live (hashed) in ``<data dir>/credentials.json``; the server reads them at start-up,
so restart it after a change.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path

from tams_server.auth import SCOPES, CredentialStore
from tams_server.secret_strength import weakness


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="tams-admin", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("TAMS_DATA_DIR", "tams-data"),
        help="the server's data directory (default: $TAMS_DATA_DIR or ./tams-data)",
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
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    store = CredentialStore(Path(args.data_dir) / "credentials.json")
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
