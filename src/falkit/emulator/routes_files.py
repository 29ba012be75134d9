"""The REST and CDN roles: storage tokens, uploads (CDN v3 and initiate + PUT), files, JWKS."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from falkit.emulator.guard import Handler, engine_of, guarded, key_accepted, origin
from falkit.emulator.routes_queue import read_json
from falkit.emulator.storage import content_type_for, extension_for


def _route(path: str, name: str, handler: Handler, methods: list[str], auth: bool = True) -> Route:
    async def endpoint(request: Request) -> Response:
        return await guarded(engine_of(request), name, request, handler, auth=auth)

    return Route(path, endpoint, methods=methods, name=name)


def rest_routes(prefix: str = "") -> list[BaseRoute]:
    """rest.fal.ai: storage token, upload initiate, and the webhook JWKS."""
    return [
        _route("/storage/auth/token", "token", _token, ["POST"]),
        _route("/storage/upload/initiate", "initiate", _initiate, ["POST"]),
        _route("/.well-known/jwks.json", "jwks", _jwks, ["GET"], auth=False),
    ]


def cdn_routes(prefix: str = "") -> list[BaseRoute]:
    """v3.fal.media: raw uploads with a CDN token, signed PUTs, and public file downloads."""
    return [
        _route("/files/upload", "upload", _upload, ["POST"], auth=False),
        _route("/files/{name}", "file", _file, ["GET", "HEAD"], auth=False),
        _route("/files/{name}", "put", _put, ["PUT"], auth=False),
    ]


async def _token(request: Request) -> Response:
    engine = engine_of(request)
    token, expires = engine.store.issue_token()
    body = {
        "token": token,
        "token_type": "Bearer",
        "base_url": engine.context(origin(request)).cdn_base,
        "expires_at": expires.isoformat(),
    }
    return JSONResponse(body)


async def _initiate(request: Request) -> Response:
    engine = engine_of(request)
    body = await read_json(request)
    if isinstance(body, Response):
        return body
    file_name = str(body.get("file_name") or "upload.bin")
    content_type = content_type_for(file_name, body.get("content_type"))
    name, token = engine.store.reserve(content_type, extension_for(file_name, content_type))
    file_url = f"{engine.context(origin(request)).cdn_base}/files/{name}"
    return JSONResponse({"upload_url": f"{file_url}?upload_token={token}", "file_url": file_url})


async def _jwks(request: Request) -> Response:
    return JSONResponse(engine_of(request).signer.jwks())


def _bearer_ok(request: Request) -> bool:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and engine_of(request).store.token_valid(token.strip())


async def _upload(request: Request) -> Response:
    engine = engine_of(request)
    if not (_bearer_ok(request) or key_accepted(engine, request)):
        return JSONResponse({"detail": "Invalid or expired upload token"}, status_code=401)
    data = await request.body()
    file_name = request.headers.get("x-fal-file-name") or ""
    content_type = content_type_for(file_name, request.headers.get("content-type"))
    name = engine.store.put(data, content_type, extension_for(file_name, content_type))
    return JSONResponse({"access_url": f"{engine.context(origin(request)).cdn_base}/files/{name}"})


async def _put(request: Request) -> Response:
    engine = engine_of(request)
    token = request.query_params.get("upload_token", "")
    data = await request.body()
    content_type = request.headers.get("content-type")
    if not engine.store.fill(request.path_params["name"], token, data, content_type):
        return JSONResponse({"detail": "Invalid or used upload URL"}, status_code=403)
    return Response(status_code=200)


async def _file(request: Request) -> Response:
    found = await engine_of(request).store.read(request.path_params["name"])
    if found is None:
        return JSONResponse({"detail": "File not found"}, status_code=404)
    data, content_type = found
    return Response(data, media_type=content_type, headers={"cache-control": "max-age=604800"})
