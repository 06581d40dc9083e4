"""OTLP export requests -> normalised ``MeshLog`` / ``MeshSpan`` records (pure functions).

Requirements:

* Every record either becomes exactly one normalised record or is counted as rejected with a
  human-readable reason (used for the OTLP ``partial_success.error_message``); nothing is dropped
  silently and nothing raises for bad records.
* Ids: protobuf bytes -> lowercase hex. A log without a trace id is kept (``correlatable`` False);
  a non-empty id of the wrong length (trace 16 bytes, span 8) or all zeros rejects the record.
  Spans need valid trace and span ids. Envoy's zero-padded 64-bit trace ids are kept as they are.
* Times: logs use ``time_unix_nano``, else ``observed_time_unix_nano``, else ``now_ns``. Non-zero
  times before 2000-01-01 or more than a day ahead of ``now_ns`` reject the record, as do spans
  that end before they start. Times stay exact ints.
* ``id`` is a SHA-256 digest, truncated to 128 bits (32 hex characters), over the signal's name
  and the serialized resource, scope and record, each but the last length-prefixed, so an OTLP
  retry of the same record (protobuf or JSON) gets the same id and different records differ.
  The resource and scope parts are hashed once and the hash state is copied per record.
* ``attributes`` are the record's (span's) own, less those ``fields`` repeats
  (:func:`~audit_stream.receiver.accesslog.split_attributes`): a label that became a fact
  unchanged is published once, in ``fields``; the rest (``node_id``, labels that are not facts)
  stays as it came.
* Throughput: this runs for every record the receiver takes in; the log path avoids per-record
  work that is not needed (shared resource / scope dicts, no ``json_format`` on the protobuf path,
  string bodies read without ``WhichOneof``).
* Within one request, log records whose attributes are byte-identical (Istio's
  ``logFormat.labels``: a few caller / callee combinations per sidecar) share the flattened
  attributes and the facts taken from them, which are computed once: reaching each ``KeyValue``
  through the protobuf API costs two Python objects, and the mapping to facts is more again. The
  bytes are found in the record's serialization (made anyway for the id); the shared dicts are
  never mutated. The same walk tells a record without attributes, whose (empty) attribute list
  is then never read: each read of an empty repeated field makes protobuf allocate and free an
  arena, and upb hands all free heap pages back to the kernel (``malloc_trim(0)``) every 10,000
  arena frees, which the next requests fault in again (~200 page faults per 1000 records).

Example::

    >>> req = parse_logs_request(payload, "application/x-protobuf")   # doctest: +SKIP
    >>> batch = decode_logs(req, now_ns=time.time_ns())                # doctest: +SKIP
    >>> batch.records[0]["fields"]["response_code"], batch.rejected    # doctest: +SKIP
    (418, 0)
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, cast

import orjson
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from audit_stream.models.records import (
    AccessFields,
    Attributes,
    DecodedBatch,
    LogFormat,
    MeshLog,
    MeshSpan,
    SpanKind,
)
from audit_stream.receiver.accesslog import (
    direction_of_cluster,
    parse_body,
    parse_line,
    split_attributes,
)
from audit_stream.receiver.otlp_json import parse_json

__all__ = [
    "DecodedBatch",
    "decode_logs",
    "decode_spans",
    "flatten_attributes",
    "parse_logs_request",
    "parse_traces_request",
]

MIN_TIME_NS: Final = 946_684_800 * 1_000_000_000  # 2000-01-01T00:00:00Z
MAX_AHEAD_NS: Final = 86_400 * 1_000_000_000
MAX_REASONS: Final = 5
_ZERO16: Final = bytes(16)
_ZERO8: Final = bytes(8)
_KINDS: Final[tuple[SpanKind, ...]] = (
    "unspecified", "internal", "server", "client", "producer", "consumer",
)  # fmt: skip
_STATUS: Final = ("unset", "ok", "error")
_REQUEST_FACTS: Final = ("method", "path", "response_code", "grpc_status")
_LOG_ATTRIBUTES: Final = 0x32  # tag byte of LogRecord.attributes (field 6, length-delimited)
# tag bytes of LogRecord fields 7-12: dropped_attributes_count, flags, trace_id, span_id,
# observed_time_unix_nano, event_name
_LOG_LATER: Final = frozenset((0x38, 0x45, 0x4A, 0x52, 0x59, 0x62))


def parse_logs_request(body: bytes, content_type: str) -> ExportLogsServiceRequest:
    """OTLP/HTTP logs body (protobuf or JSON) -> request message; ``ValueError`` if malformed."""
    if _is_json(content_type):
        return cast(ExportLogsServiceRequest, parse_json(body, "logs"))
    try:
        return cast(ExportLogsServiceRequest, ExportLogsServiceRequest.FromString(body))
    except DecodeError as e:
        raise ValueError(f"malformed OTLP/protobuf logs request: {e}") from None


def parse_traces_request(body: bytes, content_type: str) -> ExportTraceServiceRequest:
    """OTLP/HTTP traces body (protobuf or JSON) -> request message; ``ValueError`` if malformed."""
    if _is_json(content_type):
        return cast(ExportTraceServiceRequest, parse_json(body, "traces"))
    try:
        return cast(ExportTraceServiceRequest, ExportTraceServiceRequest.FromString(body))
    except DecodeError as e:
        raise ValueError(f"malformed OTLP/protobuf traces request: {e}") from None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    if media in ("application/x-protobuf", "application/protobuf"):
        return False
    raise ValueError(f"unsupported content type {content_type!r}")


def _value(v: Any) -> Any:
    kind = v.WhichOneof("value")
    if kind == "string_value":
        return v.string_value
    if kind == "int_value":
        return v.int_value
    if kind == "bool_value":
        return v.bool_value
    if kind == "double_value":
        return v.double_value
    if kind == "array_value":
        return [_value(x) for x in v.array_value.values]
    if kind == "kvlist_value":
        return {kv.key: _value(kv.value) for kv in v.kvlist_value.values}
    if kind == "bytes_value":
        return v.bytes_value.hex()
    return None


def flatten_attributes(kvs: Any) -> Attributes:
    """Repeated ``KeyValue`` -> dict of Python values (arrays -> lists, kvlists -> dicts,
    bytes -> hex, unset -> None). Later duplicates of a key win."""
    out: Attributes = {}
    for kv in kvs:
        v = kv.value
        s = v.string_value  # most attributes are strings: skip WhichOneof for them
        out[kv.key] = s if s else _value(v)
    return out


def _attribute_run(raw: bytes) -> tuple[int, int, int]:
    """``(start, end, entries)`` of the run of attributes (field 6) in the serialized log record
    ``raw``; ``entries`` 0 means the record certainly has none, -1 that this cannot tell.

    Protobuf writes known fields in field-number order and the fields it does not know after
    them, so all attributes form one contiguous run, preceded only by fields 1-5, and a record
    whose walk reaches a known later field (7-12) or its end before field 6 has no attributes.
    An unknown field or wire type first gives -1. Callers compare a positive ``entries`` with the
    attribute count, so a run that is not all of them is never used. Raises ``IndexError`` on
    truncated input.
    """
    i = 0
    n = len(raw)
    while i < n:
        t = raw[i]
        if t == _LOG_ATTRIBUTES:
            break
        if t in _LOG_LATER:
            return 0, 0, 0
        wire = t & 7
        if t > _LOG_ATTRIBUTES or wire == 3 or wire == 4 or wire > 5:
            return 0, 0, -1
        if wire == 2:
            ln = raw[i + 1]
            if ln < 0x80:
                i += 2 + ln
            elif raw[i + 2] < 0x80:  # a body of 128 B - 16 KiB, the usual access-log line
                i += 3 + (ln & 0x7F) + (raw[i + 2] << 7)
            else:
                ln, i = _varint(raw, i + 1)
                i += ln
        elif wire == 1:
            i += 9
        elif wire == 5:
            i += 5
        else:
            i += 1
            while raw[i] & 0x80:
                i += 1
            i += 1
    else:
        if i > n:
            raise IndexError("truncated field")
        return 0, 0, 0
    start = i
    entries = 0
    while i < n and raw[i] == _LOG_ATTRIBUTES:
        ln = raw[i + 1]
        if ln < 0x80:
            i += 2 + ln
        else:
            ln, i = _varint(raw, i + 1)
            i += ln
        entries += 1
    if i > n:
        raise IndexError("truncated field")
    return start, i, entries


def _varint(raw: bytes, i: int) -> tuple[int, int]:
    """(value, index after it) of the base-128 varint at ``raw[i]``."""
    value = 0
    shift = 0
    while True:
        b = raw[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _hasher(person: bytes, resource: Any) -> Any:
    # SHA-256 through OpenSSL, which uses the CPU's SHA instructions where there are any: ~40%
    # less CPU per 1.3 KB record than CPython's portable blake2b, and as strong truncated to the
    # same 128 bits. The person string (a constant without NUL) separates the domains.
    h = hashlib.sha256(person + b"\0")
    raw = resource.SerializeToString()
    h.update(len(raw).to_bytes(8, "big"))
    h.update(raw)
    return h


def _scoped(h_res: Any, scope: Any) -> tuple[Any, dict[str, str] | None]:
    h = h_res.copy()
    raw = scope.SerializeToString()
    h.update(len(raw).to_bytes(8, "big"))
    h.update(raw)
    d = {}
    if scope.name:
        d["name"] = scope.name
    if scope.version:
        d["version"] = scope.version
    return h, d or None


class _Rejects:
    __slots__ = ("count", "reasons")

    def __init__(self) -> None:
        self.count = 0
        self.reasons: list[str] = []

    def add(self, reason: str) -> None:
        self.count += 1
        if len(self.reasons) < MAX_REASONS and reason not in self.reasons:
            self.reasons.append(reason)


def _id_problem(what: str, raw: bytes, size: int, zero: bytes) -> str | None:
    if len(raw) != size:
        return f"{what} is {len(raw)} bytes, want {size}"
    if raw == zero:
        return f"{what} is all zeros"
    return None


def _time_problem(what: str, t: int, max_ns: int) -> str | None:
    # no value in the text: reasons are kept distinct, and one per record would crowd them out
    if t < MIN_TIME_NS:
        return f"{what} is before 2000-01-01"
    if t > max_ns:
        return f"{what} is more than a day in the future"
    return None


def _log_problem(tid: bytes, sid: bytes, t: int, ot: int, max_ns: int) -> str:
    return (
        (tid and _id_problem("log record trace_id", tid, 16, _ZERO16))
        or (sid and _id_problem("log record span_id", sid, 8, _ZERO8))
        or (t and _time_problem("log record time_unix_nano", t, max_ns))
        or (ot and _time_problem("log record observed_time_unix_nano", ot, max_ns))
        or "invalid log record"
    )


def _log_body(body: Any) -> tuple[LogFormat, AccessFields, str | None]:
    """(format, fields, raw body text or None) for a non-string-valued body."""
    kind = body.WhichOneof("value")
    if kind is None:
        return "attributes", {}, None
    if kind == "string_value":  # the empty string
        return "attributes", {}, None
    if kind == "bytes_value":
        text = body.bytes_value.decode("utf-8", "replace")
        fmt, fields = parse_body(text)
        return fmt, fields, text
    value = _value(body)
    if isinstance(value, dict):
        fmt, fields = parse_body(value)
    else:
        fmt, fields = "unknown", {}
    return fmt, fields, orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()


def decode_logs(req: ExportLogsServiceRequest, now_ns: int) -> DecodedBatch[MeshLog]:
    """Normalise every log record of ``req``; see the module docstring for the rules."""
    out: list[MeshLog] = []
    append = out.append
    rej = _Rejects()
    max_ns = now_ns + MAX_AHEAD_NS
    # (attribute bytes, direction hint) -> (attributes, facts from them), for this request only
    labelled: dict[tuple[bytes, bool | None], tuple[Attributes, AccessFields]] = {}
    for rl in req.resource_logs:
        res = rl.resource
        resource = flatten_attributes(res.attributes)
        h_res = _hasher(b"mesh.log", res)
        for sl in rl.scope_logs:
            h_scope, scope = _scoped(h_res, sl.scope)
            copy = h_scope.copy
            for rec in sl.log_records:
                tid = rec.trace_id
                sid = rec.span_id
                t = rec.time_unix_nano
                ot = rec.observed_time_unix_nano
                # one cheap test for the common valid case, the precise reason only when needed
                if (
                    (tid and (len(tid) != 16 or tid == _ZERO16))
                    or (sid and (len(sid) != 8 or sid == _ZERO8))
                    or (t and (t < MIN_TIME_NS or t > max_ns))
                    or (ot and (ot < MIN_TIME_NS or ot > max_ns))
                ):
                    rej.add(_log_problem(tid, sid, t, ot, max_ns))
                    continue

                serialized = rec.SerializeToString()
                h = copy()
                h.update(serialized)
                body = rec.body
                raw: str | None = body.string_value
                fmt: LogFormat
                if raw:
                    fmt, fields = parse_line(raw)
                else:
                    fmt, fields, raw = _log_body(body)
                try:
                    start, end, entries = _attribute_run(serialized)
                except IndexError:  # cannot happen with protobuf's own encoding
                    entries = -1
                # rec.attributes is read only when there are some: protobuf allocates (and
                # frees) an arena for every read of an empty repeated field, and every 10,000
                # frees upb calls malloc_trim(0), whose returned pages then fault in again
                kvs = rec.attributes if entries else None
                if kvs:
                    cluster = fields.get("upstream_cluster")
                    hint = direction_of_cluster(cluster) if cluster else None
                    attributes, from_attrs = _labels(
                        serialized[start:end] if entries == len(kvs) else None,
                        kvs,
                        hint,
                        labelled,
                    )
                    if from_attrs:
                        fields.update(from_attrs)  # operators label records to be authoritative
                        if fmt == "unknown" and not raw:
                            fmt = "attributes"
                else:
                    attributes = {}
                if fmt == "attributes" and not fields:
                    fmt = "unknown"

                trace_id = tid.hex() if tid else None
                record: MeshLog = {
                    "id": h.hexdigest()[:32],
                    "time_unix_nano": t or ot or now_ns,
                    "trace_id": trace_id,
                    "span_id": sid.hex() if sid else None,
                    "correlatable": trace_id is not None,
                    "format": fmt,
                    "fields": fields,
                    "attributes": attributes,
                    "resource": resource,
                }
                if ot:
                    record["observed_time_unix_nano"] = ot
                sev = rec.severity_text
                if sev:
                    record["severity"] = sev
                if scope is not None:
                    record["scope"] = scope
                if fmt == "unknown" and raw:
                    record["body"] = raw
                append(record)
    return DecodedBatch(out, rej.count, rej.reasons)


def _labels(
    run: bytes | None,
    kvs: Any,
    hint: bool | None,
    seen: dict[tuple[bytes, bool | None], tuple[Attributes, AccessFields]],
) -> tuple[Attributes, AccessFields]:
    """A log record's flattened attributes less those its facts repeat, and the facts they
    carry; shared with earlier records of the request whose attributes are byte-identical
    (callers must not mutate them). ``run`` is the serialized attributes, None when they could
    not be found (nothing is shared then)."""
    if run is None:
        facts, rest = split_attributes(flatten_attributes(kvs), hint)
        return rest, facts
    key = (run, hint)
    known = seen.get(key)
    if known is None:
        facts, rest = split_attributes(flatten_attributes(kvs), hint)
        known = seen[key] = (rest, facts)
    return known


def _span_fields(attributes: Attributes, kind: SpanKind) -> tuple[AccessFields, Attributes]:
    """(facts, the attributes those facts do not repeat) of a span."""
    inbound = True if kind == "server" else False if kind == "client" else None
    fields, rest = split_attributes(attributes, inbound)
    if inbound is None:
        return fields, rest
    side = "destination" if inbound else "source"
    # the reporting proxy's own workload: callee on a server span, caller on a client span
    own: dict[str, object] = {}
    svc = attributes.get("istio.canonical_service")
    if isinstance(svc, str) and svc:
        own[f"{side}_service"] = svc
    ns = attributes.get("istio.namespace")
    if not (isinstance(ns, str) and ns):
        ns = _node_namespace(attributes.get("node_id"))
    if ns:
        own[f"{side}_namespace"] = ns
    for key, value in own.items():
        fields.setdefault(key, value)  # type: ignore[misc]
    return fields, rest


def _node_namespace(node_id: object) -> str | None:
    """Namespace from an Istio node id ``sidecar~ip~pod.namespace~namespace.svc.<domain>``."""
    if not isinstance(node_id, str):
        return None
    parts = node_id.split("~")
    if len(parts) != 4 or "." not in parts[2]:
        return None
    return parts[2].rsplit(".", 1)[1] or None


def decode_spans(req: ExportTraceServiceRequest, now_ns: int) -> DecodedBatch[MeshSpan]:
    """Normalise every span of ``req``; see the module docstring for the rules."""
    out: list[MeshSpan] = []
    rej = _Rejects()
    max_ns = now_ns + MAX_AHEAD_NS
    for rs in req.resource_spans:
        res = rs.resource
        resource = flatten_attributes(res.attributes)
        h_res = _hasher(b"mesh.span", res)
        for ss in rs.scope_spans:
            h_scope, scope = _scoped(h_res, ss.scope)
            for sp in ss.spans:
                tid = sp.trace_id
                sid = sp.span_id
                pid = sp.parent_span_id
                start = sp.start_time_unix_nano
                end = sp.end_time_unix_nano
                problem = _id_problem("span trace_id", tid, 16, _ZERO16) or _id_problem(
                    "span span_id", sid, 8, _ZERO8
                )
                if problem is None and pid and len(pid) != 8:
                    problem = f"span parent_span_id is {len(pid)} bytes, want 8"
                if problem is None:
                    problem = _time_problem("span start_time_unix_nano", start, max_ns)
                if problem is None:
                    problem = _time_problem("span end_time_unix_nano", end, max_ns)
                if problem is None and end < start:
                    problem = "span ends before it starts"
                if problem is not None:
                    rej.add(problem)
                    continue

                k: int = sp.kind
                kind: SpanKind = _KINDS[k] if 0 <= k < len(_KINDS) else "unspecified"
                fields, attributes = _span_fields(flatten_attributes(sp.attributes), kind)
                status = sp.status
                code = status.code
                h = h_scope.copy()
                h.update(sp.SerializeToString())
                record: MeshSpan = {
                    "id": h.hexdigest()[:32],
                    "trace_id": tid.hex(),
                    "span_id": sid.hex(),
                    # an all-zero parent is how some tracers spell "root"
                    "parent_span_id": pid.hex() if pid and pid != _ZERO8 else None,
                    "name": sp.name,
                    "kind": kind,
                    "start_time_unix_nano": start,
                    "end_time_unix_nano": end,
                    "status_code": _STATUS[code] if 0 <= code < len(_STATUS) else "unset",
                    "request": kind in ("server", "client")
                    and any(f in fields for f in _REQUEST_FACTS),
                    "fields": fields,
                    "attributes": attributes,
                    "resource": resource,
                }
                if status.message:
                    record["status_message"] = status.message
                if scope is not None:
                    record["scope"] = scope
                out.append(record)
    return DecodedBatch(out, rej.count, rej.reasons)
