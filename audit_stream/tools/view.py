"""What ``audit-stream tail`` shows: one audit event as a flat view and as one readable line.

Requirements
    * Accepts every record the pipeline writes for people to read: a SIEM record in OCSF 1.3.0
      HTTP Activity, ECS 8.x or the native ``audit_event.v1`` (``audit.siem``, one event per Kafka
      message), and a packed ``audit.events`` message (``{"v":1,"signal":"event","records":[...]}``,
      many native events per message).
    * The format comes from the ``content-format`` header the worker sets (``ocsf``, ``ecs``,
      ``native``); without it, from the record's shape (``class_uid`` -> OCSF, ``@timestamp`` ->
      ECS, ``schema: audit_event.v1`` -> native). Anything else is a ``ValueError``.
    * The retention class comes from the ``retention-class`` header, else from the event.
    * Pure: no I/O; a missing fact shows as ``-``, never as a guess.

How it works: one small extractor per format reads the same facts from where that format keeps
them (see ``docs/siem-mapping.md``) into an :class:`EventView`; :func:`format_line` prints it and
:class:`EventFilter` selects views.

Example::

    >>> views = views_of(message.value, message.headers)  # doctest: +SKIP
    >>> print(format_line(views[0]))  # doctest: +SKIP
    2026-10-09T07:54:53.132Z  starfleet/sa/probe -> scout.starfleet  GET /reviews/0  403  DENY
    user=-  retention=security   (one line; wrapped here)
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from audit_stream.errors import ConfigError
from audit_stream.kafka.codec import CONTENT_TYPES, decode_packed
from audit_stream.siem.redact import MASK

__all__ = [
    "EventFilter",
    "EventView",
    "detect_format",
    "format_line",
    "parse_since",
    "view_json",
    "views_of",
]

_MASK_BYTES = MASK.encode()
_SPIFFE = re.compile(r"^spiffe://[^/]+/ns/([^/]+)/sa/([^/]+)$")
_CLUSTER_SUFFIX = ".svc.cluster.local"
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z$")
_SINCE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$")
_UNIT_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_ACTIONS = {"Allowed": "allow", "Denied": "deny"}


@dataclass(frozen=True, slots=True)
class EventView:
    """The facts one line shows, the same for every format (``None``: the record does not say)."""

    format: str  # ocsf | ecs | native
    time: str  # request start, RFC 3339 UTC with milliseconds
    event_id: str | None
    request_id: str | None
    trace_id: str | None
    source: str  # display label of the caller: service.namespace, ns/sa/account, or address
    source_principal: str | None
    destination: str  # display label of the callee
    destination_service: str | None
    destination_namespace: str | None
    method: str | None
    path: str | None  # request target as redacted by the worker
    status: int | None
    decision: str  # allow | deny | unknown
    user: str | None
    retention: str | None
    correlation: str | None  # joined | log_only | span_only
    redacted: bool  # the worker removed at least one secret from this event


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which views to show; ``None`` matches anything.

    ``service`` matches either side: a destination service (``reviews`` or ``reviews.bookinfo``),
    a display label, or the account name of a caller's SPIFFE id.
    """

    decision: str | None = None
    service: str | None = None
    user: str | None = None
    correlation: str | None = None

    def matches(self, v: EventView) -> bool:
        if self.decision is not None and v.decision != self.decision:
            return False
        if self.user is not None and v.user != self.user:
            return False
        if self.correlation is not None and v.correlation != self.correlation:
            return False
        return self.service is None or self.service in _names(v)


def _names(v: EventView) -> set[str]:
    names = {v.source, v.destination}
    if v.destination_service:
        names.add(v.destination_service)
        if v.destination_namespace:
            names.add(f"{v.destination_service}.{v.destination_namespace}")
    m = _SPIFFE.match(v.source_principal or "")
    if m:
        names.update((m.group(2), f"{m.group(2)}.{m.group(1)}"))
    names.add(v.source.split(".", 1)[0])
    return names


# ------------------------------------------------------------------------------------------------
# small readers: SIEM documents are untrusted input, so every step checks its type


