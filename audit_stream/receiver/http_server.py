"""OTLP/HTTP front end (``POST /v1/logs``, ``POST /v1/traces``) plus ``/healthz``, ``/livez``, ``/metrics``.

Bodies are binary protobuf (``application/x-protobuf``) or OTLP/JSON (``application/json``), optionally
``Content-Encoding: gzip``. Size is limited twice: as received (``max_request_bytes``) and after
decompression (``max_decompressed_bytes``, enforced while inflating so a gzip bomb costs at most the
limit). Answers follow the OTLP/HTTP spec: the response message in the request's encoding, errors as
a ``google.rpc.Status`` body, ``Retry-After`` on 429/503.
"""

from __future__ import annotations

import ssl
import zlib
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web
from google.rpc import status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from audit_stream.config import ReceiverSettings
from audit_stream.errors import AuditStreamError, InvalidPayload, PayloadTooLarge, otlp_status
from audit_stream.kafka.publisher import Publisher
from audit_stream.metrics import Registry
from audit_stream.receiver import decode
from audit_stream.receiver.grpc_server import check_bearer
from audit_stream.receiver.ingest import ExportResult, Ingest

__all__ = ["build_http_app", "inflate", "server_ssl_context"]

_PROTOBUF = "application/x-protobuf"
_JSON = "application/json"


def inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """Decode ``Content-Encoding`` with a hard cap on the output size."""
    enc = encoding.strip().lower()
    if enc in ("", "identity"):
        return body
    if enc not in ("gzip", "deflate"):
        raise InvalidPayload(f"unsupported Content-Encoding {encoding!r} (use gzip or none)")
    d = zlib.decompressobj(16 + zlib.MAX_WBITS if enc == "gzip" else zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise InvalidPayload(f"body is not valid {enc}: {exc}") from None
    if len(out) > limit or d.unconsumed_tail:
        raise PayloadTooLarge(f"decompressed body exceeds {limit} bytes")
    return out


def server_ssl_context(settings: ReceiverSettings) -> ssl.SSLContext | None:
    if not (settings.tls_certfile and settings.tls_keyfile):
        return None
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(settings.tls_certfile, settings.tls_keyfile)
    if settings.tls_client_cafile:
        ctx.load_verify_locations(settings.tls_client_cafile)
        ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def _error_response(exc: AuditStreamError, as_json: bool) -> web.Response:
    status = otlp_status(exc)
    headers = {}
    if status.retry_after is not None:
        headers["Retry-After"] = str(int(status.retry_after))
    if as_json:
        body = orjson.dumps({"code": status.http_status, "message": str(exc)})
        return web.Response(
            status=status.http_status, body=body, content_type=_JSON, headers=headers
        )
    msg = status_pb2.Status(code=status.http_status, message=str(exc)).SerializeToString()
    return web.Response(
        status=status.http_status, body=msg, content_type=_PROTOBUF, headers=headers
    )


def _ok_response(result: ExportResult, signal: str, as_json: bool) -> web.Response:
    if as_json:
        doc: dict[str, Any] = {}
        if result.rejected:
            field = "rejectedLogRecords" if signal == "logs" else "rejectedSpans"
            doc["partialSuccess"] = {field: str(result.rejected), "errorMessage": result.message}
        return web.Response(body=orjson.dumps(doc), content_type=_JSON)
    resp: Any
    if signal == "logs":
        resp = logs_service_pb2.ExportLogsServiceResponse()
        if result.rejected:
            resp.partial_success.rejected_log_records = result.rejected
    else:
        resp = trace_service_pb2.ExportTraceServiceResponse()
        if result.rejected:
            resp.partial_success.rejected_spans = result.rejected
    if result.rejected:
        resp.partial_success.error_message = result.message
    return web.Response(body=resp.SerializeToString(), content_type=_PROTOBUF)


def build_http_app(
    settings: ReceiverSettings, ingest: Ingest, publisher: Publisher, metrics: Registry
) -> web.Application:
    app = web.Application(client_max_size=settings.max_request_bytes)

    def export_route(
        signal: str,
        parse: Callable[[bytes, str], Any],
        export: Callable[[Any], Awaitable[ExportResult]],
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def handler(request: web.Request) -> web.Response:
            ctype = request.content_type
            as_json = ctype == _JSON
            try:
                check_bearer(request.headers.get("Authorization"), settings.auth_tokens)
                if ctype not in (_PROTOBUF, _JSON):
                    raise InvalidPayload(
                        f"unsupported Content-Type {ctype!r}; use {_PROTOBUF} or {_JSON}"
                    )
                if (request.content_length or 0) > settings.max_request_bytes:
                    raise PayloadTooLarge(f"body exceeds {settings.max_request_bytes} bytes")
                try:
                    raw = await request.read()
                except web.HTTPRequestEntityTooLarge:
                    raise PayloadTooLarge(
                        f"body exceeds {settings.max_request_bytes} bytes"
                    ) from None
                body = inflate(
                    raw,
                    request.headers.get("Content-Encoding", ""),
                    settings.max_decompressed_bytes,
                )
                with ingest.admit(len(body)):
                    try:
                        message = parse(body, ctype)
                    except ValueError as exc:
                        raise InvalidPayload(str(exc)) from None
                    result = await export(message)
            except AuditStreamError as exc:
                metrics.inc("http_errors_total", status=str(otlp_status(exc).http_status))
                return _error_response(exc, as_json)
            return _ok_response(result, signal, as_json)

        return handler

    async def healthz(_: web.Request) -> web.Response:
        ready = publisher.ready
        body = {"status": "ok" if ready else "kafka unreachable", "kafka": ready}
        return web.json_response(body, status=200 if ready else 503)

    async def livez(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def metrics_route(_: web.Request) -> web.Response:
        return web.Response(text=metrics.render(), content_type="text/plain")

    app.router.add_post(
        "/v1/logs", export_route("logs", decode.parse_logs_request, ingest.export_logs)
    )
    app.router.add_post(
        "/v1/traces", export_route("spans", decode.parse_traces_request, ingest.export_spans)
    )
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/livez", livez)
    app.router.add_get("/metrics", metrics_route)
    return app
