"""OTLP/gRPC front end: ``LogsService/Export`` and ``TraceService/Export`` on grpc.aio.

Thin by design: authenticate, admit, hand the request to :class:`Ingest`, map errors with
:func:`audit_stream.errors.otlp_status`. Retryable refusals carry ``google.rpc.RetryInfo`` in the
``grpc-status-details-bin`` trailer, which is what OTLP exporters read to pace their retries.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import duration_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

from audit_stream.config import ReceiverSettings
from audit_stream.errors import AuditStreamError, InvalidPayload, Unauthenticated, otlp_status
from audit_stream.receiver.ingest import ExportResult, Ingest

__all__ = ["build_grpc_server", "check_bearer"]


def check_bearer(header: str | None, tokens: frozenset[str]) -> None:
    """Raise :class:`Unauthenticated` unless ``header`` is ``Bearer <one of tokens>``.

    No tokens configured means authentication is off. Comparison is constant-time.
    """
    if not tokens:
        return
    if not header or not header.lower().startswith("bearer "):
        raise Unauthenticated("missing bearer token")
    given = header[7:].strip().encode()
    if not any(hmac.compare_digest(given, t.encode()) for t in tokens):
        raise Unauthenticated("invalid bearer token")


async def _abort(context: grpc.aio.ServicerContext, exc: AuditStreamError) -> None:
    status = otlp_status(exc)
    code = getattr(grpc.StatusCode, status.grpc_code)
    rpc_status = status_pb2.Status(code=getattr(code_pb2, status.grpc_code), message=str(exc))
    if status.retry_after is not None:
        info = error_details_pb2.RetryInfo(
            retry_delay=duration_pb2.Duration(seconds=int(status.retry_after))
        )
        rpc_status.details.add().Pack(info)
    context.set_trailing_metadata((("grpc-status-details-bin", rpc_status.SerializeToString()),))
    await context.abort(code, str(exc))


_LOGS_SERVICE = "opentelemetry.proto.collector.logs.v1.LogsService"
_TRACES_SERVICE = "opentelemetry.proto.collector.trace.v1.TraceService"


def _handlers(settings: ReceiverSettings, ingest: Ingest) -> tuple[Any, Any]:
    """Raw-bytes handlers: we parse the request ourselves so a malformed payload is answered
    INVALID_ARGUMENT (grpc's own deserializer would answer INTERNAL) and so its size is known."""

    def unary(
        parse: Callable[[bytes], Any],
        export: Callable[[Any], Awaitable[ExportResult]],
        respond: Callable[[ExportResult | None], bytes],
    ) -> grpc.RpcMethodHandler:
        async def call(body: bytes, context: grpc.aio.ServicerContext) -> bytes:
            try:
                metadata = dict(context.invocation_metadata() or ())
                check_bearer(metadata.get("authorization"), settings.auth_tokens)
                with ingest.admit(len(body)):
                    try:
                        request = parse(body)
                    except DecodeError as exc:
                        raise InvalidPayload(f"malformed OTLP protobuf: {exc}") from None
                    result = await export(request)
            except AuditStreamError as exc:
                await _abort(context, exc)
                raise AssertionError("unreachable: abort raises") from None
            return respond(result)

        return grpc.unary_unary_rpc_method_handler(call)

    def logs_response(result: ExportResult | None) -> bytes:
        resp = logs_service_pb2.ExportLogsServiceResponse()
        if result is not None and result.rejected:
            resp.partial_success.rejected_log_records = result.rejected
            resp.partial_success.error_message = result.message
        return bytes(resp.SerializeToString())

    def traces_response(result: ExportResult | None) -> bytes:
        resp = trace_service_pb2.ExportTraceServiceResponse()
        if result is not None and result.rejected:
            resp.partial_success.rejected_spans = result.rejected
            resp.partial_success.error_message = result.message
        return bytes(resp.SerializeToString())

    logs = unary(
        logs_service_pb2.ExportLogsServiceRequest.FromString, ingest.export_logs, logs_response
    )
    traces = unary(
        trace_service_pb2.ExportTraceServiceRequest.FromString, ingest.export_spans, traces_response
    )

    return (
        grpc.method_handlers_generic_handler(_LOGS_SERVICE, {"Export": logs}),
        grpc.method_handlers_generic_handler(_TRACES_SERVICE, {"Export": traces}),
    )


def _read(path: str) -> bytes:
    with open(path, "rb") as fh:
        return fh.read()


def build_grpc_server(settings: ReceiverSettings, ingest: Ingest) -> tuple[grpc.aio.Server, int]:
    """A configured (not yet started) server and the port it bound."""
    server = grpc.aio.server(
        options=[
            # gRPC enforces this on the decompressed message, so a compression bomb is refused too.
            ("grpc.max_receive_message_length", settings.max_decompressed_bytes),
            ("grpc.max_send_message_length", 4 * 1024 * 1024),
        ],
        compression=None,
    )
    server.add_generic_rpc_handlers(_handlers(settings, ingest))
    if settings.tls_certfile and settings.tls_keyfile:
        client_ca = _read(settings.tls_client_cafile) if settings.tls_client_cafile else None
        creds = grpc.ssl_server_credentials(
            [(_read(settings.tls_keyfile), _read(settings.tls_certfile))],
            root_certificates=client_ca,
            require_client_auth=client_ca is not None,
        )
        port = server.add_secure_port(settings.grpc_listen, creds)
    else:
        port = server.add_insecure_port(settings.grpc_listen)
    return server, port
