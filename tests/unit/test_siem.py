"""SIEM mappers: OCSF and ECS outputs validate, carry trace and decision, lose and leak nothing."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, cast

import jsonschema
import pytest

from audit_stream.retention import DEFAULT_POLICY
from audit_stream.siem import Redactor, mapper_for, to_ecs, to_native, to_ocsf
from audit_stream.siem.ocsf import http_version, outcome, split_address, split_target

ROOT = Path(__file__).resolve().parents[2]


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "schemas" / f"{name}.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


AUDIT = validator("audit_event.v1")
OCSF = validator("siem_ocsf_http_activity.v1")
ECS = validator("siem_ecs.v1")

TRACE_ID = "422a513f9dd13cdca4b291187d65ec69"
SPAN_ID = "61d22fad2b80d1dd"
T0 = 1_791_532_493_132_000_000  # 2026-10-09T07:54:53.132Z


def joined_deny() -> Any:
    """The RBAC denial of tests/fixtures/istio_labels_rbac_deny_log.json, joined with its span."""
    return {
        "schema": "audit_event.v1",
        "event_id": "9c1f0e2d3b4a59687766554433221100",
        "time": "2026-10-09T07:54:53.132000000Z",
        "time_unix_nano": T0,
        "correlation": "joined",
        "source": {
            "principal": "spiffe://cluster.local/ns/starfleet/sa/probe",
            "namespace": "starfleet",
            "address": "10.244.0.11:37238",
        },
        "destination": {
            "service": "scout.starfleet.svc.cluster.local",
            "namespace": "starfleet",
            "address": "10.244.0.10:9080",
            "cluster": "inbound|9080||",
        },
        "request": {
            "method": "GET",
            "path": "/reviews/0",
            "protocol": "HTTP/1.1",
            "user_agent": "curl/8.11.1",
            "request_id": "c21e3c5a-b3cb-4cf6-9d60-dcd9c47a8cda",
            "authority": "scout:9080",
        },
        "response": {
            "status_code": 403,
            "details": "rbac_access_denied_matched_policy[none]",
            "duration_ms": 0,
        },
        "authorization": {
            "decision": "deny",
            "policy": "none",
            "reason": "rbac_access_denied_matched_policy[none]",
        },
        "user": {},
        "trace": {"trace_id": TRACE_ID, "span_id": SPAN_ID},
        "mesh": {"proxy": "envoy", "kind": "sidecar"},
    }


def joined_allow() -> Any:
    return {
        "schema": "audit_event.v1",
        "event_id": "0123456789abcdef0123456789abcdef",
        "time": "2026-10-09T07:54:54.000000001Z",
        "time_unix_nano": T0 + 868_000_001,
        "correlation": "joined",
        "source": {
            "principal": "spiffe://cluster.local/ns/bookinfo/sa/productpage",
            "service": "productpage.bookinfo.svc.cluster.local",
            "namespace": "bookinfo",
            "address": "[fd00:10:244::11]:51544",
        },
        "destination": {
            "principal": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
            "service": "reviews.bookinfo.svc.cluster.local",
            "namespace": "bookinfo",
            "address": "[fd00:10:244::12]:9080",
            "cluster": "outbound|9080||reviews.bookinfo.svc.cluster.local",
        },
        "request": {
            "method": "PATCH",
            "path": "/reviews/7?fields=rating&lang=en",
            "protocol": "HTTP/2",
            "user_agent": "python-requests/2.32",
            "request_id": "0e8f7c2a-1111-4cf6-9d60-dcd9c47a8cda",
            "authority": "reviews.bookinfo:9080",
        },
        "response": {"status_code": 200, "flags": "-", "duration_ms": 12},
        "authorization": {"decision": "allow", "policy": "ns[bookinfo]-policy[reviews-viewer]"},
        "user": {"id": "alice@example.com"},
        "trace": {"trace_id": "a" * 32, "span_id": "b" * 16},
        "mesh": {"proxy": "envoy", "kind": "sidecar"},
    }


def log_only() -> Any:
    """No trace context (tracing off): published at once, never joined."""
    return {
        "schema": "audit_event.v1",
        "event_id": "fedcba9876543210fedcba9876543210",
        "time": "2026-10-09T07:55:00Z",
        "time_unix_nano": T0 + 6_868_000_000,
        "correlation": "log_only",
        "source": {"address": "10.0.0.7:40000"},
        "destination": {"address": "reviews:9080"},
        "request": {"method": "POST", "path": "/login", "protocol": "HTTP/1.1"},
        "response": {"status_code": 503, "flags": "UF", "duration_ms": 1001},
        "authorization": {"decision": "unknown"},
        "user": {},
        "trace": {},
        "mesh": {"proxy": "envoy", "kind": "gateway"},
    }


def span_only() -> Any:
    """A server span with no matching log: few facts, no response code."""
    return {
        "schema": "audit_event.v1",
        "event_id": "00112233445566778899aabbccddeeff",
        "time": "2026-10-09T07:55:01.5Z",
        "time_unix_nano": T0 + 8_368_000_000,
        "correlation": "span_only",
        "source": {},
        "destination": {"service": "ratings.bookinfo.svc.cluster.local"},
        "request": {},
        "response": {},
        "authorization": {},
        "user": {},
        "trace": {"trace_id": "c" * 32, "span_id": "d" * 16},
        "mesh": {"proxy": "linkerd"},
    }


EVENTS = {
    "joined_deny": joined_deny,
    "joined_allow": joined_allow,
    "log_only": log_only,
    "span_only": span_only,
}


def tagged(factory: Any) -> Any:
    event = factory()
    event["retention"] = DEFAULT_POLICY.tag(event)
    return event


def leaves(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        return [pair for k, v in value.items() for pair in leaves(v, f"{prefix}{k}.")]
    if isinstance(value, list):
        return [pair for v in value for pair in leaves(v, prefix)]
    return [(prefix.rstrip("."), value)]


# --------------------------------------------------------------------------------------------
# Schemas, trace id, decision


@pytest.mark.parametrize("name", EVENTS)
def test_inputs_are_valid_audit_events(name: str) -> None:
    AUDIT.validate(tagged(EVENTS[name]))


@pytest.mark.parametrize("name", EVENTS)
@pytest.mark.parametrize("retain", [True, False])
def test_outputs_validate(name: str, retain: bool) -> None:
    event = tagged(EVENTS[name]) if retain else EVENTS[name]()
    OCSF.validate(to_ocsf(event))
    ECS.validate(to_ecs(event))
    AUDIT.validate(to_native(event))


@pytest.mark.parametrize("name", ["joined_deny", "joined_allow", "span_only"])
def test_trace_id_is_carried(name: str) -> None:
    event = tagged(EVENTS[name])
    trace = event["trace"]
    ocsf: Any = to_ocsf(event)
    ecs: Any = to_ecs(event)
    assert ocsf["metadata"]["correlation_uid"] == trace["trace_id"]
    assert ocsf["unmapped"]["span_id"] == trace["span_id"]
    assert ecs["trace"] == {"id": trace["trace_id"]}
    assert ecs["span"] == {"id": trace["span_id"]}


def test_log_only_has_no_trace() -> None:
    event = tagged(log_only)
    ocsf: Any = to_ocsf(event)
    assert "correlation_uid" not in ocsf["metadata"]
    ecs: Any = to_ecs(event)
    assert "trace" not in ecs
    assert "span" not in ecs
    assert ecs["audit_stream"]["correlation"] == "log_only"


def test_denial_outcome() -> None:
    event = tagged(joined_deny)
    ocsf: Any = to_ocsf(event)
    assert (ocsf["action_id"], ocsf["action"]) == (2, "Denied")
    assert (ocsf["disposition_id"], ocsf["disposition"]) == (2, "Blocked")
    assert (ocsf["status_id"], ocsf["status"]) == (2, "Failure")
    assert ocsf["severity_id"] == 3
    assert ocsf["actor"]["authorizations"] == [{"decision": "deny", "policy": {"name": "none"}}]
    assert ocsf["actor"]["app_uid"] == "spiffe://cluster.local/ns/starfleet/sa/probe"
    assert ocsf["status_detail"] == "rbac_access_denied_matched_policy[none]"
    assert ocsf["http_response"] == {"code": 403}
    assert ocsf["unmapped"]["retention"]["class"] == "security"
    ecs: Any = to_ecs(event)
    assert ecs["event"]["type"] == ["access", "denied"]
    assert ecs["event"]["outcome"] == "failure"
    assert ecs["rule"] == {"name": "none"}
    assert ecs["event"]["reason"] == "rbac_access_denied_matched_policy[none]"
    assert ecs["audit_stream"]["authorization"]["decision"] == "deny"
    assert ecs["labels"] == {
        "retention_class": "security",
        "retention_rule": "security-denials",
        "legal_hold": "false",
    }


def test_allow_outcome_and_fields() -> None:
    event = tagged(joined_allow)
    ocsf: Any = to_ocsf(event)
    assert (ocsf["action_id"], ocsf["status_id"], ocsf["severity_id"]) == (1, 1, 1)
    assert (ocsf["activity_id"], ocsf["activity_name"], ocsf["type_uid"]) == (99, "Patch", 400299)
    assert ocsf["time"] == event["time_unix_nano"] // 1_000_000
    assert ocsf["end_time"] - ocsf["time"] == 12 == ocsf["duration"]
    assert ocsf["src_endpoint"] == {
        "ip": "fd00:10:244::11",
        "port": 51544,
        "svc_name": "productpage.bookinfo.svc.cluster.local",
        "uid": "spiffe://cluster.local/ns/bookinfo/sa/productpage",
    }
    assert ocsf["http_request"]["url"] == {
        "url_string": "/reviews/7?fields=rating&lang=en",
        "path": "/reviews/7",
        "query_string": "fields=rating&lang=en",
        "hostname": "reviews.bookinfo",
        "port": 9080,
    }
    assert ocsf["http_request"]["version"] == "2"
    assert ocsf["actor"]["user"] == {"uid": "alice@example.com"}
    ecs: Any = to_ecs(event)
    assert ecs["@timestamp"] == event["time"]
    assert ecs["event"]["type"] == ["access", "allowed"]
    assert ecs["event"]["outcome"] == "success"
    assert ecs["event"]["duration"] == 12_000_000
    assert ecs["source"] == {
        "address": "[fd00:10:244::11]:51544",
        "ip": "fd00:10:244::11",
        "port": 51544,
    }
    assert ecs["service"] == {
        "id": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
        "name": "reviews.bookinfo.svc.cluster.local",
        "origin": {
            "id": "spiffe://cluster.local/ns/bookinfo/sa/productpage",
            "name": "productpage.bookinfo.svc.cluster.local",
        },
    }
    assert ecs["url"] == {
        "original": "/reviews/7?fields=rating&lang=en",
        "path": "/reviews/7",
        "query": "fields=rating&lang=en",
        "domain": "reviews.bookinfo",
        "port": 9080,
    }
    assert ecs["http"] == {
        "request": {"method": "PATCH", "id": "0e8f7c2a-1111-4cf6-9d60-dcd9c47a8cda"},
        "response": {"status_code": 200},
        "version": "2",
    }
    assert ecs["user"] == {"id": "alice@example.com"}
    assert ecs["related"] == {
        "user": ["alice@example.com"],
        "ip": ["fd00:10:244::11", "fd00:10:244::12"],
    }


def test_unknown_decision_and_missing_facts() -> None:
    ocsf: Any = to_ocsf(tagged(log_only))
    assert (ocsf["action_id"], ocsf["disposition_id"]) == (0, 0)
    assert ocsf["status_id"] == 2  # 503
    assert "authorizations" not in ocsf.get("actor", {})
    assert ocsf["unmapped"]["authorization"] == {"decision": "unknown"}
    assert ocsf["dst_endpoint"] == {"hostname": "reviews", "port": 9080}
    sparse: Any = to_ocsf(tagged(span_only))
    assert (sparse["activity_id"], sparse["type_uid"], sparse["status_id"]) == (0, 400200, 0)
    assert "http_request" not in sparse
    assert "http_response" not in sparse
    assert "src_endpoint" not in sparse
    sparse_ecs: Any = to_ecs(tagged(span_only))
    assert sparse_ecs["event"]["outcome"] == "unknown"


def test_host_and_host_name_address_are_both_kept() -> None:
    event = log_only()
    event["destination"]["host"] = "reviews.bookinfo.svc.cluster.local"
    ocsf: Any = to_ocsf(event)
    assert ocsf["dst_endpoint"] == {"hostname": "reviews.bookinfo.svc.cluster.local", "port": 9080}
    assert ocsf["unmapped"]["destination"] == {"address": "reviews:9080"}
    ecs: Any = to_ecs(event)
    assert ecs["destination"] == {
        "address": "reviews:9080",
        "domain": "reviews.bookinfo.svc.cluster.local",
        "port": 9080,
    }
    OCSF.validate(ocsf)
    ECS.validate(ecs)


@pytest.mark.parametrize(
    ("method", "activity_id", "name"),
    [
        ("CONNECT", 1, "Connect"),
        ("DELETE", 2, "Delete"),
        ("GET", 3, "Get"),
        ("get", 3, "Get"),
        ("HEAD", 4, "Head"),
        ("OPTIONS", 5, "Options"),
        ("POST", 6, "Post"),
        ("PUT", 7, "Put"),
        ("TRACE", 8, "Trace"),
        ("PATCH", 99, "Patch"),
        ("PROPFIND", 99, "Propfind"),
    ],
)
def test_activity_from_method(method: str, activity_id: int, name: str) -> None:
    event = joined_allow()
    event["request"]["method"] = method
    out: Any = to_ocsf(event)
    assert (out["activity_id"], out["activity_name"]) == (activity_id, name)
    assert out["type_uid"] == 4002 * 100 + activity_id
    assert out["type_name"] == f"HTTP Activity: {name}"
    assert out["http_request"]["http_method"] == method
    OCSF.validate(out)


# --------------------------------------------------------------------------------------------
# Nothing lost, nothing leaked


MAPPED_DIFFERENTLY = {
    "time_unix_nano",  # OCSF time is epoch ms; ECS keeps the RFC 3339 time
    "schema",
    "source.address",  # split into ip and port (checked below)
    "destination.address",
    "request.protocol",  # "HTTP/1.1" -> "1.1"
    "request.authority",  # split into host and port
    "response.duration_ms",  # ECS wants nanoseconds
}


@pytest.mark.parametrize("name", EVENTS)
@pytest.mark.parametrize("mapper", [to_ocsf, to_ecs], ids=["ocsf", "ecs"])
def test_no_fact_is_lost(name: str, mapper: Any) -> None:
    event = tagged(EVENTS[name])
    out_values = {v for _, v in leaves(mapper(event))}
    for path, value in leaves(event):
        if path in MAPPED_DIFFERENTLY:
            continue
        assert value in out_values, f"{path}={value!r} missing from output"
    for address in (
        event["source"].get("address"),
        event["destination"].get("address"),
        event["request"].get("authority"),
    ):
        if address:
            host, port, _ = split_address(address)
            assert {host, port} <= out_values, address
    duration = event["response"].get("duration_ms")
    if duration is not None:
        assert duration in out_values or duration * 1_000_000 in out_values
    protocol = event["request"].get("protocol")
    if protocol:
        assert http_version(protocol) in out_values


def test_nothing_secret_survives_redaction_and_mapping() -> None:
    secret = "pa55w0rdXYZ"
    event = joined_deny()
    event["request"]["path"] = f"/reviews/0?access_token={secret}&page=1"
    event["request"]["user_agent"] = f"client Bearer {secret}0123456789"
    event["request"]["authorization"] = f"Basic {secret}"
    event["request"]["cookie"] = f"session={secret}"
    event["authorization"]["reason"] = f"jwt rejected: Authorization: Bearer {secret}"
    event["response"]["details"] = f"upstream reset; X-Amz-Signature={secret}"
    redacted, count = Redactor().redact_event(event)
    assert count == 6
    redacted["retention"] = DEFAULT_POLICY.tag(redacted)
    for mapper in (to_ocsf, to_ecs, to_native):
        out = mapper(redacted)
        text = json.dumps(out)
        assert secret not in text, mapper.__name__
        assert "[REDACTED]" in text
    ocsf: Any = to_ocsf(redacted)
    assert ocsf["http_request"]["url"]["query_string"] == "access_token=[REDACTED]&page=1"
    OCSF.validate(ocsf)
    ECS.validate(to_ecs(redacted))


# --------------------------------------------------------------------------------------------
# Schemas catch breakage


def test_ocsf_schema_rejects_inconsistent_output() -> None:
    good: Any = to_ocsf(tagged(joined_deny))
    broken = copy.deepcopy(good)
    broken["type_uid"] = 400206  # does not match activity_id 3
    assert not OCSF.is_valid(broken)
    broken = copy.deepcopy(good)
    broken["status_id"] = 1  # a denial reported as success
    assert not OCSF.is_valid(broken)
    broken = copy.deepcopy(good)
    broken["http_request"]["url"]["scheme"] = "http"  # a field the mapper does not emit
    assert not OCSF.is_valid(broken)
    broken = copy.deepcopy(good)
    del broken["metadata"]["uid"]
    assert not OCSF.is_valid(broken)


def test_ecs_schema_rejects_inconsistent_output() -> None:
    good: Any = to_ecs(tagged(joined_deny))
    broken = copy.deepcopy(good)
    broken["event"]["outcome"] = "success"  # a denial reported as success
    assert not ECS.is_valid(broken)
    broken = copy.deepcopy(good)
    broken["labels"]["retention_days"] = 2555  # labels are strings, and not this one
    assert not ECS.is_valid(broken)
    broken = copy.deepcopy(good)
    broken["trace"]["id"] = "not-hex"
    assert not ECS.is_valid(broken)


# --------------------------------------------------------------------------------------------
# Helpers and dispatch


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("10.0.0.1:8080", ("10.0.0.1", 8080, True)),
        ("10.0.0.1", ("10.0.0.1", None, True)),
        ("[::1]:80", ("::1", 80, True)),
        ("[fe80::1%eth0]:443", ("fe80::1%eth0", 443, True)),
        ("::1", ("::1", None, True)),
        ("2001:db8::7", ("2001:db8::7", None, True)),
        ("[2001:db8::7]", ("2001:db8::7", None, True)),
        ("reviews:9080", ("reviews", 9080, False)),
        ("reviews.default.svc.cluster.local", ("reviews.default.svc.cluster.local", None, False)),
        (" 10.0.0.1:80 ", ("10.0.0.1", 80, True)),
        ("-", (None, None, False)),
        ("-:80", (None, None, False)),
        (":80", (None, None, False)),
        ("10.0.0.1:", ("10.0.0.1", None, True)),
        ("a:b:80", (None, None, False)),
        ("", (None, None, False)),
        ("10.0.0.1:99999", (None, None, False)),
        ("10.0.0.1:http", (None, None, False)),
        ("10.0.0.1:\u0668\u0660", (None, None, False)),  # non-ASCII digits
        ("[::1", (None, None, False)),
        ("[::1]80", (None, None, False)),
        ("unix:/var/run/app.sock", (None, None, False)),
        ("envoy://internal_client_address/", (None, None, False)),
    ],
)
def test_split_address(address: str, expected: tuple[Any, ...]) -> None:
    assert split_address(address) == expected


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a/b?x=1&y=2", ("/a/b", "x=1&y=2")),
        ("/a/b", ("/a/b", None)),
        ("/a?", ("/a", "")),
        ("/a?x=1#frag", ("/a", "x=1")),
        ("/a?next=/b?c=d", ("/a", "next=/b?c=d")),
    ],
)
def test_split_target(target: str, expected: tuple[str, str | None]) -> None:
    assert split_target(target) == expected


def test_http_version() -> None:
    assert [http_version(p) for p in ("HTTP/1.1", "HTTP/2", "http/1.0", "h2c")] == [
        "1.1",
        "2",
        "1.0",
        "h2c",
    ]


@pytest.mark.parametrize(
    ("decision", "response", "expected"),
    [
        ("allow", {"status_code": 200}, "success"),
        ("allow", {"status_code": 302}, "success"),
        ("allow", {"status_code": 404}, "failure"),
        ("unknown", {"status_code": 503}, "failure"),
        ("allow", {"status_code": 0}, "failure"),  # no response sent
        ("allow", {"status_code": "200"}, "success"),
        ("allow", {"status_code": 200, "grpc_status": "14"}, "failure"),
        ("allow", {"status_code": 200, "grpc_status": "0"}, "success"),
        ("deny", {"status_code": 200}, "failure"),
        ("deny", {}, "failure"),
        ("allow", {}, "unknown"),
        ("unknown", {}, "unknown"),
    ],
)
def test_outcome(decision: str, response: dict[str, Any], expected: str) -> None:
    event = joined_allow()
    event["authorization"] = {"decision": decision}
    event["response"] = response
    assert outcome(event) == expected


def test_mapper_for() -> None:
    assert mapper_for("ocsf") is to_ocsf
    assert mapper_for("ecs") is to_ecs
    assert mapper_for("native") is to_native
    event = joined_allow()
    assert to_native(event) is event
    with pytest.raises(ValueError, match="unknown SIEM format 'splunk'"):
        mapper_for(cast(Any, "splunk"))


def test_mappers_do_not_modify_input() -> None:
    event = tagged(joined_deny)
    before = copy.deepcopy(event)
    to_ocsf(event)
    to_ecs(event)
    assert event == before


def test_split_address_stays_right_past_its_memo_bounds() -> None:
    """More distinct addresses than the memo tables hold, each split twice, in two passes."""
    cases: list[tuple[str, tuple[Any, ...]]] = []
    for i in range(12_000):
        host = f"10.{i // 250 % 250}.{i % 250}.{i % 7}"
        cases.append((f"{host}:{1024 + i}", (host, 1024 + i, True)))
        if i % 3 == 0:
            name = f"svc-{i}.ns{i % 5}"
            cases.append((f"{name}:{80 + i % 100}", (name, 80 + i % 100, False)))
        if i % 11 == 0:
            cases.append((f"bad host {i}:80", (None, None, False)))
            cases.append(
                (f"[fe80::{i % 0xFFFF:x}]:{i % 65536}", (f"fe80::{i % 0xFFFF:x}", i % 65536, True))
            )
    for _ in range(2):
        for address, expected in cases:
            assert split_address(address) == expected, address
