"""``tams-conformance``: run the TAMS conformance suite against a server and report per operation.

    tams-conformance --url https://tams.example.com --token "$TOKEN" --junitxml report.xml

Before any test a pre-flight makes sure the server can be tested (reachable, speaks TAMS, accepts
the credentials, right base path) and chooses the version to test as: ``--spec``'s, else
``--api-version``, else the nearest the suite knows to the server's ``api_version``. It then runs
the suite's pytest tests (progress test by test), prints each operation's verdict, the checks that
covered it and its first failure, then the warnings, and writes JUnit XML and a JSON report.

Exit codes: 0 conforms, 1 the server failed a check, 2 the server could not be tested (or the
command line is wrong). ``--read-only`` sends only GET and HEAD, for stores that must not be
written to. Arguments after ``--`` go to pytest unchanged.
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
        description="Test any TAMS 7.0 or 8.x server: stateful model checking against a reference, timeline "
        "properties, spec conformance of every response, and schemathesis fuzzing of every operation. "
        "Exit codes: 0 conforms, 1 a check failed, 2 could not test.",
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="base URL of the TAMS API to test (include any path prefix)")
    where.add_argument("--backend", action="append", help="instead of a URL: an in-process tams-server on this backend")
    parser.add_argument("--token", default=os.environ.get("TAMS_TOKEN"), help="bearer token ($TAMS_TOKEN)")
    parser.add_argument("--user", default=os.environ.get("TAMS_USER"), help="basic-auth user ($TAMS_USER)")
    parser.add_argument(
        "--password", default=os.environ.get("TAMS_PASSWORD"), help="basic-auth password ($TAMS_PASSWORD)"
    )
    parser.add_argument(
        "--spec", help="oracle spec: the official TimeAddressableMediaStore.yaml of the version to test"
    )
    parser.add_argument(
        "--api-version", help="without --spec: test as this version (7.0 or 8.2); default: from the server's /service"
    )
    parser.add_argument("--junitxml", default="tams-conformance.xml", help="JUnit XML report (%(default)s)")
    parser.add_argument("--json-report", help="JSON report of verdicts and warnings (default: beside --junitxml)")
    parser.add_argument("--strict", action="store_true", help="warnings (what the spec recommends) fail the run")
    parser.add_argument("--no-shrink", action="store_true", help="report failures as found, without shrinking them")
    parser.add_argument(
        "--shrink-budget", type=float, default=30.0, help="seconds to spend shrinking one failure (%(default)s)"
    )
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
        "--tams-shrink-budget",
        str(args.shrink_budget),
        "--tams-json-report",
        args.json_report or str(Path(args.junitxml).with_suffix(".json")),
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
        ("--tams-version", args.api_version),
        ("--tams-divergences", args.divergences),
        ("--hypothesis-seed", args.seed),
        ("-k", args.keyword),
    ):
        if value:
            out += [option, value]
    if args.read_only:
        out.append("--tams-read-only")
    for flag, option in (
        (args.thorough, "--tams-thorough"),
        (args.strict, "--tams-strict"),
        (args.no_shrink, "--tams-no-shrink"),
    ):
        if flag:
            out.append(option)
    return out + extra


# pytest's exit codes as the tool's: a failed check is 1; anything that kept the server from being
# tested (pre-flight refused, usage error, interrupted, internal error, no tests) is 2.
EXIT_CONFORMS, EXIT_FAILED, EXIT_CANNOT_TEST = 0, 1, 2


def exit_code(pytest_code: int) -> int:
    if pytest_code == 0:
        return EXIT_CONFORMS
    return EXIT_FAILED if pytest_code == 1 else EXIT_CANNOT_TEST


def main(argv: list[str] | None = None) -> int:
    args, extra = parse_args(argv)
    try:
        import pytest
    except ImportError:
        print("tams-conformance needs its test libraries: pip install 'tams-server[conformance]'", file=sys.stderr)
        return EXIT_CANNOT_TEST
    return exit_code(int(pytest.main(pytest_args(args, extra))))


if __name__ == "__main__":
    sys.exit(main())
