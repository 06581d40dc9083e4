"""build_event (audit_stream.join.event) and the access decision table (audit_stream.join.authz)."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from audit_stream.join.authz import decide
from audit_stream.join.event import build_event, format_time, request_event_id
from audit_stream.models.records import AccessFields, AuditEvent, MeshLog, MeshSpan
from audit_stream.receiver.decode import (
    decode_logs,
    decode_spans,
    parse_logs_request,
    parse_traces_request,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
NOW = 1_800_000_000_000_000_000
JSON = "application/json"

_SCHEMA = json.loads((ROOT / "schemas" / "audit_event.v1.json").read_text())
jsonschema.Draft202012Validator.check_schema(_SCHEMA)
VALIDATOR = jsonschema.Draft202012Validator(_SCHEMA)


def valid(event: AuditEvent) -> AuditEvent:
    errors = [e.message for e in VALIDATOR.iter_errors(event)]
    assert not errors, errors
    return event


def fixture_log(name: str) -> MeshLog:
    batch = decode_logs(parse_logs_request((FIXTURES / name).read_bytes(), JSON), NOW)
    assert batch.rejected == 0 and len(batch.records) == 1
    return batch.records[0]


def fixture_span() -> MeshSpan:
    body = (FIXTURES / "istio_sidecar_span.json").read_bytes()
    batch = decode_spans(parse_traces_request(body, JSON), NOW)
    assert batch.rejected == 0 and len(batch.records) == 1
    return batch.records[0]


# -- build_event on decoded fixture records ------------------------------------------------------


def test_istio_default_log_only() -> None:
    log = fixture_log("istio_default_als_log.json")
    ev = valid(build_event(log, None, "log_only"))
    assert log["trace_id"] is not None and log["span_id"] is not None
    assert ev["event_id"] == request_event_id(log["trace_id"], log["span_id"])
    assert ev["correlation"] == "log_only"
    assert ev["time"] == "2020-11-25T21:26:18.409000000Z"
    assert ev["time_unix_nano"] == 1_606_339_578_409_000_000
    assert ev["source"] == {"address": "10.44.1.23:37652"}
    assert ev["destination"] == {
        "service": "httpbin",
        "namespace": "foo",
        "host": "httpbin:8000",
        "address": "127.0.0.1:80",
        "cluster": "inbound|8000||",
    }
    assert ev["request"] == {
        "method": "GET",
        "path": "/status/418",
        "protocol": "HTTP/1.1",
        "user_agent": "curl/7.73.0-DEV",
        "request_id": "84961386-6d84-929d-98bd-c5aee93b5c88",
        "authority": "httpbin:8000",
    }
    assert ev["response"] == {"status_code": 418, "details": "via_upstream", "duration_ms": 3}
    assert ev["authorization"] == {"decision": "allow", "reason": "upstream responded 418"}
    assert ev["trace"] == {
        "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174",
    }
    assert ev["mesh"] == {"correlation": "log_only", "proxy": "envoy"}
    assert ev["user"] == {}


def test_rbac_denial_log_names_no_policy_and_the_callers_identity() -> None:
    log = fixture_log("istio_labels_rbac_deny_log.json")
    ev = valid(build_event(log, None, "log_only"))
    assert ev["time"] == "2026-10-09T07:54:53.132000000Z"
    assert ev["authorization"]["decision"] == "deny"
    assert "policy" not in ev["authorization"]
    assert "ALLOW policy" in ev["authorization"]["reason"]
    assert ev["source"] == {
        "principal": "spiffe://cluster.local/ns/starfleet/sa/probe",
        "namespace": "starfleet",
        "address": "10.244.0.11:37238",
    }
    # No upstream host on an inbound denial: the address is the one the request reached.
    assert ev["destination"]["address"] == "10.244.0.10:9080"
    assert ev["destination"]["service"] == "scout"
    assert ev["response"]["details"] == "rbac_access_denied_matched_policy[none]"


def test_log_without_trace_context_has_an_empty_trace() -> None:
    log = fixture_log("envoy_builtin_labels_log.json")
    ev = valid(build_event(log, None, "log_only"))
    assert ev["trace"] == {}
    assert ev["mesh"]["proxy"] == "envoy"
    assert "kind" not in ev["mesh"]  # node_name is empty in this fixture
    assert ev["destination"]["cluster"] == "orders_cluster"
    assert "service" not in ev["destination"]  # a plain Envoy cluster name states no service


def test_span_only_uses_the_hop_id_start_time_and_duration() -> None:
    span = fixture_span()
    ev = valid(build_event(None, span, "span_only"))
    assert ev["event_id"] == request_event_id(span["trace_id"], span["span_id"])
    assert ev["event_id"] != span["id"]  # the record's id would change when it is re-exported
    assert ev["time_unix_nano"] == span["start_time_unix_nano"]
    assert ev["time"] == "2025-04-21T07:33:59.492363000Z"
    assert ev["response"] == {"status_code": 200, "duration_ms": 442}
    assert ev["destination"]["service"] == "ratings"
    assert ev["destination"]["namespace"] == "bookinfo"
    assert ev["source"]["service"] == "reviews"
    assert ev["mesh"] == {"correlation": "span_only", "proxy": "envoy", "kind": "sidecar"}
    assert ev["trace"] == {"trace_id": span["trace_id"], "span_id": span["span_id"]}


def test_joined_event_has_the_hop_id_and_lets_the_log_win() -> None:
    log = fixture_log("istio_labels_rbac_deny_log.json")
    span = copy.deepcopy(fixture_span())
    assert log["trace_id"] is not None and log["span_id"] is not None
    span["trace_id"], span["span_id"] = log["trace_id"], log["span_id"]
    span["fields"]["user_id"] = "alice@example.com"
    ev = valid(build_event(log, span, "joined"))
    assert ev["event_id"] == request_event_id(log["trace_id"], log["span_id"])
    assert ev["time"] == "2026-10-09T07:54:53.132000000Z"  # the log's time, not the span's
    assert ev["response"]["status_code"] == 403  # the log's 403 over the span's 200
    assert ev["request"]["path"] == "/reviews/0"
    assert ev["response"]["duration_ms"] == 0  # a logged 0 is a fact, not a gap to fill
    assert ev["authorization"]["decision"] == "deny"
    assert ev["user"] == {"id": "alice@example.com"}  # a fact only the span had
    assert ev["source"]["service"] == "reviews"
    assert ev["mesh"] == {"correlation": "joined", "proxy": "envoy", "kind": "sidecar"}
    assert ev["trace"]["span_id"] == log["span_id"]
    # The inputs are not modified.
    assert span["fields"]["response_code"] == 200
    assert "user_id" not in log["fields"]


# -- event ids ------------------------------------------------------------------------------------


def test_a_request_has_one_event_id_whichever_halves_produce_its_event() -> None:
    # After a crash the join may publish a request again as log_only (span lost), joined, or
    # span_only (log committed before the crash): consumers can only dedupe if all agree.
    log = fixture_log("istio_default_als_log.json")
    span = copy.deepcopy(fixture_span())
    assert log["trace_id"] is not None and log["span_id"] is not None
    span["trace_id"], span["span_id"] = log["trace_id"], log["span_id"]
    assert span["id"] != log["id"]
    joined = valid(build_event(log, span, "joined"))
    alone = valid(build_event(log, None, "log_only"))
    span_only = valid(build_event(None, span, "span_only"))
    assert joined["event_id"] == alone["event_id"] == span_only["event_id"]
    # The same span re-exported under another record id is the same hop.
    reexported = copy.deepcopy(span)
    reexported["id"] = "f" * 32
    assert build_event(None, reexported, "span_only")["event_id"] == span_only["event_id"]


def test_uncorrelatable_log_event_id_is_its_log_id() -> None:
    log = fixture_log("envoy_builtin_labels_log.json")
    assert log["trace_id"] is None and not log["correlatable"]
    assert valid(build_event(log, None, "log_only"))["event_id"] == log["id"]
    synthetic = make_log({})
    assert build_event(synthetic, None, "log_only")["event_id"] == synthetic["id"]


def test_log_with_a_trace_id_but_no_span_id_keeps_its_log_id() -> None:
    # Not a hop: two such logs of one trace are different requests and must not share an id.
    trace_id = "5b8efff798038103d269b633813fc60c"
    a = make_log({}, trace_id=trace_id, correlatable=True)
    b = make_log({}, trace_id=trace_id, correlatable=True, id="fedcba9876543210fedcba9876543210")
    ev_a = valid(build_event(a, None, "log_only"))
    assert ev_a["event_id"] == a["id"]
    assert build_event(b, None, "log_only")["event_id"] == b["id"]
    assert ev_a["trace"] == {"trace_id": trace_id}


def test_different_hops_get_different_event_ids() -> None:
    trace_a, trace_b = "5b8efff798038103d269b633813fc60c", "0af7651916cd43dd8448eb211c80319c"
    hops = [(trace_a, f"{n:016x}") for n in range(1, 200)]  # hops of one trace
    hops += [(trace_b, f"{n:016x}") for n in range(1, 200)]  # same span ids, another trace
    ids = {request_event_id(t, s) for t, s in hops}
    assert len(ids) == len(hops)
    # Joining the two ids with a separator keeps shifted boundaries apart.
    assert request_event_id("ab", "c") != request_event_id("a", "bc")
    # Events built from records agree with the ids.
    spans = []
    for trace_id, span_id in hops[:3] + hops[199:202]:
        span = copy.deepcopy(fixture_span())
        span["trace_id"], span["span_id"] = trace_id, span_id
        spans.append(build_event(None, span, "span_only")["event_id"])
    assert len(set(spans)) == 6


def test_request_event_id_is_a_stable_digest_of_the_hop() -> None:
    # The id is a published contract (consumers dedupe on it across releases): pin its definition
    # independently of the implementation.
    trace_id, span_id = "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174"
    expected = hashlib.blake2b(
        f"{trace_id}/{span_id}".encode(), digest_size=16, person=b"audit.event"
    ).hexdigest()
    assert request_event_id(trace_id, span_id) == expected
    assert len(expected) == 32 and expected == expected.lower()
    assert request_event_id(trace_id, span_id) == request_event_id(trace_id, span_id)


def make_log(fields: AccessFields, **extra: Any) -> MeshLog:
    log: MeshLog = {
        "id": "0123456789abcdef0123456789abcdef",
        "time_unix_nano": 1_700_000_000_000_000_001,
        "trace_id": None,
        "span_id": None,
        "correlatable": False,
        "format": "json",
        "fields": fields,
        "attributes": {},
        "resource": {},
    }
    log.update(extra)  # type: ignore[typeddict-item]
    return log


def test_missing_facts_are_absent_not_invented() -> None:
    ev = valid(build_event(make_log({}), None, "log_only"))
    assert ev["source"] == ev["destination"] == {}
    assert ev["request"] == ev["response"] == ev["user"] == ev["trace"] == {}
    assert ev["mesh"] == {"correlation": "log_only"}
    assert ev["authorization"]["decision"] == "unknown"
    assert ev["time"] == "2023-11-14T22:13:20.000000001Z"


def test_forwarded_for_is_not_taken_as_the_source_address() -> None:
    ev = build_event(make_log({"x_forwarded_for": "203.0.113.9, 10.0.0.1"}), None, "log_only")
    assert ev["source"] == {}


def test_namespaces_come_from_identities_but_services_do_not() -> None:
    fields: AccessFields = {
        "source_principal": "spiffe://td.example/ns/payments/sa/api",
        "destination_principal": "web.emojivoto.serviceaccount.identity.linkerd.cluster.local",
    }
    ev = valid(build_event(make_log(fields), None, "log_only"))
    assert ev["source"] == {
        "principal": "spiffe://td.example/ns/payments/sa/api",
        "namespace": "payments",
    }
    assert ev["destination"]["namespace"] == "emojivoto"
    assert "service" not in ev["destination"]


def test_stated_identity_is_not_overridden_by_names() -> None:
    fields: AccessFields = {
        "destination_service": "reviews",
        "destination_namespace": "prod",
        "upstream_cluster": "outbound|9080||ratings.staging.svc.cluster.local",
    }
    ev = build_event(make_log(fields), None, "log_only")
    assert ev["destination"]["service"] == "reviews"
    assert ev["destination"]["namespace"] == "prod"


def test_destination_from_cluster_when_not_stated() -> None:
    ev = build_event(
        make_log({"upstream_cluster": "outbound|9080|v3|ratings.bookinfo.svc.cluster.local"}),
        None,
        "log_only",
    )
    assert ev["destination"]["service"] == "ratings"
    assert ev["destination"]["namespace"] == "bookinfo"


@pytest.mark.parametrize(
    ("extra", "proxy", "kind"),
    [
        ({"format": "linkerd_json"}, "linkerd", None),
        ({"format": "linkerd_apache"}, "linkerd", None),
        ({"format": "envoy_text"}, "envoy", None),
        ({"resource": {"service.name": "linkerd-proxy"}}, "linkerd", None),
        ({"scope": {"name": "linkerd"}}, "linkerd", None),
        (
            {"resource": {"log_name": "x", "node_name": "router~10.1.1.1~gw-1.istio-system~x"}},
            "envoy",
            "gateway",
        ),
        (
            {"attributes": {"node_id": "waypoint~10.1.1.2~wp.ns~ns.svc.cluster.local"}},
            None,
            "waypoint",
        ),
        ({"attributes": {"node_id": "not-a-node-id"}}, None, None),
    ],
)
def test_mesh_proxy_and_kind(extra: dict[str, Any], proxy: str | None, kind: str | None) -> None:
    ev = valid(build_event(make_log({}, **extra), None, "log_only"))
    assert ev["mesh"].get("proxy") == proxy
    assert ev["mesh"].get("kind") == kind


def test_build_event_needs_a_record() -> None:
    with pytest.raises(ValueError, match="log or a span"):
        build_event(None, None, "joined")


@pytest.mark.parametrize(
    ("unix_nano", "text"),
    [
        (0, "1970-01-01T00:00:00.000000000Z"),
        (1, "1970-01-01T00:00:00.000000001Z"),
        (999_999_999, "1970-01-01T00:00:00.999999999Z"),
        (1_000_000_000, "1970-01-01T00:00:01.000000000Z"),
        (1_791_532_493_132_000_000, "2026-10-09T07:54:53.132000000Z"),
        (951_782_400_000_000_007, "2000-02-29T00:00:00.000000007Z"),
    ],
)
def test_format_time(unix_nano: int, text: str) -> None:
    assert format_time(unix_nano) == text


def test_format_time_across_seconds_does_not_reuse_a_stale_second() -> None:
    base = 1_791_532_493_000_000_000
    texts = [format_time(base + i * 400_000_000) for i in range(6)]
    assert [t[17:19] for t in texts] == ["53", "53", "53", "54", "54", "55"]
    assert format_time(base) == "2026-10-09T07:54:53.000000000Z"


# -- the access decision table --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "decision", "policy", "reason_part"),
    [
        ({"response_code": 403, "response_code_details": "rbac_access_denied_matched_policy[none]"},
         "deny", None, "ALLOW policy"),
        ({"response_code": 403, "response_code_details":
          "rbac_access_denied_matched_policy[ns[foo]-policy[deny-all]-rule[0]]"},
         "deny", "ns[foo]-policy[deny-all]-rule[0]", "DENY policy"),
        ({"response_code": 403, "response_code_details": "rbac_access_denied"},
         "deny", None, "rbac"),
        ({"connection_termination_details": "rbac_access_denied_matched_policy[tcp-deny]"},
         "deny", "tcp-deny", "DENY policy"),
        ({"response_code": 403, "response_code_details": "ext_authz_denied", "response_flags": "UAEX"},
         "deny", None, "external authorizer"),
        ({"response_code": 401, "response_flags": "UAEX"}, "deny", None, "UAEX"),
        ({"response_code": 403, "response_code_details": "ext_authz_error"},
         "deny", None, "fails closed"),
        ({"response_code": 500, "response_code_details": "ext_authz_invalid"},
         "deny", None, "invalid"),
        ({"response_code": 401, "response_code_details": "jwt_authn_access_denied{Jwt_is_expired}"},
         "deny", None, "Jwt_is_expired"),
        ({"response_code": 403, "response_code_details": "via_upstream"},
         "deny", None, "upstream responded 403"),
        ({"response_code": 401, "response_code_details": "via_upstream"},
         "deny", None, "upstream responded 401"),
        ({"response_code": 403}, "deny", None, "responded 403"),
        ({"response_code": 403, "response_code_details": "csrf_origin_mismatch"},
         "deny", None, "proxy responded 403 (csrf_origin_mismatch)"),
        ({"response_code": 200, "grpc_status": "PermissionDenied"},
         "deny", None, "PermissionDenied"),
        ({"response_code": 200, "grpc_status": "16"}, "deny", None, "Unauthenticated"),
        ({"response_code": 200, "response_code_details": "via_upstream", "grpc_status": "7"},
         "deny", None, "PermissionDenied"),
        ({"response_code": 200, "response_code_details": "via_upstream"},
         "allow", None, "upstream responded 200"),
        ({"response_code": 503, "response_code_details": "via_upstream", "response_flags": "UC"},
         "allow", None, "upstream responded 503"),
        ({"response_code": 503, "response_flags": "UH",
          "response_code_details": "no_healthy_upstream"}, "allow", None, "no denial"),
        ({"response_code": 404, "response_flags": "NR", "response_code_details": "route_not_found"},
         "allow", None, "no denial"),
        ({"response_code": 204}, "allow", None, "responded 204"),
        ({"response_code": 200, "grpc_status": "OK"}, "allow", None, "responded 200"),
        ({"response_code": 429, "response_flags": "RL",
          "response_code_details": "request_rate_limited"}, "unknown", None, "(RL)"),
        ({"response_code": 503, "response_flags": "FI,UH"}, "unknown", None, "(FI)"),
        ({"response_code": 0, "response_flags": "DC"}, "unknown", None, "no response"),
        ({}, "unknown", None, "no response"),
        ({"response_code": 200, "response_code_details": "-", "response_flags": "-"},
         "allow", None, "responded 200"),
    ],
)  # fmt: skip
def test_authorization_table(
    fields: AccessFields, decision: str, policy: str | None, reason_part: str
) -> None:
    result = decide(fields)
    assert result["decision"] == decision
    assert result.get("policy") == policy
    assert reason_part in result["reason"]
    assert set(result) <= {"decision", "policy", "reason"}
