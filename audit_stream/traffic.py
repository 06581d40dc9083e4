"""Realistic mesh traffic, as Istio sidecars export it: access logs and server spans over OTLP.

Used by ``audit-stream generate`` (load against any receiver), the local demo, tests and benches.
Pure: builds protobuf requests from a seeded random generator; sending is the caller's business.

Each :class:`MeshRequest` is one service-to-service call seen by the callee's sidecar: an access log
whose body is Istio's default text line (with ``logFormat.labels``-style attributes carrying the
caller's SPIFFE id and, when present, the end user) and a SERVER span with Envoy's string tags.

Example::

    >>> rng = random.Random(1)
    >>> reqs = make_requests(rng, 3, now_ns=1_800_000_000_000_000_000)
    >>> logs_request(reqs).resource_logs[0].scope_logs[0].log_records[0].body.string_value[:1]
    '['
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

__all__ = [
    "SERVICES",
    "MeshRequest",
    "Mix",
    "logs_request",
    "make_requests",
    "spans_request",
    "without_logs",
]

# (namespace, service, port, paths)
SERVICES: tuple[tuple[str, str, int, tuple[str, ...]], ...] = (
    ("bookinfo", "productpage", 9080, ("/productpage", "/api/v1/products", "/login")),
    ("bookinfo", "reviews", 9080, ("/reviews/{n}", "/health")),
    ("bookinfo", "ratings", 9080, ("/ratings/{n}",)),
    ("payments", "checkout", 8080, ("/pay", "/pay/confirm", "/api/charges/{n}")),
    ("ops", "admin", 8443, ("/admin/users", "/admin/config")),
)
USER_AGENTS = ("Envoy/HC", "grpc-go/1.64.0", "python-requests/2.32.3", "curl/8.11.1")
USERS = ("alice@example.com", "bob@example.com", "svc-batch")
_OUTCOMES = (
    (200, "via_upstream"),
    (200, "via_upstream"),
    (201, "via_upstream"),
    (404, "via_upstream"),
    (503, "upstream_reset_before_response_started{connection_termination}"),
)


@dataclass(frozen=True, slots=True)
class Mix:
    """Shares of special requests (the rest are plain allowed calls with both halves)."""

    denied: float = 0.1  # RBAC denial: 403 rbac_access_denied_matched_policy[...]
    no_trace: float = 0.05  # tracing off: a log without trace context, never joined
    with_user: float = 0.2  # an end-user identity (request.auth.principal)
    with_secret: float = 0.05  # a token in the query string (must be redacted)
    span_only: float = 0.02  # the access log never arrives


@dataclass(frozen=True, slots=True)
class MeshRequest:
    trace_id: bytes  # b"" when tracing was off
    span_id: bytes
    request_id: str
    method: str
    path: str
    status: int
    details: str
    source_ns: str
    source_sa: str
    dest_ns: str
    dest_service: str
    port: int
    user: str | None
    start_ns: int
    duration_ms: int
    src_addr: str
    dst_addr: str
    user_agent: str
    log: bool = True  # False: only the span is exported (span_only)

    @property
    def denied(self) -> bool:
        return self.status == 403

    @property
    def source_principal(self) -> str:
        return f"spiffe://cluster.local/ns/{self.source_ns}/sa/{self.source_sa}"


def make_requests(
    rng: random.Random, n: int, now_ns: int, mix: Mix | None = None, spread_ms: int = 1000
) -> list[MeshRequest]:
    """``n`` requests starting within ``spread_ms`` before ``now_ns``."""
    mix = mix or Mix()
    out: list[MeshRequest] = []
    for _ in range(n):
        src_ns, src_svc, _, _ = rng.choice(SERVICES)
        dst_ns, dst_svc, port, paths = rng.choice(SERVICES)
        path = rng.choice(paths).replace("{n}", str(rng.randrange(1000)))
        roll = rng.random()
        status, details = rng.choice(_OUTCOMES)
        method = (
            "POST" if path.startswith(("/pay", "/login")) else rng.choice(("GET", "GET", "PUT"))
        )
        if roll < mix.denied:
            status = 403
            details = rng.choice(
                (
                    "rbac_access_denied_matched_policy[none]",
                    f"rbac_access_denied_matched_policy[ns[{dst_ns}]-policy[deny-external]-rule[0]]",
                )
            )
        if rng.random() < mix.with_secret:
            path += f"?access_token=tok-{rng.getrandbits(64):016x}&page=2"
        traced = rng.random() >= mix.no_trace
        out.append(
            MeshRequest(
                trace_id=rng.randbytes(16) if traced else b"",
                span_id=rng.randbytes(8) if traced else b"",
                request_id=f"{rng.getrandbits(128):032x}",
                method=method,
                path=path,
                status=status,
                details=details,
                source_ns=src_ns,
                source_sa=src_svc,
                dest_ns=dst_ns,
                dest_service=dst_svc,
                port=port,
                user=rng.choice(USERS) if rng.random() < mix.with_user else None,
                start_ns=now_ns - rng.randrange(spread_ms) * 1_000_000,
                duration_ms=rng.randrange(1, 40),
                src_addr=f"10.244.{rng.randrange(8)}.{rng.randrange(2, 250)}:{rng.randrange(30000, 60000)}",
                dst_addr=f"10.244.{rng.randrange(8)}.{rng.randrange(2, 250)}:{port}",
                user_agent=rng.choice(USER_AGENTS),
                log=not (traced and rng.random() < mix.span_only),
            )
        )
    return out


def _kv(key: str, value: str) -> KeyValue:
    kv = KeyValue(key=key)
    kv.value.string_value = value
    return kv


def _istio_line(r: MeshRequest) -> str:
    start = datetime.fromtimestamp(r.start_ns / 1e9, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
    fqdn = f"{r.dest_service}.{r.dest_ns}.svc.cluster.local"
    upstream = '"-"' if r.denied else f'"{r.dst_addr}"'  # a denied call never reached upstream
    return (
        f'[{start}Z] "{r.method} {r.path} HTTP/1.1" {r.status} - {r.details} - "-" '
        f'0 {120 + r.duration_ms} {r.duration_ms} {"-" if r.denied else r.duration_ms - 1} "-" '
        f'"{r.user_agent}" "{r.request_id}" "{r.dest_service}:{r.port}" {upstream} '
        f"inbound|{r.port}|| 127.0.0.6:{r.port + 30000} {r.dst_addr} {r.src_addr} "
        f"outbound_.{r.port}_._.{fqdn} default\n"
    )


def logs_request(reqs: Sequence[MeshRequest]) -> ExportLogsServiceRequest:
    """One export request with an access log per request that has one (grouped per callee)."""
    req = ExportLogsServiceRequest()
    by_service: dict[tuple[str, str], list[MeshRequest]] = {}
    for r in reqs:
        if r.log:
            by_service.setdefault((r.dest_ns, r.dest_service), []).append(r)
    for (ns, svc), group in by_service.items():
        rl = req.resource_logs.add()
        rl.resource.attributes.extend(
            [_kv("service.name", f"{svc}.{ns}"), _kv("k8s.namespace.name", ns)]
        )
        sl = rl.scope_logs.add()
        sl.scope.name = "envoy.access_loggers.open_telemetry"
        for r in group:
            rec = sl.log_records.add(
                time_unix_nano=r.start_ns,
                observed_time_unix_nano=r.start_ns + r.duration_ms * 1_000_000,
                trace_id=r.trace_id,
                span_id=r.span_id,
            )
            rec.body.string_value = _istio_line(r)
            attrs = [_kv("peer_principal", r.source_principal), _kv("namespace", ns)]
            if r.user:
                attrs.append(_kv("request.auth.principal", r.user))
            rec.attributes.extend(attrs)
    return req


def spans_request(reqs: Sequence[MeshRequest]) -> ExportTraceServiceRequest:
    """One export request with the callee sidecar's SERVER span per traced request."""
    req = ExportTraceServiceRequest()
    by_service: dict[tuple[str, str], list[MeshRequest]] = {}
    for r in reqs:
        if r.trace_id:
            by_service.setdefault((r.dest_ns, r.dest_service), []).append(r)
    for (ns, svc), group in by_service.items():
        rs = req.resource_spans.add()
        rs.resource.attributes.extend(
            [_kv("service.name", f"{svc}.{ns}"), _kv("telemetry.sdk.name", "envoy")]
        )
        ss = rs.scope_spans.add()
        ss.scope.name = "envoy"
        for r in group:
            span = ss.spans.add(
                trace_id=r.trace_id,
                span_id=r.span_id,
                name=f"{svc}.{ns}.svc.cluster.local:{r.port}/*",
                kind=Span.SPAN_KIND_SERVER,
                start_time_unix_nano=r.start_ns,
                end_time_unix_nano=r.start_ns + r.duration_ms * 1_000_000,
            )
            span.attributes.extend(
                [
                    _kv(
                        "node_id",
                        f"sidecar~{r.dst_addr.split(':')[0]}~{svc}-v1-abc.{ns}~{ns}.svc.cluster.local",
                    ),
                    _kv("guid:x-request-id", r.request_id),
                    _kv("http.url", f"http://{svc}.{ns}:{r.port}{r.path}"),
                    _kv("http.method", r.method),
                    _kv("http.protocol", "HTTP/1.1"),
                    _kv("http.status_code", str(r.status)),
                    _kv("response_flags", "-"),
                    _kv("upstream_cluster", f"inbound|{r.port}||"),
                    _kv("istio.canonical_service", svc),
                    _kv("istio.namespace", ns),
                    _kv("peer.address", r.src_addr.split(":")[0]),
                    _kv("user_agent", r.user_agent),
                ]
            )
    return req


def without_logs(reqs: Sequence[MeshRequest]) -> list[MeshRequest]:
    """The same requests with the access logs withheld (to send spans first)."""
    return [replace(r, log=False) for r in reqs]