def _get(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return None


def _time_ms(value: Any) -> str:
    """RFC 3339 (any precision, ``Z`` or an offset) or epoch milliseconds -> ``...T..:..:..mmmZ``."""
    if type(value) is int:
        return (
            datetime.fromtimestamp(value / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
        )
    if not isinstance(value, str) or not value:
        return "-"
    m = _RFC3339.match(value)
    if m:
        return f"{m.group(1)}.{(m.group(2) or '')[:3].ljust(3, '0')}Z"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def _party(
    service: Any, namespace: Any, principal: Any, address: Any
) -> tuple[str, str | None, str | None]:
    """``(label, service, namespace)`` of one side of the call, from the best fact available."""
    svc, ns, pr = _str(service), _str(namespace), _str(principal)
    if svc:
        svc = svc.removesuffix(_CLUSTER_SUFFIX)
        name, dot, rest = svc.partition(".")
        ns = ns or (rest.split(".", 1)[0] if dot else None)
        return (svc if dot or not ns else f"{svc}.{ns}"), name, ns
    if pr:
        m = _SPIFFE.match(pr)
        if m:
            return f"{m.group(1)}/sa/{m.group(2)}", None, ns or m.group(1)
        return pr, None, ns
    addr = _str(address)
    return (addr or "-"), None, ns


# ------------------------------------------------------------------------------------------------
# one extractor per format


def _native(ev: Any, retention: str | None, redacted: bool) -> EventView:
    src, dst = ev.get("source"), ev.get("destination")
    src_label, _, _ = _party(
        _get(src, "service"), _get(src, "namespace"), _get(src, "principal"), _get(src, "address")
    )
    dst_label, dst_svc, dst_ns = _party(
        _get(dst, "service"), _get(dst, "namespace"), _get(dst, "principal"), _get(dst, "address")
    )
    return EventView(
        format="native",
        time=_time_ms(ev.get("time")),
        event_id=_str(ev.get("event_id")),
        request_id=_str(_get(ev, "request", "request_id")),
        trace_id=_str(_get(ev, "trace", "trace_id")),
        source=src_label,
        source_principal=_str(_get(src, "principal")),
        destination=dst_label,
        destination_service=dst_svc,
        destination_namespace=dst_ns,
        method=_str(_get(ev, "request", "method")),
        path=_str(_get(ev, "request", "path")),
        status=_int(_get(ev, "response", "status_code")),
        decision=_str(_get(ev, "authorization", "decision")) or "unknown",
        user=_str(_get(ev, "user", "id")),
        retention=retention or _str(_get(ev, "retention", "class")),
        correlation=_str(ev.get("correlation")),
        redacted=redacted,
    )


def _endpoint_address(ep: Any) -> str | None:
    host = _str(_get(ep, "ip")) or _str(_get(ep, "hostname"))
    port = _int(_get(ep, "port"))
    return f"{host}:{port}" if host and port is not None else host


def _ocsf(doc: Any, retention: str | None, redacted: bool) -> EventView:
    src, dst, unmapped = doc.get("src_endpoint"), doc.get("dst_endpoint"), doc.get("unmapped")
    principal = _str(_get(src, "uid")) or _str(_get(doc, "actor", "app_uid"))
    src_label, _, _ = _party(
        _get(src, "svc_name"), _get(unmapped, "source", "namespace"), principal,
        _endpoint_address(src),
    )  # fmt: skip
    dst_label, dst_svc, dst_ns = _party(
        _get(dst, "svc_name"), _get(unmapped, "destination", "namespace"), _get(dst, "uid"),
        _endpoint_address(dst),
    )  # fmt: skip
    authorizations = _get(doc, "actor", "authorizations")
    decision = None
    if isinstance(authorizations, list) and authorizations:
        decision = _str(_get(authorizations[0], "decision"))
    decision = (
        decision
        or _ACTIONS.get(_str(doc.get("action")) or "")
        or _str(_get(unmapped, "authorization", "decision"))
    )
    return EventView(
        format="ocsf",
        time=_time_ms(_get(doc, "metadata", "original_time") or doc.get("time")),
        event_id=_str(_get(doc, "metadata", "uid")),
        request_id=_str(_get(doc, "http_request", "uid")),
        trace_id=_str(_get(doc, "metadata", "correlation_uid")),
        source=src_label,
        source_principal=principal,
        destination=dst_label,
        destination_service=dst_svc,
        destination_namespace=dst_ns,
        method=_str(_get(doc, "http_request", "http_method")),
        path=_str(_get(doc, "http_request", "url", "url_string")),
        status=_int(_get(doc, "http_response", "code")),
        decision=decision or "unknown",
        user=_str(_get(doc, "actor", "user", "uid")),
        retention=retention or _str(_get(unmapped, "retention", "class")),
        correlation=_str(_get(unmapped, "correlation")),
        redacted=redacted,
    )


def _ecs(doc: Any, retention: str | None, redacted: bool) -> EventView:
    custom = doc.get("audit_stream")
    principal = _str(_get(doc, "service", "origin", "id"))
    src_label, _, _ = _party(
        _get(doc, "service", "origin", "name"), _get(custom, "source", "namespace"), principal,
        _get(doc, "source", "address"),
    )  # fmt: skip
    dst_label, dst_svc, dst_ns = _party(
        _get(doc, "service", "name"),
        _get(doc, "orchestrator", "namespace") or _get(custom, "destination", "namespace"),
        _get(doc, "service", "id"),
        _get(doc, "destination", "address"),
    )
    decision = _str(_get(custom, "authorization", "decision"))
    if decision is None:
        types = _get(doc, "event", "type")
        if isinstance(types, list):
            decision = "deny" if "denied" in types else "allow" if "allowed" in types else None
    return EventView(
        format="ecs",
        time=_time_ms(doc.get("@timestamp")),
        event_id=_str(_get(doc, "event", "id")),
        request_id=_str(_get(doc, "http", "request", "id")),
        trace_id=_str(_get(doc, "trace", "id")),
        source=src_label,
        source_principal=principal,
        destination=dst_label,
        destination_service=dst_svc,
        destination_namespace=dst_ns,
        method=_str(_get(doc, "http", "request", "method")),
        path=_str(_get(doc, "url", "original")),
        status=_int(_get(doc, "http", "response", "status_code")),
        decision=decision or "unknown",
        user=_str(_get(doc, "user", "id")),
        retention=retention
        or _str(_get(doc, "labels", "retention_class"))
        or _str(_get(custom, "retention", "class")),
        correlation=_str(_get(custom, "correlation")),
        redacted=redacted,
    )


_EXTRACTORS = {"ocsf": _ocsf, "ecs": _ecs, "native": _native}


def detect_format(doc: Mapping[str, Any], header: bytes | None = None) -> str | None:
    """``ocsf``/``ecs``/``native`` from the ``content-format`` header, else from the shape."""
    if header is not None:
        name = header.decode("ascii", "replace").strip().lower()
        if name in _EXTRACTORS:
            return name
    if "class_uid" in doc:
        return "ocsf"
    if "@timestamp" in doc or "ecs" in doc:
        return "ecs"
    if doc.get("schema") == "audit_event.v1":
        return "native"
    return None


def _header_map(headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]]) -> dict[str, bytes]:
    return dict(headers.items() if isinstance(headers, Mapping) else headers)


