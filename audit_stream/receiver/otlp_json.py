"""OTLP/JSON request bodies -> protobuf request messages.

Requirements: accept what the OTLP/HTTP JSON encoding allows and reject the rest with a
``ValueError`` that says what is wrong. The OTLP spec differs from the proto3 JSON mapping in two
ways that matter here: trace / span ids are hex strings (not base64), and field names may be
lowerCamelCase or the original snake_case. Enums may be names or ints and 64-bit integers may be
strings or numbers; ``google.protobuf.json_format`` already accepts those.

How it works: the decoded JSON tree is walked once to rewrite the id fields from hex to base64 in
place, then ``json_format.ParseDict`` builds the message, ignoring unknown fields (newer OTLP
versions add some). Ids that are not hex but are valid base64 (some old exporters) are passed
through unchanged. Only the id fields are touched, so the rest of the payload is validated by
``ParseDict`` itself.

Example::

    >>> req = parse_json(b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId":'
    ...     b' "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174"}]}]}]}', "traces")
    >>> req.resource_spans[0].scope_spans[0].spans[0].span_id.hex()
    'eee19b7ec3c1b174'
"""

from __future__ import annotations

import base64
import binascii
from typing import Final, Literal

import orjson
from google.protobuf import json_format
from google.protobuf.message import Message
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

__all__ = ["parse_json"]

Signal = Literal["logs", "traces"]

# (container key pairs from the request down to the items that carry ids)
_PATHS: Final[dict[str, tuple[tuple[str, str], ...]]] = {
    "logs": (
        ("resourceLogs", "resource_logs"),
        ("scopeLogs", "scope_logs"),
        ("logRecords", "log_records"),
    ),
    "traces": (
        ("resourceSpans", "resource_spans"),
        ("scopeSpans", "scope_spans"),
        ("spans", "spans"),
    ),
}
_ID_KEYS: Final = (
    ("traceId", "trace_id"),
    ("spanId", "span_id"),
    ("parentSpanId", "parent_span_id"),
)


def parse_json(body: bytes, signal: Signal) -> Message:
    """Parse an OTLP/JSON export request for ``signal``; ``ValueError`` on malformed input."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"request body is not valid JSON: {e}") from None
    if not isinstance(obj, dict):
        raise ValueError("OTLP/JSON request body must be a JSON object")
    _rewrite_ids(obj, signal)
    msg: Message = ExportLogsServiceRequest() if signal == "logs" else ExportTraceServiceRequest()
    try:
        json_format.ParseDict(obj, msg, ignore_unknown_fields=True)
    except (
        json_format.ParseError,
        TypeError,
        AttributeError,
        KeyError,
        ValueError,
        RecursionError,
    ) as e:
        raise ValueError(f"malformed OTLP/JSON {signal} request: {e}") from None
    return msg


def _items(container: dict[str, object], keys: tuple[str, str]) -> list[object]:
    for key in keys:
        value = container.get(key)
        if isinstance(value, list):
            return value
    return []


def _rewrite_ids(obj: dict[str, object], signal: Signal) -> None:
    top, mid, leaf = _PATHS[signal]
    for res in _items(obj, top):
        if not isinstance(res, dict):
            continue
        for scope in _items(res, mid):
            if not isinstance(scope, dict):
                continue
            for item in _items(scope, leaf):
                if not isinstance(item, dict):
                    continue
                _rewrite_item(item)
                if signal == "traces":
                    for link in _items(item, ("links", "links")):
                        if isinstance(link, dict):
                            _rewrite_item(link)


def _rewrite_item(item: dict[str, object]) -> None:
    for camel, snake in _ID_KEYS:
        for key in (camel, snake):
            value = item.get(key)
            if isinstance(value, str) and value:
                item[key] = _hex_to_base64(key, value)


def _hex_to_base64(key: str, value: str) -> str:
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{key} {value[:40]!r} is neither hex nor base64") from None
        return value
    return base64.b64encode(raw).decode("ascii")
