"""Audit event -> Elastic Common Schema 8.x document.

Requirements
    * Output validates against ``schemas/siem_ecs.v1.json`` and carries ``trace.id`` and the
      authorization outcome (``event.type`` ``allowed``/``denied``, ``event.outcome``,
      ``rule.name``, ``audit_stream.authorization``).
    * Only ECS fields with their documented meaning; everything else lives in the custom
      ``audit_stream`` object (ECS reserves no such top-level name), so no fact is lost.
    * Pure, no I/O, no copies of the input. Input is expected to be redacted already.

Mapping decisions (details in docs/siem-mapping.md)
    * The destination is the observed service (``service.*``: id = SPIFFE id, name = service)
      and the caller is ``service.origin.*``, as ECS prescribes for incoming requests.
    * ``url.original`` is the request target as the proxy logged it (path and query; the scheme
      is unknown to a mesh access log, ECS allows a path-only original for access logs).
    * ``labels`` (keyword values) carry the retention class, rule and legal hold for routing
      and index lifecycle selection.

Example
    >>> doc = to_ecs(event)  # doctest: +SKIP
    >>> doc["event"]["type"], doc["trace"]["id"]  # doctest: +SKIP
    (['access', 'denied'], '422a513f9dd13cdca4b291187d65ec69')
"""

from __future__ import annotations

from audit_stream.models.records import AuditEvent, Workload
from audit_stream.siem.ocsf import http_version, outcome, split_address, url_object

__all__ = ["ECS_VERSION", "to_ecs"]

ECS_VERSION = "8.11.0"
_REQUEST_MAPPED = frozenset({"method", "path", "protocol", "user_agent", "request_id", "authority"})
_DECISION_TYPE = {"allow": "allowed", "deny": "denied"}


def _endpoint(workload: Workload, extra: dict[str, object], ips: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    address = workload.get("address")
    if address:
        out["address"] = address
        host, port, is_ip = split_address(address)
        if host is not None:
            if is_ip:
                out["ip"] = host
                ips.append(host)
            else:
                out["domain"] = host
        if port is not None:
            out["port"] = port
    if "host" in workload:
        out["domain"] = workload["host"]
    if "namespace" in workload:
        extra["namespace"] = workload["namespace"]
    if "cluster" in workload:
        extra["cluster"] = workload["cluster"]
    return out


def _service(workload: Workload) -> dict[str, object]:
    out: dict[str, object] = {}
    if "principal" in workload:
        out["id"] = workload["principal"]
    if "service" in workload:
        out["name"] = workload["service"]
    return out


def to_ecs(event: AuditEvent) -> dict[str, object]:
    """Map one audit event to an ECS document (see module docstring)."""
    authz = event.get("authorization", {})
    decision = authz.get("decision")
    request = event.get("request", {})
    response = event.get("response", {})
    trace = event.get("trace", {})
    custom: dict[str, object] = {"correlation": event["correlation"]}

    ecs_event: dict[str, object] = {
        "id": event["event_id"],
        "kind": "event",
        "category": ["web", "network"],
        "type": ["access", _DECISION_TYPE[decision]] if decision in _DECISION_TYPE else ["access"],
        "outcome": outcome(event),
        "start": event["time"],
        "dataset": "audit_stream.access",
        "module": "audit_stream",
    }
    duration = response.get("duration_ms")
    if type(duration) is int:
        ecs_event["duration"] = duration * 1_000_000
    reason = authz.get("reason") or response.get("details")
    if reason:
        ecs_event["reason"] = reason

    doc: dict[str, object] = {
        "@timestamp": event["time"],
        "ecs": {"version": ECS_VERSION},
        "event": ecs_event,
    }

    ips: list[str] = []
    source_wl = event.get("source", {})
    dest_wl = event.get("destination", {})
    source_extra: dict[str, object] = {}
    dest_extra: dict[str, object] = {}
    source = _endpoint(source_wl, source_extra, ips)
    if source:
        doc["source"] = source
    destination = _endpoint(dest_wl, dest_extra, ips)
    if destination:
        doc["destination"] = destination
    if source_extra:
        custom["source"] = source_extra
    if dest_extra:
        custom["destination"] = dest_extra

    service = _service(dest_wl)
    origin = _service(source_wl)
    if origin:
        service["origin"] = origin
    if service:
        doc["service"] = service
    if "namespace" in dest_wl:
        doc["orchestrator"] = {"namespace": dest_wl["namespace"]}

    authority = request.get("authority")
    url = url_object(request, "original", "query", "domain")
    if url:
        doc["url"] = url

    http: dict[str, object] = {}
    http_request: dict[str, object] = {}
    if "method" in request:
        http_request["method"] = request["method"]
    if "request_id" in request:
        http_request["id"] = request["request_id"]
    if http_request:
        http["request"] = http_request
    code = response.get("status_code")
    if type(code) is int or (isinstance(code, str) and code.isascii() and code.isdigit()):
        http["response"] = {"status_code": int(code)}
    if "protocol" in request:
        http["version"] = http_version(request["protocol"])
        if request["protocol"].upper().startswith("HTTP"):
            doc["network"] = {"protocol": "http"}
    if http:
        doc["http"] = http
    if "user_agent" in request:
        doc["user_agent"] = {"original": request["user_agent"]}
    rest = {k: v for k, v in request.items() if k not in _REQUEST_MAPPED}
    if authority and "domain" not in url:
        rest["authority"] = authority
    if rest:
        custom["request"] = rest

    user = event.get("user", {})
    related: dict[str, object] = {}
    if "id" in user:
        doc["user"] = {"id": user["id"]}
        related["user"] = [user["id"]]
    if ips:
        related["ip"] = ips
    if related:
        doc["related"] = related
    if "trace_id" in trace:
        doc["trace"] = {"id": trace["trace_id"]}
    if "span_id" in trace:
        doc["span"] = {"id": trace["span_id"]}
    if "policy" in authz:
        doc["rule"] = {"name": authz["policy"]}
    extra_trace = {k: v for k, v in trace.items() if k not in ("trace_id", "span_id")}
    if extra_trace:
        custom["trace"] = extra_trace
    extra_user = {k: v for k, v in user.items() if k != "id"}
    if extra_user:
        custom["user"] = extra_user

    if authz:
        custom["authorization"] = authz
    response_rest = {k: v for k, v in response.items() if k not in ("status_code", "duration_ms")}
    if "status_code" in response and "response" not in http:
        response_rest["status_code"] = response["status_code"]
    if response_rest:
        custom["response"] = response_rest
    if event.get("mesh"):
        custom["mesh"] = event["mesh"]
        proxy = event["mesh"].get("proxy")
        if proxy:
            doc["observer"] = {"type": "proxy", "product": proxy}
    retention = event.get("retention")
    if retention is not None:
        custom["retention"] = retention
        labels = {
            "retention_class": str(retention.get("class", "")),
            "retention_rule": str(retention.get("rule", "")),
            "legal_hold": "true" if retention.get("legal_hold") else "false",
        }
        doc["labels"] = labels
    doc["audit_stream"] = custom
    return doc