def views_of(
    value: bytes, headers: Mapping[str, bytes] | Iterable[tuple[str, bytes]] = ()
) -> list[EventView]:
    """The events of one Kafka message (one for a SIEM record, many for ``audit.events``).

    Raises ``ValueError`` for a message that is neither (not JSON, another packed signal, an
    unknown shape).
    """
    hdrs = _header_map(headers)
    if hdrs.get("content-type") == CONTENT_TYPES["event"] or value.startswith(b'{"v":1,'):
        signal, records = decode_packed(value)
        if signal != "event":
            raise ValueError(f"a packed {signal} message, not audit events")
        return [
            _native(r, None, _MASK_BYTES in orjson.dumps(r)) for r in records if isinstance(r, dict)
        ]
    doc = orjson.loads(value)
    if not isinstance(doc, dict):
        raise ValueError("not a JSON object")
    fmt = detect_format(doc, hdrs.get("content-format"))
    if fmt is None:
        raise ValueError("neither OCSF, ECS nor a native audit event")
    retention = hdrs.get("retention-class")
    cls = retention.decode("utf-8", "replace") if retention else None
    return [_EXTRACTORS[fmt](doc, cls, _MASK_BYTES in value)]


def format_line(v: EventView) -> str:
    """One line: time, source -> destination, method path, status, decision, user, retention.

    Denials are upper-cased so they stand out; a correlation other than ``joined`` is appended
    (``log_only``: the request carried no trace context; ``span_only``: its access log never came).
    """
    decision = "DENY" if v.decision == "deny" else v.decision
    line = (
        f"{v.time}  {v.source} -> {v.destination}  {v.method or '-'} {v.path or '-'}  "
        f"{v.status if v.status is not None else '-'}  {decision:<7}  user={v.user or '-'}  "
        f"retention={v.retention or '-'}"
    )
    if v.correlation and v.correlation != "joined":
        line += f"  ({v.correlation})"
    return line


def view_json(v: EventView) -> bytes:
    """The view as one JSON object (stable keys, the same for every format)."""
    return orjson.dumps(asdict(v))


def parse_since(text: str, now_ms: int) -> int:
    """``--since`` -> epoch milliseconds: ``90s``, ``10m``, ``2h``, ``1d`` ago, or an ISO time
    (``2026-10-09T07:54:53Z``; without an offset it is taken as UTC). ``ConfigError`` otherwise."""
    m = _SINCE.match(text.strip().lower())
    if m:
        return now_ms - round(float(m.group(1)) * _UNIT_MS[m.group(2)])
    try:
        parsed = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: expected a duration (30s, 10m, 2h, 1d) or an ISO time"
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
