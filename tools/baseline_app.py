"""The benchmark's baseline: plain Starlette + uvicorn in front of the very same backend object.

No spec routing, no validation, no dialect: each route authenticates with the server's own token
check (``tams_server.auth.Authenticator``), calls the backend and returns its dicts as JSON. That is
the limit of the HTTP stack on a machine; ``tams-bench-http`` compares ``tams-server`` with it.

Run as ``python -m tools.baseline_app --port P --backend NAME --data-dir DIR`` with the admin
token in ``TAMS_ADMIN_TOKEN`` (as ``tams-server`` takes it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

import backends
from backends.base import Backend, PageRequest, SegmentQuery, StorageRequest, UrlOptions
from backends.timerange import TimeRange
from tams_server import config
from tams_server.app import build_authenticator, build_services
from tams_server.auth import Authenticator, AuthError


def build(settings: config.Settings) -> Starlette:
    holder: list[Backend] = []
    services = build_services(settings, lambda: holder[0])
    backend = backends.load_factory(settings.backend)(settings.backend_options, services)
    holder.append(backend)
    auth = build_authenticator(settings)
    assert auth is not None, "the baseline checks tokens as the server does"

    async def refused(request: Request, checker: Authenticator) -> Response | None:
        try:
            checker.authorise(await checker.authenticate(request.scope), request.method, request.url.path)
        except AuthError as exc:
            return JSONResponse({"summary": exc.summary}, exc.status)
        return None

    async def flow(request: Request) -> Response:
        if (answer := await refused(request, auth)) is not None:
            return answer
        if request.method == "PUT":
            _, created = backend.put_flow(request.path_params["flow_id"], json.loads(await request.body()))
            return Response(status_code=201 if created else 204)
        return JSONResponse(backend.get_flow(request.path_params["flow_id"]))

    async def segments(request: Request) -> Response:
        if (answer := await refused(request, auth)) is not None:
            return answer
        flow_id = request.path_params["flow_id"]
        if request.method == "POST":
            body = json.loads(await request.body())
            failed = backend.add_segments(flow_id, [body] if isinstance(body, dict) else body)
            return Response(status_code=201) if not failed else JSONResponse([f.summary for f in failed], 400)
        timerange = request.query_params.get("timerange")
        query = SegmentQuery(timerange=TimeRange.parse(timerange) if timerange else TimeRange.eternity())
        page = backend.list_segments(flow_id, query, UrlOptions(), PageRequest())
        return JSONResponse(page.items)

    async def storage(request: Request) -> Response:
        # Only so the benchmark can set both stores up alike (allocate before registering).
        if (answer := await refused(request, auth)) is not None:
            return answer
        body = json.loads(await request.body())
        wanted = StorageRequest(object_ids=tuple(body["object_ids"]))
        return JSONResponse(backend.allocate_storage(request.path_params["flow_id"], wanted), 201)

    routes = [
        Route("/flows/{flow_id}", flow, methods=["GET", "PUT"]),
        Route("/flows/{flow_id}/segments", segments, methods=["GET", "POST"]),
        Route("/flows/{flow_id}/storage", storage, methods=["POST"]),
    ]

    @asynccontextmanager
    async def lifespan(_app: Any) -> AsyncIterator[None]:
        backend.start()
        yield
        backend.close()

    return Starlette(routes=routes, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="baseline_app", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--backend", default="memory")
    parser.add_argument("--data-dir", dest="data_dir")
    args = parser.parse_args(argv)
    settings = config.load(None, {"backend": args.backend, "data_dir": args.data_dir})
    uvicorn.run(build(settings), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
