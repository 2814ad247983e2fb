"""``tams-conformance``: run the TAMS conformance suite against a server and report per operation.

    tams-conformance --url https://tams.example.com --token "$TOKEN" \\
        --spec TimeAddressableMediaStore.yaml --junitxml report.xml

It runs the suite's pytest tests (progress is shown test by test), prints a table of the spec's
operations with how many tests that exercised each one passed, failed or were skipped, writes
JUnit XML, and exits non-zero when anything failed. ``--read-only`` sends only GET and HEAD, for
stores that must not be written to. Arguments after ``--`` go to pytest unchanged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent / "tests"


def parse_args(argv: list[str] | None) -> tuple[argparse.Namespace, list[str]]:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        at = argv.index("--")
        argv, extra = argv[:at], argv[at + 1 :]
    parser = argparse.ArgumentParser(
        prog="tams-conformance",
        description="Test any TAMS 7.0 server: stateful model checking against a reference, timeline "
        "properties, spec conformance of every response, and schemathesis fuzzing of every operation.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="base URL of the TAMS API to test (include any path prefix)")
    where.add_argument("--backend", action="append", help="instead of a URL: an in-process tams-server on this backend")
    parser.add_argument("--token", default=os.environ.get("TAMS_TOKEN"), help="bearer token ($TAMS_TOKEN)")
    parser.add_argument("--user", default=os.environ.get("TAMS_USER"), help="basic-auth user ($TAMS_USER)")
    parser.add_argument(
        "--password", default=os.environ.get("TAMS_PASSWORD"), help="basic-auth password ($TAMS_PASSWORD)"
    )
    parser.add_argument("--spec", help="oracle spec: the official TimeAddressableMediaStore.yaml")
    parser.add_argument("--junitxml", default="tams-conformance.xml", help="JUnit XML report (%(default)s)")
    parser.add_argument("--read-only", action="store_true", help="send only GET and HEAD requests")
    parser.add_argument("--divergences", help="TOML file of known divergences: matching failures become xfails")
    parser.add_argument("--budget", type=float, default=1.0, help="scale the number of examples (%(default)s)")
    parser.add_argument("--thorough", action="store_true", help="run long: 20x the examples")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout in seconds (%(default)s)")
    parser.add_argument("--seed", help="Hypothesis seed, to repeat a run")
    parser.add_argument("-k", dest="keyword", help="only tests matching this pytest -k expression")
    parser.add_argument("-q", "--quiet", action="store_true", help="one character per test instead of one line")
    return parser.parse_args(argv), extra


def pytest_args(args: argparse.Namespace, extra: list[str]) -> list[str]:
    out = [
        str(TESTS_DIR),
        "-c",
        str(TESTS_DIR / "pytest.ini"),
        "--rootdir",
        str(TESTS_DIR),
        "-q" if args.quiet else "-v",
        "-rfEx",
        "--junitxml",
        args.junitxml,
        "-o",
        "junit_suite_name=tams-conformance",
        "--tams-budget",
        str(args.budget),
        "--tams-timeout",
        str(args.timeout),
    ]
    if args.url:
        out += ["--tams-url", args.url]
    for backend in args.backend or []:
        out += ["--tams-backend", backend]
    for option, value in (
        ("--tams-token", args.token),
        ("--tams-user", args.user),
        ("--tams-password", args.password),
        ("--tams-spec", args.spec),
        ("--tams-divergences", args.divergences),
        ("--hypothesis-seed", args.seed),
        ("-k", args.keyword),
    ):
        if value:
            out += [option, value]
    if args.read_only:
        out.append("--tams-read-only")
    if args.thorough:
        out.append("--tams-thorough")
    return out + extra


def main(argv: list[str] | None = None) -> int:
    import pytest

    args, extra = parse_args(argv)
    return int(pytest.main(pytest_args(args, extra)))


if __name__ == "__main__":
    sys.exit(main())
