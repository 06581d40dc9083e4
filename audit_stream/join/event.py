"""Build one audit event from an access log, a span, or both (``schemas/audit_event.v1.json``).

Requirements: pure; runs once per audited request on the join's hot path, so it reads each field
once and builds small dicts; a fact the records do not carry is left out, never guessed. Input
fields hold known facts only, as the receiver writes them (Envoy's "-" already dropped).

How the event is made:

* ``event_id`` names the *request*, not the record that happened to produce the event: a digest of
  (trace id, span id) — the proxy hop — whenever the records carry them, else the log's own id. After
  a crash the join re-reads every unfinished record; a request first published ``log_only`` may come
  back ``joined``, and a span whose log was committed before the crash may come back ``span_only``.
  All of them carry the same id, so consumers dedupe on it (keep the first). Two access loggers on
  one listener log the same hop and therefore share an id too.
* Facts are the span's :class:`AccessFields` overlaid by the log's (the log wins key by key).
* ``time`` is the log's record time, else the span's start, as RFC 3339 UTC with nanoseconds.
* ``source``: principal, service, namespace from the ``source_*`` fields; address is the
  downstream peer (``downstream_remote_address``). ``x_forwarded_for`` is not used: its first hop
  is whatever the client claimed, not the peer the proxy saw (Envoy already folds trusted hops
  into the remote address), and it names a different party than the source principal.
* ``destination``: ``destination_*`` fields; host = authority; address = upstream host, else the
  downstream local address (inbound sidecars have no upstream host); cluster = upstream cluster.
* Identity the fields imply but do not state is filled only from names that state it, with the
  receiver's helpers (:func:`~audit_stream.receiver.accesslog.namespace_from_principal`,
  :func:`~audit_stream.receiver.accesslog.service_from_cluster`): a namespace from a SPIFFE id
  ``spiffe://<td>/ns/<ns>/sa/<sa>`` or a Linkerd identity, destination service and namespace from
  an Istio cluster name or SNI. A service name never comes from a service account. (The receiver
  already does this when it decodes; repeating it here keeps events right for any producer.)
* ``response.duration_ms`` falls back to the span's own duration when no log gave one (the
  proxy's span covers the request, so this is a measurement, not an estimate).
* ``authorization`` comes from :func:`audit_stream.join.authz.decide` on the merged facts.
* ``mesh.proxy`` is ``envoy`` or ``linkerd`` from the log format or the telemetry's resource or
  scope; ``mesh.kind`` comes from an Istio node id (``sidecar~`` / ``router~`` -> gateway /
  ``waypoint~``); ``mesh.correlation`` repeats the top-level correlation.

Example::

    >>> ev = build_event(log, None, "log_only")
    >>> ev["event_id"] == request_event_id(log["trace_id"], log["span_id"]), ev["time"]
    (True, '2026-10-09T07:54:53.132000000Z')
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping

from audit_stream.join.authz import decide
from audit_stream.models.records import (
    AccessFields,
    AuditEvent,
    Correlation,
    MeshLog,
    MeshSpan,
    Workload,
)
from audit_stream.receiver.accesslog import namespace_from_principal, service_from_cluster

__all__ = ["build_event", "format_time", "request_event_id"]

_ENVOY_FORMATS = frozenset({"istio_text", "envoy_text"})
_LINKERD_FORMATS = frozenset({"linkerd_json", "linkerd_apache"})
# Istio node types (pilot/pkg/model NodeType) as they begin a node id.
_NODE_KINDS = {"sidecar": "sidecar", "router": "gateway", "waypoint": "waypoint"}


# The last second formatted: events arrive in time order, so most share it. One tuple, replaced
# whole, so a reader never sees a second with another second's text.
_last_second: tuple[int, str] = (-1, "")


def format_time(unix_nano: int) -> str:
    """``1791532493132000000`` -> ``'2026-10-09T07:54:53.132000000Z'`` (UTC, nanoseconds)."""
    global _last_second
    seconds = unix_nano // 1_000_000_000
    cached = _last_second
    if cached[0] == seconds:
        prefix = cached[1]
    else:
        prefix = time.strftime("%Y-%m-%dT%H:%M:%S.", time.gmtime(seconds))
        _last_second = (seconds, prefix)
    # str(10**9 + nanos)[1:] zero-pads to 9 digits faster than a format spec.
    return prefix + str(unix_nano - seconds * 1_000_000_000 + 1_000_000_000)[1:] + "Z"


def _proxy(fmt: str | None, record: MeshLog | MeshSpan) -> str | None:
    if fmt in _ENVOY_FORMATS:
        return "envoy"
    if fmt in _LINKERD_FORMATS:
        return "linkerd"
    resource: Mapping[str, object] = record["resource"]
    if resource.get("telemetry.sdk.name") == "envoy" or "log_name" in resource:
        # "log_name" is one of the resource labels Envoy's OpenTelemetry access logger always sets.
        return "envoy"
    service = resource.get("service.name")
    if isinstance(service, str) and service.startswith("linkerd"):
        return "linkerd"
    scope_name = record.get("scope", {}).get("name", "")
    if scope_name == "envoy":
        return "envoy"
    if scope_name.startswith("linkerd"):
        return "linkerd"
    return None


def _kind(record: MeshLog | MeshSpan) -> str | None:
    attrs: Mapping[str, object] = record["attributes"]
    node = attrs.get("node_id")
    if not isinstance(node, str) or not node:
        resource: Mapping[str, object] = record["resource"]
        node = resource.get("node_name")
        if not isinstance(node, str) or not node:
            return None
    kind = _KINDS_SEEN.get(node, _UNSEEN)
    if kind is _UNSEEN:
        head, sep, _ = node.partition("~")
        kind = _NODE_KINDS.get(head) if sep else None
        if len(_KINDS_SEEN) >= _KINDS_SEEN_MAX:
            _KINDS_SEEN.clear()
        _KINDS_SEEN[node] = kind
    return kind


# Node ids name proxies (one per pod), so they repeat: remember each one's kind. Bounded.
_UNSEEN = "?"
_KINDS_SEEN: dict[str, str | None] = {}
_KINDS_SEEN_MAX = 8192


def _source(f: AccessFields) -> Workload:
    src: Workload = {}
    principal = f.get("source_principal")
    if principal is not None:
        src["principal"] = principal
    service = f.get("source_service")
    if service is not None:
        src["service"] = service
    namespace = f.get("source_namespace")
    if namespace is None and principal is not None:
        namespace = namespace_from_principal(principal)
    if namespace is not None:
        src["namespace"] = namespace
    address = f.get("downstream_remote_address")
    if address is not None:
        src["address"] = address
    return src


def _destination(f: AccessFields) -> Workload:
    dst: Workload = {}
    principal = f.get("destination_principal")
    if principal is not None:
        dst["principal"] = principal
    service = f.get("destination_service")
    namespace = f.get("destination_namespace")
    if namespace is None and principal is not None:
        namespace = namespace_from_principal(principal)
    cluster = f.get("upstream_cluster")
    if service is None or namespace is None:
        named_service, named_ns = service_from_cluster(cluster) if cluster else (None, None)
        if named_service is None:
            sni = f.get("requested_server_name")
            if sni is not None:
                named_service, named_ns = service_from_cluster(sni)
        if service is None:
            service = named_service
        if namespace is None:
            namespace = named_ns
    if service is not None:
        dst["service"] = service
    if namespace is not None:
        dst["namespace"] = namespace
    host = f.get("authority")
    if host is not None:
        dst["host"] = host
    address = f.get("upstream_host") or f.get("downstream_local_address")
    if address is not None:
        dst["address"] = address
    if cluster is not None:
        dst["cluster"] = cluster
    return dst


def _request(f: AccessFields) -> dict[str, str]:
    request: dict[str, str] = {}
    value = f.get("method")
    if value is not None:
        request["method"] = value
    value = f.get("path")
    if value is not None:
        request["path"] = value
    value = f.get("protocol")
    if value is not None:
        request["protocol"] = value
    value = f.get("user_agent")
    if value is not None:
        request["user_agent"] = value
    value = f.get("request_id")
    if value is not None:
        request["request_id"] = value
    value = f.get("authority")
    if value is not None:
        request["authority"] = value
    return request


def _response(f: AccessFields, span: MeshSpan | None) -> dict[str, int | str]:
    response: dict[str, int | str] = {}
    code = f.get("response_code")
    if code is not None:
        response["status_code"] = code
    flags = f.get("response_flags")
    if flags is not None:
        response["flags"] = flags
    details = f.get("response_code_details")
    if details is not None:
        response["details"] = details
    duration = f.get("duration_ms")
    if duration is None and span is not None:
        # The proxy's span covers the request, so its length is the request's duration.
        duration = (span["end_time_unix_nano"] - span["start_time_unix_nano"]) // 1_000_000
    if duration is not None and duration >= 0:
        response["duration_ms"] = duration
    return response


def request_event_id(trace_id: str, span_id: str) -> str:
    """The event id of the request at one proxy hop: 32 hex digits from (trace id, span id).

    Requirements: deterministic, and the same in every release, since consumers dedupe on it
    across replays and upgrades: changing the digest or its inputs would re-publish every replayed
    request under a new id. Distinct hops (other span id, or same span id in another trace) get
    distinct ids.

    How it works: BLAKE2b with a 16-byte digest over ``"<trace_id>/<span_id>"`` (the lowercase hex
    the receiver writes), personalised with ``b"audit.event"`` so the id cannot be mistaken for a
    digest of the same text made for another purpose.

    Example::

        >>> request_event_id("5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174")
        '61db200bea5e02b610bef9f4b121eed0'
    """
    h = _EVENT_ID_HASH.copy()  # copying a keyed, personalised state beats building one
    h.update(f"{trace_id}/{span_id}".encode())
    return h.hexdigest()


_EVENT_ID_HASH = hashlib.blake2b(digest_size=16, person=b"audit.event")


def build_event(log: MeshLog | None, span: MeshSpan | None, correlation: Correlation) -> AuditEvent:
    """Return the audit event for a log, a span, or a joined pair (see the module docstring).

    Raises ValueError when both are None.
    """
    fields: AccessFields
    if log is not None:
        fields = {**span["fields"], **log["fields"]} if span is not None else log["fields"]
        event_id = log["id"]
        time_unix_nano = log["time_unix_nano"]
        trace_id = log["trace_id"]
        span_id = log["span_id"]
        if trace_id is None and span is not None:
            trace_id, span_id = span["trace_id"], span["span_id"]
    elif span is not None:
        fields = span["fields"]
        event_id = span["id"]
        time_unix_nano = span["start_time_unix_nano"]
        trace_id, span_id = span["trace_id"], span["span_id"]
    else:
        raise ValueError("build_event needs a log or a span")
    if trace_id is not None and span_id is not None:
        event_id = request_event_id(trace_id, span_id)
    f = fields

    user: dict[str, str] = {}
    user_id = f.get("user_id")
    if user_id is not None:
        user["id"] = user_id

    trace: dict[str, str] = {}
    if trace_id is not None:
        trace["trace_id"] = trace_id
        if span_id is not None:
            trace["span_id"] = span_id

    mesh: dict[str, str] = {"correlation": correlation}
    proxy = _proxy(log["format"], log) if log is not None else None
    if proxy is None and span is not None:
        proxy = _proxy(None, span)
    if proxy is not None:
        mesh["proxy"] = proxy
    kind = _kind(log) if log is not None else None
    if kind is None and span is not None:
        kind = _kind(span)
    if kind is not None:
        mesh["kind"] = kind

    return {
        "schema": "audit_event.v1",
        "event_id": event_id,
        "time": format_time(time_unix_nano),
        "time_unix_nano": time_unix_nano,
        "correlation": correlation,
        "source": _source(f),
        "destination": _destination(f),
        "request": _request(f),
        "response": _response(f, span),
        "authorization": decide(f),
        "user": user,
        "trace": trace,
        "mesh": mesh,
    }
