"""Audit event -> OCSF 1.3.0 HTTP Activity (class 4002), plus field helpers shared by the mappers.

Requirements
    * Output validates against ``schemas/siem_ocsf_http_activity.v1.json`` (the subset of OCSF
      we emit) and carries the trace id (``metadata.correlation_uid``) and the authorization
      outcome (``action_id``, ``disposition_id``, ``actor.authorizations``).
    * Nothing of the audit event is lost: facts without an OCSF attribute go under ``unmapped``.
    * Pure and allocation-light: one dict per OCSF object, no copies of the input, no I/O.
      Address splits and method lookups are memoised in bounded tables, which never change
      a result.
    * Input is expected to be redacted already (``Redactor``); the mapper adds no new strings
      derived from secrets.

Mapping decisions (details in docs/siem-mapping.md)
    * ``activity_id`` from the method: Connect 1, Delete 2, Get 3, Head 4, Options 5, Post 6,
      Put 7, Trace 8; any other method (PATCH included) is Other 99 with ``activity_name`` set
      to the method, because PATCH (9) only exists from OCSF 1.6.0 on; no method is Unknown 0.
    * The caller's SPIFFE id is ``actor.app_uid`` (the authenticated client application, OCSF
      1.2+) and ``src_endpoint.uid``; the callee's is ``dst_endpoint.uid``.
    * Kubernetes namespace, Envoy cluster, response flags, span id, mesh and retention tags have
      no OCSF 1.3.0 attribute and go under ``unmapped``.

Example
    >>> out = to_ocsf(event)  # doctest: +SKIP
    >>> out["class_uid"], out["type_uid"], out["status_id"]  # doctest: +SKIP
    (4002, 400203, 2)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Literal

from audit_stream import __version__
from audit_stream.models.records import AuditEvent, Workload

__all__ = [
    "OCSF_VERSION",
    "Outcome",
    "http_version",
    "outcome",
    "split_address",
    "split_target",
    "to_ocsf",
    "url_object",
]

OCSF_VERSION = "1.3.0"
CLASS_UID = 4002
CATEGORY_UID = 4

_ACTIVITIES: dict[str, tuple[int, str]] = {
    "CONNECT": (1, "Connect"),
    "DELETE": (2, "Delete"),
    "GET": (3, "Get"),
    "HEAD": (4, "Head"),
    "OPTIONS": (5, "Options"),
    "POST": (6, "Post"),
    "PUT": (7, "Put"),
    "TRACE": (8, "Trace"),
}
_STATUS = {"success": (1, "Success"), "failure": (2, "Failure"), "unknown": (0, "Unknown")}
_ACTION = {"allow": (1, "Allowed"), "deny": (2, "Denied")}
_DISPOSITION = {"allow": (1, "Allowed"), "deny": (2, "Blocked")}
_PRODUCT = {"name": "audit-stream", "vendor_name": "audit-stream", "version": __version__}
_REQUEST_MAPPED = frozenset({"method", "path", "protocol", "user_agent", "request_id", "authority"})
_RESPONSE_MAPPED = frozenset({"status_code", "duration_ms"})
_AUTHZ_MAPPED = frozenset({"decision", "policy", "reason"})
_USER_MAPPED = frozenset({"id"})
_TRACE_MAPPED = frozenset({"trace_id", "span_id"})

Outcome = Literal["success", "failure", "unknown"]


# --------------------------------------------------------------------------------------------
# Helpers shared with the ECS mapper


def split_address(address: str) -> tuple[str | None, int | None, bool]:
    """Split ``host:port`` defensively: ``(host, port, host_is_ip)``.

    ``"10.0.0.1:8080" -> ("10.0.0.1", 8080, True)``, ``"[::1]:80" -> ("::1", 80, True)``,
    ``"::1" -> ("::1", None, True)``, ``"reviews:9080" -> ("reviews", 9080, False)``; an
    unusable value (``"-"``, ``"unix:/run/x.sock"``, bad port) gives ``(None, None, False)``.
    The usual ``host:port`` shape takes a short path (caller addresses carry ephemeral ports, so
    remembering whole addresses would not pay); whether a host is an IP is remembered per host.
    """
    address = address.strip()
    host, sep, port_text = address.partition(":")
    if sep and host and host[0] != "[" and port_text.isdigit() and port_text.isascii():
        port = int(port_text)
        if port > 65535:
            return None, None, False
        return _classified(host, port)
    return _split_address(address)


def _split_address(address: str) -> tuple[str | None, int | None, bool]:
    host, port_text = address, ""
    if address.startswith("["):
        end = address.find("]")
        if end == -1:
            return None, None, False
        host, rest = address[1:end], address[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                return None, None, False
            port_text = rest[1:]
    elif address.count(":") == 1:
        host, port_text = address.split(":")
    port: int | None = None
    if port_text:
        if not (port_text.isascii() and port_text.isdigit()) or int(port_text) > 65535:
            return None, None, False
        port = int(port_text)
    if not host:
        return None, None, False
    return _classified(host, port)


def _classified(host: str, port: int | None) -> tuple[str | None, int | None, bool]:
    """``(host, port, host_is_ip)``, or all unusable for a host that is neither IP nor name."""
    kind = _HOST_KINDS.get(host) if host != "-" else _UNUSABLE
    if kind is None:
        kind = _host_kind(host)
    if kind == _UNUSABLE:
        return None, None, False
    return host, port, kind == _IP


# Hosts are pod IPs and service names: few distinct values, each parsed by ``ipaddress`` (the
# dearest step of a split) once. Bounded; emptied when full, which costs only re-parsing.
_HOST_KINDS: dict[str, int] = {}
_HOST_KINDS_MAX = 8192
_UNUSABLE, _NAME, _IP = 0, 1, 2


def _host_kind(host: str) -> int:
    try:
        ipaddress.ip_address(host)
        kind = _IP
    except ValueError:
        kind = _UNUSABLE if ("/" in host or ":" in host or " " in host) else _NAME
    if len(_HOST_KINDS) >= _HOST_KINDS_MAX:
        _HOST_KINDS.clear()
    _HOST_KINDS[host] = kind
    return kind


def url_object(
    request: Mapping[str, str], original: str, query: str, host: str
) -> dict[str, object]:
    """A request's URL facts (target, path, query, host, port) under one schema's field names.

    OCSF and ECS describe a URL alike and differ only in the names of ``original``, ``query`` and
    ``host``; ``path`` and ``port`` are called the same in both.
    """
    url: dict[str, object] = {}
    target = request.get("path")
    if target:
        path, q = split_target(target)
        url[original] = target
        url["path"] = path
        if q is not None:
            url[query] = q
    authority = request.get("authority")
    if authority:
        h, port, _ = split_address(authority)
        if h is not None:
            url[host] = h
        if port is not None:
            url["port"] = port
    return url


def split_target(target: str) -> tuple[str, str | None]:
    """Request target -> ``(path, query)``; the fragment, never sent by clients, is dropped."""
    target = target.split("#", 1)[0]
    path, sep, query = target.partition("?")
    return path, (query if sep else None)


def http_version(protocol: str) -> str:
    """``"HTTP/1.1" -> "1.1"``, ``"HTTP/2" -> "2"``; anything else is returned unchanged."""
    return protocol[5:] if protocol[:5].upper() == "HTTP/" else protocol


def _status_code(event: AuditEvent) -> int | None:
    return _code(event.get("response", {}))


def _code(response: Mapping[str, object]) -> int | None:
    code = response.get("status_code")
    if type(code) is int:
        return code
    if isinstance(code, str) and code.isascii() and code.isdigit():
        return int(code)
    return None


def outcome(event: AuditEvent) -> Outcome:
    """``failure`` when denied, or the response is 0 (none sent) / >= 400 / a gRPC error;
    ``success`` for a response < 400; ``unknown`` when there is no response code at all."""
    response = event.get("response", {})
    return _outcome(event.get("authorization", {}).get("decision"), _code(response), response)


def _outcome(decision: object, code: int | None, response: Mapping[str, object]) -> Outcome:
    if decision == "deny":
        return "failure"
    if code is None:
        return "unknown"
    if code == 0 or code >= 400:
        return "failure"
    grpc = response.get("grpc_status")
    if grpc is not None and str(grpc) not in ("", "0", "OK"):
        return "failure"
    return "success"


# --------------------------------------------------------------------------------------------
# OCSF


def _endpoint(workload: Workload, unmapped: dict[str, object], side: str) -> dict[str, object]:
    ep: dict[str, object] = {}
    keep_address = False  # the address goes under unmapped when it cannot be shown whole
    address = workload.get("address")
    if address:
        host, port, is_ip = split_address(address)
        if host is None:
            keep_address = True
        elif is_ip:
            ep["ip"] = host
        else:
            ep["hostname"] = host
        if port is not None:
            ep["port"] = port
    name = workload.get("host")
    if name is not None:
        if ep.get("hostname", name) != name:
            keep_address = True  # its host name would be overwritten: keep it whole
        ep["hostname"] = name
    service = workload.get("service")
    if service is not None:
        ep["svc_name"] = service
    principal = workload.get("principal")
    if principal is not None:
        ep["uid"] = principal
    namespace = workload.get("namespace")
    cluster = workload.get("cluster")
    if keep_address or namespace is not None or cluster is not None:
        extra: dict[str, object] = {}
        if keep_address:
            extra["address"] = address
        if namespace is not None:
            extra["namespace"] = namespace
        if cluster is not None:
            extra["cluster"] = cluster
        unmapped[side] = extra
    return ep


def _rest(obj: Mapping[str, object], mapped: frozenset[str]) -> dict[str, object]:
    """The entries of ``obj`` not in ``mapped``; the usual case, nothing left, costs one C-level
    subset test instead of a comprehension."""
    if obj.keys() <= mapped:
        return {}
    return {k: v for k, v in obj.items() if k not in mapped}


def _http_request(request: dict[str, str], unmapped: dict[str, object]) -> dict[str, object]:
    out: dict[str, object] = {}
    if "method" in request:
        out["http_method"] = request["method"]
    authority = request.get("authority")
    url = url_object(request, "url_string", "query_string", "hostname")
    if url:
        out["url"] = url
    if "user_agent" in request:
        out["user_agent"] = request["user_agent"]
    if "protocol" in request:
        out["version"] = http_version(request["protocol"])
    if "request_id" in request:
        out["uid"] = request["request_id"]
    rest = _rest(request, _REQUEST_MAPPED)
    if authority and "hostname" not in url:
        rest["authority"] = authority
    if rest:
        unmapped["request"] = rest
    return out


def _activity(method: str | None) -> tuple[int, str, int, str]:
    """``(activity_id, activity_name, type_uid, type_name)`` for a request method."""
    if method is None:
        return _UNKNOWN_ACTIVITY
    activity = _ACTIVITY_CACHE.get(method)
    if activity is None:
        activity_id, name = _ACTIVITIES.get(method.upper(), (99, method.capitalize()))
        activity = (activity_id, name, CLASS_UID * 100 + activity_id, f"HTTP Activity: {name}")
        # Methods are client-chosen strings: keep the table bounded.
        if len(_ACTIVITY_CACHE) >= 256:
            _ACTIVITY_CACHE.clear()
        _ACTIVITY_CACHE[method] = activity
    return activity


_UNKNOWN_ACTIVITY = (0, "Unknown", CLASS_UID * 100, "HTTP Activity: Unknown")
_ACTIVITY_CACHE: dict[str, tuple[int, str, int, str]] = {}
# decision -> (action_id, action, disposition_id, disposition)
_VERDICTS = {
    key: (*_ACTION[key], *_DISPOSITION[key]) for key in _ACTION.keys() & _DISPOSITION.keys()
}
_NO_VERDICT = (0, "Unknown", 0, "Unknown")
_EMPTY: dict[str, object] = {}  # read-only default for absent sub-objects


def to_ocsf(event: AuditEvent) -> dict[str, object]:
    """Map one audit event to an OCSF 1.3.0 HTTP Activity event (see module docstring)."""
    # Each sub-object is looked up once and handed to the helpers: this runs per audit event.
    request = event.get("request", _EMPTY)
    response = event.get("response", _EMPTY)
    authz = event.get("authorization", _EMPTY)
    trace = event.get("trace", _EMPTY)
    source = event.get("source", _EMPTY)
    activity_id, activity_name, type_uid, type_name = _activity(request.get("method"))
    decision = authz.get("decision")
    code = _code(response)
    status_id, status = _STATUS[_outcome(decision, code, response)]
    time_ms = event["time_unix_nano"] // 1_000_000

    metadata: dict[str, object] = {
        "version": OCSF_VERSION,
        "product": _PRODUCT.copy(),
        "profiles": ["security_control"],
        "uid": event["event_id"],
        "original_time": event["time"],
    }
    if "trace_id" in trace:
        metadata["correlation_uid"] = trace["trace_id"]

    message = f"{request.get('method', '-')} {request.get('path', '-')}"
    if code is not None:
        message = f"{message} {code}"
    if decision in _ACTION:
        message = f"{message} ({decision})"
    action_id, action, disposition_id, disposition = _VERDICTS.get(decision or "", _NO_VERDICT)
    denied = decision == "deny"
    unmapped: dict[str, object] = {"correlation": event["correlation"]}
    out: dict[str, object] = {
        "class_uid": CLASS_UID,
        "class_name": "HTTP Activity",
        "category_uid": CATEGORY_UID,
        "category_name": "Network Activity",
        "activity_id": activity_id,
        "activity_name": activity_name,
        "type_uid": type_uid,
        "type_name": type_name,
        "time": time_ms,
        "start_time": time_ms,
        "severity_id": 3 if denied else 1,
        "severity": "Medium" if denied else "Informational",
        "status_id": status_id,
        "status": status,
        "message": message,
        "metadata": metadata,
        "action_id": action_id,
        "action": action,
        "disposition_id": disposition_id,
        "disposition": disposition,
    }

    src = _endpoint(source, unmapped, "source")
    if src:
        out["src_endpoint"] = src
    dst = _endpoint(event.get("destination", {}), unmapped, "destination")
    if dst:
        out["dst_endpoint"] = dst

    http_request = _http_request(request, unmapped)
    if http_request:
        out["http_request"] = http_request
    if code is not None:
        out["http_response"] = {"code": code}
    duration = response.get("duration_ms")
    if type(duration) is int:
        out["duration"] = duration
        out["end_time"] = time_ms + duration
    reason = authz.get("reason")
    details = response.get("details")
    if reason or details:
        out["status_detail"] = reason or details
    rest = _rest(response, _RESPONSE_MAPPED)
    if reason and details == reason:
        rest.pop("details", None)
    if code is None and "status_code" in response:
        rest["status_code"] = response["status_code"]
    if rest:
        unmapped["response"] = rest

    actor: dict[str, object] = {}
    user = event.get("user", _EMPTY)
    if "id" in user:
        actor["user"] = {"uid": user["id"]}
    if "principal" in source:
        actor["app_uid"] = source["principal"]
    if "service" in source:
        actor["app_name"] = source["service"]
    if decision in _ACTION:
        authorization: dict[str, object] = {"decision": decision}
        if "policy" in authz:
            authorization["policy"] = {"name": authz["policy"]}
        actor["authorizations"] = [authorization]
    if actor:
        out["actor"] = actor
    extra_authz = _rest(authz, _AUTHZ_MAPPED)
    if decision not in _ACTION and decision is not None:
        extra_authz["decision"] = decision
    if decision not in _ACTION and "policy" in authz:
        extra_authz["policy"] = authz["policy"]
    if extra_authz:
        unmapped["authorization"] = extra_authz
    extra_user = _rest(user, _USER_MAPPED)
    if extra_user:
        unmapped["user"] = extra_user

    if "span_id" in trace:
        unmapped["span_id"] = trace["span_id"]
    extra_trace = _rest(trace, _TRACE_MAPPED)
    if extra_trace:
        unmapped["trace"] = extra_trace
    if event.get("mesh"):
        unmapped["mesh"] = event["mesh"]
    if "retention" in event:
        unmapped["retention"] = event["retention"]
    out["unmapped"] = unmapped
    return out
