"""Record types that travel between the stages, mirroring the JSON Schemas in ``schemas/``.

Records are plain dicts (they are produced and parsed with orjson on the hot path); these
TypedDicts give them names and let mypy check the code that builds and reads them.

``AccessFields`` is the one vocabulary for "what happened on this request", shared by access logs
and spans so the join can merge the two halves key by key (the log's value wins). Names follow
Envoy's command operators in snake case; identity fields take the names of the roles they play.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, Literal, NotRequired, TypedDict, TypeVar

Scalar = str | int | float | bool | None
Attributes = dict[str, Scalar | list[Scalar] | dict[str, object]]

LogFormat = Literal[
    "istio_text",  # Istio's default access-log line (old %UPSTREAM_CLUSTER% or new _RAW variant)
    "envoy_text",  # Envoy's own default line (no Istio-specific trailing fields)
    "json",  # a JSON / kvlist body with Istio's JSON keys or Envoy operator names
    "linkerd_json",  # Linkerd proxy access log, json format
    "linkerd_apache",  # Linkerd proxy access log, apache format
    "attributes",  # no parseable body; facts came from the record's attributes only
    "unknown",  # nothing recognised: body kept raw in ``body``, never dropped
]

SpanKind = Literal["unspecified", "internal", "server", "client", "producer", "consumer"]


class AccessFields(TypedDict, total=False):
    """Facts about one proxied request. Every key is optional: absent means unknown."""

    start_time: str  # as the proxy printed it (RFC 3339)
    method: str
    path: str  # path with query string, as seen by the proxy
    protocol: str  # HTTP/1.1, HTTP/2, ...
    response_code: int
    response_flags: str  # Envoy flags, "-" normalised to absent
    # e.g. rbac_access_denied_matched_policy[ns[foo]-policy[deny-all]-rule[0]]
    response_code_details: str
    connection_termination_details: str
    upstream_transport_failure_reason: str
    bytes_received: int
    bytes_sent: int
    duration_ms: int
    upstream_service_time_ms: int
    x_forwarded_for: str
    user_agent: str
    request_id: str  # x-request-id; equals the span tag guid:x-request-id of the same hop
    authority: str  # :authority / Host
    upstream_host: str
    upstream_cluster: str  # e.g. outbound|9080||reviews.default.svc.cluster.local
    upstream_local_address: str
    downstream_local_address: str
    downstream_remote_address: str
    requested_server_name: str
    route_name: str
    grpc_status: str
    # identity: who called whom
    source_principal: str  # SPIFFE id of the caller (DOWNSTREAM_PEER_URI_SAN, source.principal)
    source_workload: str
    source_namespace: str
    source_service: str
    destination_principal: str  # SPIFFE id of the callee (DOWNSTREAM_LOCAL_URI_SAN)
    destination_workload: str
    destination_namespace: str
    destination_service: str
    user_id: str  # end-user identity (request.auth.principal, JWT subject, ...)
    authorization: str  # raw Authorization header when an operator logged it (redacted downstream)


class MeshLog(TypedDict):
    """One access-log record, as published to ``mesh.logs`` (``schemas/mesh_log.v1.json``)."""

    id: str  # 32 lowercase hex: deterministic digest of the OTLP record, so retries share it
    time_unix_nano: int
    observed_time_unix_nano: NotRequired[int]
    trace_id: str | None  # 32 lowercase hex, None when the proxy had no trace context
    span_id: str | None  # 16 lowercase hex
    correlatable: bool  # False when trace_id is None: published at once as log_only
    format: LogFormat
    fields: AccessFields
    severity: NotRequired[str]
    # the record's own attributes, less those ``fields`` repeats (same fact, same value)
    attributes: Attributes
    resource: Attributes  # resource attributes of the batch the record came in
    scope: NotRequired[dict[str, str]]  # instrumentation scope name / version
    body: NotRequired[str]  # the raw body, kept only when format is "unknown"


class MeshSpan(TypedDict):
    """One span, as published to ``mesh.spans`` (``schemas/mesh_span.v1.json``)."""

    id: str
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    kind: SpanKind
    start_time_unix_nano: int
    end_time_unix_nano: int
    status_code: Literal["unset", "ok", "error"]
    status_message: NotRequired[str]
    request: bool  # server/client span with HTTP or gRPC facts: audited as span_only if unmatched
    fields: AccessFields
    attributes: Attributes
    resource: Attributes
    scope: NotRequired[dict[str, str]]


Correlation = Literal["joined", "log_only", "span_only"]
Decision = Literal["allow", "deny", "unknown"]


class Workload(TypedDict, total=False):
    principal: str
    service: str
    namespace: str
    address: str
    host: str
    cluster: str


class AuditEvent(TypedDict):
    """One audited request (``schemas/audit_event.v1.json``). Missing facts are absent."""

    schema: Literal["audit_event.v1"]
    event_id: str  # the log record's id (or the span's for span_only): replays repeat it
    time: str  # RFC 3339 UTC with nanoseconds, request start
    time_unix_nano: int
    correlation: Correlation
    source: Workload
    destination: Workload
    request: dict[str, str]  # method, path, protocol, user_agent, request_id, authority
    response: dict[str, int | str]  # status_code, flags, details, duration_ms
    authorization: dict[str, str]  # decision, policy, reason
    user: dict[str, str]  # id
    trace: dict[str, str]  # trace_id, span_id
    mesh: dict[str, str]  # proxy (envoy/linkerd), kind (sidecar/gateway/...)
    retention: NotRequired[dict[str, object]]  # class, days, expires_at, legal_hold, rule


R = TypeVar("R", MeshLog, MeshSpan)


# A plain (interpreted) class on purpose: the decoder may be compiled (setup.py), and a generic
# dataclass cannot be a compiled class.
@dataclass(frozen=True, slots=True)
class DecodedBatch(Generic[R]):
    """Result of decoding one OTLP export request."""

    records: list[R]
    rejected: int
    reasons: list[str]  # first few distinct rejection reasons, for partial_success
