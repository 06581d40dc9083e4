"""Access-log bodies and record attributes -> :class:`AccessFields`.

Requirements: turn whatever a mesh proxy put in an OTLP log record into the shared
``AccessFields`` vocabulary, never raise on odd input, and be fast on the common case (Istio's
default text line: about 3 us per line on a modest core, see ``bench/decode_micro.py``).

How it works:

* Text lines are cut on ``"`` first (Envoy quotes exactly the fields that may contain spaces), so
  the odd parts are quoted values and the even parts hold space-separated bare values. The number
  of parts identifies the shape: 15 = Istio's default line (new ``%UPSTREAM_CLUSTER_RAW%`` and old
  ``%UPSTREAM_CLUSTER%`` variants look the same), 17 = Istio <= 1.6 with the mixer status field,
  13 = Envoy's own default line. Numeric fields must parse or the shape is rejected, which keeps
  one format from being mistaken for another. "-" means absent.
* JSON / kvlist bodies and attributes go through one name table (Istio JSON keys, Envoy command
  operators in snake case, Istio attribute names, OTel HTTP semconv). Linkerd bodies (json with
  ``client.addr`` etc., or its Apache-style line) have their own small mapping.
* Identity that is implied rather than stated is filled in when absent: destination service and
  namespace from an Istio cluster name or SNI (:func:`service_from_cluster`), namespaces from
  SPIFFE / Linkerd identities (:func:`namespace_from_principal`).

Example::

    >>> fmt, f = parse_body('[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - '
    ...     'via_upstream - "-" 0 135 3 1 "-" "curl/7.73.0-DEV" "8496-c88" "httpbin:8000" '
    ...     '"127.0.0.1:80" inbound|8000|| 127.0.0.1:41854 10.44.1.27:80 10.44.1.23:37652 '
    ...     'outbound_.8000_._.httpbin.foo.svc.cluster.local default\\n')
    >>> fmt, f["response_code"], f["destination_service"], f["destination_namespace"]
    ('istio_text', 418, 'httpbin', 'foo')
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Final, TypeVar, cast

import orjson

from audit_stream.models.records import AccessFields, LogFormat

__all__ = [
    "direction_of_cluster",
    "fields_from_attributes",
    "namespace_from_principal",
    "parse_body",
    "parse_line",
    "service_from_cluster",
    "split_attributes",
]

_DASH: Final = "-"
V = TypeVar("V")

_ISTIO_KEYS: Final = (
    "start_time", "method", "path", "protocol", "response_code", "response_flags",
    "response_code_details", "connection_termination_details",
    "upstream_transport_failure_reason", "bytes_received", "bytes_sent", "duration_ms",
    "upstream_service_time_ms", "x_forwarded_for", "user_agent", "request_id", "authority",
    "upstream_host", "upstream_cluster", "upstream_local_address", "downstream_local_address",
    "downstream_remote_address", "requested_server_name", "route_name",
)  # fmt: skip
_ENVOY_KEYS: Final = (
    "start_time", "method", "path", "protocol", "response_code", "response_flags",
    "bytes_received", "bytes_sent", "duration_ms", "upstream_service_time_ms",
    "x_forwarded_for", "user_agent", "request_id", "authority", "upstream_host",
)  # fmt: skip

_INT_FIELDS: Final = frozenset(
    ("response_code", "bytes_received", "bytes_sent", "duration_ms", "upstream_service_time_ms")
)

# AccessFields key -> the other names it goes by: Istio JSON keys and Envoy command operators in
# snake case, Istio attribute names, Envoy span tags, OTel HTTP/RPC semconv (current and pre-1.20).
# Names whose meaning depends on the side of the call (network.peer.address, destination.address)
# are left out on purpose.
_ALIASES: Final[dict[str, tuple[str, ...]]] = {
    "method": ("req_method", "request.method", "http.request.method", "http.method"),
    "path": ("req_path", "request.path", "request.url_path", "url.path", "http.target",
             "http.path", "grpc.path"),
    "protocol": ("request.protocol", "http.protocol"),
    "response_code": ("response.code", "http.response.status_code", "http.status_code"),
    "response_flags": ("response.flags",),
    "response_code_details": ("response.code_details",),
    "bytes_received": ("request_size", "http.request.body.size"),
    "bytes_sent": ("response_size", "http.response.body.size"),
    "duration_ms": ("duration",),
    "upstream_service_time_ms": ("upstream_service_time", "resp_x_envoy_upstream_service_time"),
    "x_forwarded_for": ("req_x_forwarded_for",),
    "user_agent": ("req_user_agent", "request.useragent", "user_agent.original",
                   "http.user_agent"),
    "request_id": ("req_x_request_id", "x_request_id", "request.id", "guid:x-request-id",
                   "http.request.header.x-request-id"),
    "authority": ("req_authority", "request.host", "grpc.authority", "http.authority",
                  "http.host"),
    "upstream_host": ("upstream_address",),
    "upstream_cluster": ("upstream_cluster_raw",),
    "downstream_remote_address": ("source.address", "peer.address", "client.address"),
    "requested_server_name": ("connection.requested_server_name",),
    "grpc_status": ("grpc.status_code", "rpc.grpc.status_code"),
    "source_principal": ("downstream_peer_uri_san", "peer_principal",
                         "downstream_peer_principal", "source.principal"),
    "source_workload": ("source.workload.name",),
    "source_namespace": ("source.workload.namespace", "source.namespace"),
    "source_service": ("source.service.name",),
    "destination_principal": ("downstream_local_uri_san", "destination.principal"),
    "destination_workload": ("destination.workload.name",),
    "destination_namespace": ("destination.workload.namespace", "destination.namespace",
                              "destination.service.namespace"),
    "destination_service": ("destination.service.name",),
    "user_id": ("request.auth.principal", "enduser.id", "user.id"),
    "authorization": ("request.headers.authorization", "http.request.header.authorization"),
}  # fmt: skip
# External name -> AccessFields key. Every AccessFields key also maps to itself, so records
# re-fed through the receiver keep their facts.
_NAMES: Final[dict[str, str]] = {k: k for k in AccessFields.__annotations__} | {
    alias: key for key, aliases in _ALIASES.items() for alias in aliases
}
# Values that need more than a rename; handled in _apply_special.
_SPECIAL: Final = frozenset(
    (
        "url.full", "http.url", "url.query", "network.protocol.version", "http.flavor",
        "namespace", "server.address", "destination.service.host",
    )
)  # fmt: skip

_APACHE: Final = re.compile(
    r'(\S+) (\S+) (\S+) \[([^\]]*)\] "(\S+) (\S+) ([^"\s]+)" (\d{3})'
    r'(?: (\d+|-))?(?: "([^"]*)" "([^"]*)")?'
)


class _NoMatch(Exception):
    """The line does not have the shape being tried."""


def _num(s: str) -> int | str:
    """A numeric field: its int, "-" when absent, _NoMatch otherwise."""
    try:
        return int(s)
    except ValueError:
        if s == _DASH:
            return s
        raise _NoMatch from None


def _request_line(s: str) -> tuple[str, str, str]:
    parts = s.split(" ")
    if len(parts) == 3:
        return parts[0], parts[1], parts[2]
    if len(parts) < 3:
        raise _NoMatch
    # a path with literal spaces: method and protocol are still the ends
    return parts[0], " ".join(parts[1:-1]), parts[-1]


def _istio_fast(parts: list[str]) -> AccessFields | None:
    """Istio's default line in its most common form (HTTP, numbers present, single-word
    details), unrolled because it is most of the traffic; None hands over to the general path,
    which gives the same answer for these lines."""
    head, req, a, utfr, b, xff, s1, ua, s2, rid, s3, auth, s4, uhost, c = parts
    al = a.split()
    bl = b.split()
    cl = c.split()
    if (
        len(al) != 4 or len(bl) != 4 or len(cl) != 6
        or s1 != " " or s2 != " " or s3 != " " or s4 != " " or head[-2:] != "] "
    ):  # fmt: skip
        return None
    rl = req.split(" ")
    if len(rl) != 3:
        return None
    method, path, protocol = rl
    code, flags, details, term = al
    received, sent, duration, ust = bl
    cluster, ula, dla, dra, sni, route = cl
    if method == "-" or path == "-" or protocol == "-":
        return None
    try:
        f: AccessFields = {
            "start_time": head[1:-2],
            "method": method,
            "path": path,
            "protocol": protocol,
            "response_code": int(code),
            "bytes_received": int(received),
            "bytes_sent": int(sent),
            "duration_ms": int(duration),
        }
        if ust != "-":
            f["upstream_service_time_ms"] = int(ust)
    except ValueError:
        return None
    if flags != "-":
        f["response_flags"] = flags
    if details != "-":
        f["response_code_details"] = details
    if term != "-":
        f["connection_termination_details"] = term
    if utfr != "-" and utfr:
        f["upstream_transport_failure_reason"] = utfr
    if xff != "-" and xff:
        f["x_forwarded_for"] = xff
    if ua != "-" and ua:
        f["user_agent"] = ua
    if rid != "-" and rid:
        f["request_id"] = rid
    if auth != "-" and auth:
        f["authority"] = auth
    if uhost != "-" and uhost:
        f["upstream_host"] = uhost
    if cluster != "-":
        f["upstream_cluster"] = cluster
    if ula != "-":
        f["upstream_local_address"] = ula
    if dla != "-":
        f["downstream_local_address"] = dla
    if dra != "-":
        f["downstream_remote_address"] = dra
    if sni != "-":
        f["requested_server_name"] = sni
    if route != "-":
        f["route_name"] = route
    svc, ns = service_from_cluster(cluster)
    if svc is None and sni != "-":
        svc, ns = service_from_cluster(sni)
    if svc is not None:
        f["destination_service"] = svc
        if ns is not None:
            f["destination_namespace"] = ns
    return f


def _parse_text(line: str) -> tuple[LogFormat, AccessFields]:
    parts = line.split('"')
    n = len(parts)
    head = parts[0]
    if n not in (13, 15, 17) or not (head.startswith("[") and head.endswith("] ")):
        raise _NoMatch
    method, path, protocol = _request_line(parts[1])
    vals: tuple[object, ...]
    if n == 15 or n == 17:  # Istio; 17 = with the 1.6-era quoted mixer status
        off = 2 if n == 17 else 0
        a = parts[2].split()
        b = parts[4 + off].split()
        c = parts[14 + off].split()
        if n == 17:
            if len(a) != 2 or parts[4] != " ":
                raise _NoMatch
            a.extend((_DASH, _DASH))
        if len(a) < 4 or len(b) != 4 or len(c) < 6:
            raise _NoMatch
        if len(a) > 4:  # termination details with spaces
            a[3] = " ".join(a[3:])
        sep = parts[6 + off : 13 + off : 2]
        if sep != [" ", " ", " ", " "]:
            raise _NoMatch
        vals = (
            head[1:-2], method, path, protocol, _num(a[0]), a[1], a[2], a[3],
            parts[3 + off], _num(b[0]), _num(b[1]), _num(b[2]), _num(b[3]), parts[5 + off],
            parts[7 + off], parts[9 + off], parts[11 + off], parts[13 + off],
            c[0], c[1], c[2], c[3], c[4], c[5],
        )  # fmt: skip
        fmt: LogFormat = "istio_text"
        keys: tuple[str, ...] = _ISTIO_KEYS
    elif n == 13:
        a = parts[2].split()
        if len(a) != 6 or parts[4:11:2] != [" ", " ", " ", " "] or parts[12].strip():
            raise _NoMatch
        vals = (
            head[1:-2], method, path, protocol, _num(a[0]), a[1], _num(a[2]), _num(a[3]),
            _num(a[4]), _num(a[5]), parts[3], parts[5], parts[7], parts[9], parts[11],
        )  # fmt: skip
        fmt, keys = "envoy_text", _ENVOY_KEYS
    else:
        raise _NoMatch
    fields = cast(
        AccessFields, {k: v for k, v in zip(keys, vals, strict=True) if v != _DASH and v != ""}
    )
    _enrich(fields)
    return fmt, fields


def _parse_apache(line: str) -> tuple[LogFormat, AccessFields]:
    m = _APACHE.match(line)
    if m is None:
        raise _NoMatch
    addr, cid, user, ts, method, uri, version, status, size, _referer, agent = m.groups()
    f: dict[str, object] = {
        "downstream_remote_address": addr,
        "start_time": ts,
        "method": method,
        "protocol": version,
        "response_code": int(status),
    }
    _set_uri(f, uri)
    if cid != _DASH:
        f["source_principal"] = cid
    if user != _DASH:
        f["user_id"] = user
    if size and size != _DASH:
        f["bytes_sent"] = int(size)
    if agent and agent != _DASH:
        f["user_agent"] = agent
    fields = cast(AccessFields, f)
    _enrich(fields)
    return "linkerd_apache", fields


_LINKERD: Final = {
    "client.addr": "downstream_remote_address", "client.id": "source_principal",
    "host": "authority", "method": "method", "version": "protocol", "timestamp": "start_time",
    "user_agent": "user_agent", "status": "response_code", "request_bytes": "bytes_received",
    "response_bytes": "bytes_sent",
}  # fmt: skip


def _parse_linkerd_json(d: Mapping[str, object]) -> AccessFields:
    f: dict[str, object] = {}
    for src, dst in _LINKERD.items():
        v = _to_int(d.get(src)) if dst in _INT_FIELDS else _to_str(d.get(src))
        if v is not None:
            f[dst] = v
    total = _to_int(d.get("total_ns"))
    if total is not None:
        f["duration_ms"] = total // 1_000_000
    uri = _to_str(d.get("uri"))
    if uri is not None:
        _set_uri(f, uri)
    fields = cast(AccessFields, f)
    _enrich(fields)
    return fields


def _from_mapping(d: Mapping[str, object]) -> tuple[LogFormat, AccessFields]:
    if "client.addr" in d or "client.id" in d or ("total_ns" in d and "uri" in d):
        return "linkerd_json", _parse_linkerd_json(d)
    fields = _map_names(d, None, lower=True)
    return ("json", fields) if fields else ("unknown", fields)


def parse_body(body: str | Mapping[str, object]) -> tuple[LogFormat, AccessFields]:
    """Recognise an access-log body and extract its facts; never raises.

    ``body`` is the record's string body, or its kvlist body flattened to a dict. Returns the
    detected format and the facts; ``("unknown", {})`` when nothing is recognised (the caller
    keeps the raw body). Numbers come back as ints, "-" and empty values are left out.

    >>> parse_body('{"method": "GET", "response_code": 200, "duration": 4, "path": "-"}')
    ('json', {'method': 'GET', 'response_code': 200, 'duration_ms': 4})
    """
    if not isinstance(body, str):
        try:
            return _from_mapping(body)
        except (TypeError, AttributeError):
            return "unknown", {}
    return parse_line(body)


def parse_line(body: str) -> tuple[LogFormat, AccessFields]:
    """:func:`parse_body` for a string body, with the common Istio line tried first."""
    if body[:1] == "[":
        parts = body.split('"')
        if len(parts) == 15:
            fast = _istio_fast(parts)
            if fast is not None:
                return "istio_text", fast
    line = body.lstrip()
    if not line:
        return "unknown", {}
    try:
        first = line[0]
        if first == "[":
            return _parse_text(line)
        if first == "{":
            obj = orjson.loads(line)
            if isinstance(obj, dict):
                return _from_mapping(obj)
            return "unknown", {}
        return _parse_apache(line)
    except (_NoMatch, orjson.JSONDecodeError):
        return "unknown", {}


def fields_from_attributes(
    attrs: Mapping[str, object], inbound: bool | None = None
) -> AccessFields:
    """Facts carried by a record's (flattened) attributes; never raises.

    Accepts Envoy command operators in snake case, Istio attribute names, labels such as
    ``peer_principal``, Envoy span tags and OTel HTTP semconv names. Values may be strings even
    when numeric. A bare ``namespace`` label names the reporting proxy's own namespace: the
    destination's on an inbound sidecar, the source's on an outbound one. The direction comes
    from an ``upstream_cluster`` attribute, else from the ``inbound`` hint (True = inbound, e.g.
    taken from the body's cluster); the label is ignored when neither tells.

    >>> fields_from_attributes({"response_code": "403", "peer_principal": "spiffe://td/ns/a/sa/b"})
    {'response_code': 403, 'source_principal': 'spiffe://td/ns/a/sa/b', 'source_namespace': 'a'}
    """
    cluster = attrs.get("upstream_cluster")
    if isinstance(cluster, str):
        direction = direction_of_cluster(cluster)
        if direction is not None:
            inbound = direction
    return _map_names(attrs, inbound, lower=False)


def direction_of_cluster(cluster: str) -> bool | None:
    """True for an Istio inbound cluster, False for outbound, None when not telling."""
    if cluster.startswith("inbound"):
        return True
    if cluster.startswith("outbound"):
        return False
    return None


def split_attributes(
    attrs: Mapping[str, V], inbound: bool | None = None
) -> tuple[AccessFields, dict[str, V]]:
    """(:func:`fields_from_attributes`, the attributes those facts do not repeat); never raises.

    An attribute is left out of the second dict only when its value can be read back from the
    facts exactly: its name maps to a fact by rename and the fact holds the same value (the same
    string, or for a numeric fact the same int or its decimal text). Everything else stays as it
    came: names that are not facts (``node_id``, ``istio.canonical_service``), names that need
    more than a rename (``url.full``, ``namespace``), "-" and empty values, non-string values a
    fact only summarises (arrays), and a value a later alias of the same fact replaced.

    >>> split_attributes({"response_code": "403", "node_id": "sidecar~10.1.2.3~a.b~b.svc"})
    ({'response_code': 403}, {'node_id': 'sidecar~10.1.2.3~a.b~b.svc'})
    """
    cluster = attrs.get("upstream_cluster")
    if isinstance(cluster, str):
        direction = direction_of_cluster(cluster)
        if direction is not None:
            inbound = direction
    taken: list[tuple[str, str, object]] = []
    fields = _map_names(attrs, inbound, lower=False, taken=taken)
    rest = dict(attrs)
    facts = cast(Mapping[str, object], fields)
    for key, name, value in taken:
        fact = facts.get(name)
        if (type(fact) is type(value) and fact == value) or (
            type(fact) is int and type(value) is str and str(fact) == value
        ):
            del rest[key]
    return fields, rest


def _map_names(
    d: Mapping[str, object],
    inbound: bool | None,
    *,
    lower: bool,
    taken: list[tuple[str, str, object]] | None = None,
) -> AccessFields:
    """Facts named in ``d``; ``taken`` (when given) collects (key, fact name, value) for every
    entry that became a fact by rename, for :func:`split_attributes`."""
    out: dict[str, object] = {}
    special: list[tuple[str, object]] = []
    for key, value in d.items():
        name = _NAMES.get(key)
        if name is None and lower:
            name = _NAMES.get(key.lower().replace("-", "_"))
        if name is None:
            if key in _SPECIAL:
                special.append((key, value))
            continue
        v: str | int | None
        if name in _INT_FIELDS:
            v = _to_int(value)
        elif type(value) is str:  # the common case, without a call
            v = value if value and value != "-" else None
        else:
            v = _to_str(value)
        if v is not None:
            out[name] = v
            if taken is not None:
                taken.append((key, name, value))
    for key, value in special:
        _apply_special(out, key, value, inbound)
    fields = cast(AccessFields, out)
    _enrich(fields)
    return fields


def _apply_special(out: dict[str, object], key: str, value: object, inbound: bool | None) -> None:
    s = _to_str(value)
    if s is None:
        return
    if key in ("url.full", "http.url"):
        _set_uri(out, s)
    elif key == "url.query":
        path = out.get("path")
        if isinstance(path, str) and "?" not in path:
            out["path"] = f"{path}?{s}"
    elif key in ("network.protocol.version", "http.flavor"):
        out.setdefault("protocol", s if s.upper().startswith("HTTP") else f"HTTP/{s}")
    elif key == "server.address":
        out.setdefault("authority", s)
    elif key == "namespace" and inbound is not None:
        out.setdefault("destination_namespace" if inbound else "source_namespace", s)
    elif key == "destination.service.host":
        svc, ns = _service_from_host(s)
        if svc is not None:
            out.setdefault("destination_service", svc)
            if ns is not None:
                out.setdefault("destination_namespace", ns)


def _set_uri(out: dict[str, object], uri: str) -> None:
    """path (with query) from an absolute or origin-form URI; authority if not known yet."""
    scheme_end = uri.find("://")
    if scheme_end < 0:
        out.setdefault("path", uri)
        return
    rest = uri[scheme_end + 3 :]
    slash = rest.find("/")
    authority, path = (rest, "/") if slash < 0 else (rest[:slash], rest[slash:])
    out.setdefault("path", path)
    if authority:
        out.setdefault("authority", authority)


def _to_int(v: object) -> int | None:
    if type(v) is int:
        return v
    if isinstance(v, str):
        try:
            return int(v)
        except ValueError:
            try:
                f = float(v)
            except ValueError:
                return None
            return int(f) if f == f and f not in (float("inf"), float("-inf")) else None
    if isinstance(v, float) and v == v and v not in (float("inf"), float("-inf")):
        return int(v)
    return None


def _to_str(v: object) -> str | None:
    if isinstance(v, str):
        return v if v and v != _DASH else None
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return str(v)
    if isinstance(v, list) and v:
        return _to_str(v[0])  # semconv header attributes are string arrays
    return None


def _enrich(f: AccessFields) -> None:
    """Fill identity that the other facts imply, never overwriting stated facts."""
    if "destination_service" not in f:
        svc: str | None = None
        ns: str | None = None
        cluster = f.get("upstream_cluster")
        if cluster:
            svc, ns = service_from_cluster(cluster)
        if svc is None:
            sni = f.get("requested_server_name")
            if sni:
                svc, ns = service_from_cluster(sni)
        if svc is None:
            # a Host header naming a Kubernetes service FQDN (Linkerd, gateways)
            host = f.get("authority")
            if host and ".svc" in host:
                hs, hn = _service_from_host(host.rsplit(":", 1)[0])
                if hn is not None:
                    svc, ns = hs, hn
        if svc is not None:
            f["destination_service"] = svc
            if ns is not None and "destination_namespace" not in f:
                f["destination_namespace"] = ns
    if "source_namespace" not in f:
        p = f.get("source_principal")
        if p:
            ns = namespace_from_principal(p)
            if ns is not None:
                f["source_namespace"] = ns
    if "destination_namespace" not in f:
        p = f.get("destination_principal")
        if p:
            ns = namespace_from_principal(p)
            if ns is not None:
                f["destination_namespace"] = ns


@lru_cache(maxsize=4096)
def service_from_cluster(cluster: str) -> tuple[str | None, str | None]:
    """(service, namespace) named by an Istio cluster name or SNI, else (None, None).

    Understands ``direction|port|subset|host`` (``%UPSTREAM_CLUSTER_RAW%``) and the
    ``direction_.port_.subset_.host`` alt-stat / SNI form. Kubernetes hosts
    (``name.ns.svc.<domain>``) give both parts; other hosts (ServiceEntry, egress) give the host
    as the service and no namespace. Clusters without a host (``inbound|8000||``,
    ``PassthroughCluster``, plain Envoy cluster names) give (None, None).

    >>> service_from_cluster("outbound|9080||reviews.default.svc.cluster.local")
    ('reviews', 'default')
    >>> service_from_cluster("outbound_.9080_._.httpbin.foo.svc.cluster.local")
    ('httpbin', 'foo')
    >>> service_from_cluster("inbound|8000||")
    (None, None)
    """
    if cluster.startswith(("outbound|", "inbound|")):
        parts = cluster.split("|", 3)
    elif cluster.startswith(("outbound_.", "inbound_.")):
        parts = cluster.split("_.", 3)
    else:
        return None, None
    if len(parts) != 4 or not parts[3]:
        return None, None
    return _service_from_host(parts[3])


def _service_from_host(host: str) -> tuple[str | None, str | None]:
    labels = host.split(".")
    if len(labels) >= 3 and labels[2] == "svc" and labels[0] and labels[1]:
        return labels[0], labels[1]
    if "." not in host or "*" in host:
        return None, None
    return host, None


@lru_cache(maxsize=4096)
def namespace_from_principal(principal: str) -> str | None:
    """Namespace of a workload identity, or None.

    SPIFFE ids ``spiffe://<td>/ns/<ns>/sa/<sa>`` and Linkerd identities
    ``<sa>.<ns>.serviceaccount.identity.<control-plane-ns>.<trust-domain>``.

    >>> namespace_from_principal("spiffe://cluster.local/ns/starfleet/sa/probe")
    'starfleet'
    >>> namespace_from_principal("web.emojivoto.serviceaccount.identity.linkerd.cluster.local")
    'emojivoto'
    """
    if principal.startswith("spiffe://"):
        segs = principal[9:].split("/")
        for i in range(1, len(segs) - 1):
            if segs[i] == "ns" and segs[i + 1]:
                return segs[i + 1]
        return None
    labels = principal.split(".")
    if len(labels) >= 4 and labels[2] == "serviceaccount" and labels[1]:
        return labels[1]
    return None
