"""OTLP requests -> MeshLog / MeshSpan records (audit_stream.receiver.decode)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status

from audit_stream.models.records import AccessFields
from audit_stream.receiver.decode import (
    DecodedBatch,
    _attribute_run,
    decode_logs,
    decode_spans,
    parse_logs_request,
    parse_traces_request,
)

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
NOW = 1_800_000_000_000_000_000  # 2027-01-15, after every fixture time
JSON = "application/json"
PROTO = "application/x-protobuf"
TRACE = "5b8efff798038103d269b633813fc60c"
SPAN = "eee19b7ec3c1b174"
ISTIO_LINE = (
    '[2020-11-25T21:26:18.409Z] "GET /status/418 HTTP/1.1" 418 - via_upstream - "-" 0 135 3 1 '
    '"-" "curl/7.73.0-DEV" "84961386-6d84-929d-98bd-c5aee93b5c88" "httpbin:8000" "127.0.0.1:80" '
    "inbound|8000|| 127.0.0.1:41854 10.44.1.27:80 10.44.1.23:37652 "
    "outbound_.8000_._.httpbin.foo.svc.cluster.local default\n"
)


def schema(name: str) -> jsonschema.Draft202012Validator:
    doc = json.loads((ROOT / "schemas" / f"{name}.v1.json").read_text())
    jsonschema.Draft202012Validator.check_schema(doc)
    return jsonschema.Draft202012Validator(doc)


LOG_SCHEMA = schema("mesh_log")
SPAN_SCHEMA = schema("mesh_span")


def valid_logs(batch: DecodedBatch[Any]) -> list[dict[str, Any]]:
    out = [orjson.loads(orjson.dumps(r)) for r in batch.records]  # what goes on the wire
    for rec in out:
        LOG_SCHEMA.validate(rec)
    return out


def valid_spans(batch: DecodedBatch[Any]) -> list[dict[str, Any]]:
    out = [orjson.loads(orjson.dumps(r)) for r in batch.records]
    for rec in out:
        SPAN_SCHEMA.validate(rec)
    return out


def fixture_logs(name: str) -> DecodedBatch[Any]:
    return decode_logs(parse_logs_request((FIXTURES / name).read_bytes(), JSON), NOW)


def log_request(*records: dict[str, Any], resource: dict[str, str] | None = None) -> bytes:
    """An OTLP/JSON logs request body with the given logRecords."""
    res = [{"key": k, "value": {"stringValue": v}} for k, v in (resource or {}).items()]
    doc = {
        "resourceLogs": [
            {"resource": {"attributes": res}, "scopeLogs": [{"logRecords": list(records)}]}
        ]
    }
    return orjson.dumps(doc)


def one_log(**fields: Any) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "timeUnixNano": "1606339578409000000",
        "traceId": TRACE,
        "spanId": SPAN,
        "body": {"stringValue": ISTIO_LINE},
    }
    rec.update(fields)
    return rec


# --- fixtures ------------------------------------------------------------------------------


def test_istio_default_fixture() -> None:
    batch = fixture_logs("istio_default_als_log.json")
    assert (batch.rejected, batch.reasons) == (0, [])
    [rec] = valid_logs(batch)
    assert rec["trace_id"] == "5b8efff798038103d269b633813fc60c"
    assert rec["span_id"] == "eee19b7ec3c1b174"
    assert rec["correlatable"] is True
    assert rec["time_unix_nano"] == 1606339578409000000
    assert "observed_time_unix_nano" not in rec
    assert rec["format"] == "istio_text"
    assert "body" not in rec
    assert rec["attributes"] == {} and rec["resource"] == {}
    assert "scope" not in rec  # the fixture's scope is empty
    f = rec["fields"]
    assert (f["method"], f["path"], f["response_code"]) == ("GET", "/status/418", 418)
    assert f["request_id"] == "84961386-6d84-929d-98bd-c5aee93b5c88"
    assert (f["destination_service"], f["destination_namespace"]) == ("httpbin", "foo")


def test_istio_rbac_fixture_labels_add_identity() -> None:
    [rec] = valid_logs(fixture_logs("istio_labels_rbac_deny_log.json"))
    f = rec["fields"]
    assert f["response_code"] == 403
    assert f["response_code_details"] == "rbac_access_denied_matched_policy[none]"
    assert f["source_principal"] == "spiffe://cluster.local/ns/starfleet/sa/probe"
    assert f["source_namespace"] == "starfleet"
    assert f["destination_namespace"] == "starfleet"
    assert f["destination_service"] == "scout"
    assert rec["attributes"]["pod"] == "scout-7d9c6b5f4-abcde"  # not a fact: kept as it came
    assert rec["trace_id"] == "422a513f9dd13cdca4b291187d65ec69"


def test_envoy_fixture_without_trace_context() -> None:
    [rec] = valid_logs(fixture_logs("envoy_builtin_labels_log.json"))
    assert rec["trace_id"] is None and rec["span_id"] is None
    assert rec["correlatable"] is False
    assert rec["format"] == "istio_text"
    assert rec["resource"] == {
        "log_name": "otel_envoy_accesslog",
        "zone_name": "",
        "cluster_name": "",
        "node_name": "",
    }
    assert rec["fields"]["user_agent"] == "curl/8.5.0"
    assert rec["fields"]["upstream_cluster"] == "orders_cluster"


def test_sidecar_span_fixture() -> None:
    body = (FIXTURES / "istio_sidecar_span.json").read_bytes()
    batch = decode_spans(parse_traces_request(body, JSON), NOW)
    assert batch.rejected == 0
    [span] = valid_spans(batch)
    assert span["trace_id"] == "422a513f9dd13cdca4b291187d65ec69"
    assert span["span_id"] == "0241f770ee902e2d"
    assert span["parent_span_id"] == "61d22fad2b80d1dd"
    assert span["kind"] == "client"
    assert span["name"] == "proxy./ratings/0"
    assert span["start_time_unix_nano"] == 1745220839492363000
    assert span["end_time_unix_nano"] == 1745220839934638800
    assert span["status_code"] == "unset"
    assert span["request"] is True
    assert span["scope"] == {"name": "envoy"}
    assert span["resource"]["service.name"] == "reviews.bookinfo"
    assert span["fields"] == {
        "request_id": "5457526c-0e6c-92eb-b0bd-508c75ad85c2",
        "protocol": "HTTP/1.1",
        "downstream_remote_address": "10.244.1.6",
        "upstream_cluster": "outbound|9080|v3|ratings.bookinfo.svc.cluster.local",
        "response_code": 200,  # the tag was the string "200"
        "method": "GET",
        "path": "/ratings/0",
        "authority": "ratings:9080",
        "destination_service": "ratings",
        "destination_namespace": "bookinfo",
        # a client span reports the caller's own workload
        "source_service": "reviews",
        "source_namespace": "bookinfo",
    }


# --- ids -----------------------------------------------------------------------------------


def test_json_hex_ids_and_protobuf_bytes_give_the_same_record() -> None:
    from_json = decode_logs(parse_logs_request(log_request(one_log()), JSON), NOW)

    req = ExportLogsServiceRequest()
    rec = req.resource_logs.add().scope_logs.add().log_records.add()
    rec.time_unix_nano = 1606339578409000000
    rec.trace_id = bytes.fromhex(TRACE)
    rec.span_id = bytes.fromhex(SPAN)
    rec.body.string_value = ISTIO_LINE
    from_proto = decode_logs(parse_logs_request(req.SerializeToString(), PROTO), NOW)

    assert from_json.records == from_proto.records
    assert from_json.records[0]["trace_id"] == TRACE


def test_ids_are_deterministic_and_distinct() -> None:
    body = log_request(one_log(), one_log(timeUnixNano="1606339578409000001"), one_log())
    first = [r["id"] for r in decode_logs(parse_logs_request(body, JSON), NOW).records]
    again = [r["id"] for r in decode_logs(parse_logs_request(body, JSON), NOW + 5).records]
    assert first == again  # an OTLP retry gets the same ids, whatever the receiver's clock
    assert first[0] == first[2]  # the same record
    assert first[0] != first[1]  # one nanosecond apart
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first)
    other_resource = log_request(one_log(), resource={"k8s.pod.name": "x"})
    [moved] = decode_logs(parse_logs_request(other_resource, JSON), NOW).records
    assert moved["id"] != first[0]  # same record from another resource is another record


def test_envoy_zero_padded_64bit_trace_id_is_kept() -> None:
    padded = "0000000000000000" + "d269b633813fc60c"
    [rec] = decode_logs(parse_logs_request(log_request(one_log(traceId=padded)), JSON), NOW).records
    assert rec["trace_id"] == padded


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"traceId": "5b8efff798038103d269b633813fc6"}, "log record trace_id is 15 bytes, want 16"),
        ({"traceId": "00" * 16}, "log record trace_id is all zeros"),
        ({"spanId": "eee19b7ec3c1b1"}, "log record span_id is 7 bytes, want 8"),
        ({"spanId": "00" * 8}, "log record span_id is all zeros"),
        ({"timeUnixNano": "915148800000000000"}, "before 2000-01-01"),  # 1999-01-01
        ({"timeUnixNano": str(NOW + 86_400 * 10**9 + 1)}, "more than a day in the future"),
        ({"observedTimeUnixNano": "12"}, "log record observed_time_unix_nano is before"),
    ],
)
def test_invalid_log_records_are_rejected_with_a_reason(
    change: dict[str, str], reason: str
) -> None:
    batch = decode_logs(parse_logs_request(log_request(one_log(), one_log(**change)), JSON), NOW)
    assert batch.rejected == 1
    assert len(batch.records) == 1  # the good record of the batch still goes through
    [got] = batch.reasons
    assert reason in got


def test_reasons_are_distinct_and_capped() -> None:
    bad = [one_log(traceId="ab" * n) for n in range(1, 16)] + [one_log(traceId="00" * 16)] * 3
    batch = decode_logs(parse_logs_request(log_request(*bad), JSON), NOW)
    assert batch.rejected == 18
    assert batch.records == []
    assert len(batch.reasons) == 5 and len(set(batch.reasons)) == 5
    old = [one_log(timeUnixNano=str(900_000_000_000_000_000 + i)) for i in range(4)]
    batch = decode_logs(parse_logs_request(log_request(*old), JSON), NOW)
    assert batch.rejected == 4
    assert batch.reasons == ["log record time_unix_nano is before 2000-01-01"]


def test_log_without_trace_context_is_uncorrelatable_not_rejected() -> None:
    [rec] = valid_logs(
        decode_logs(parse_logs_request(log_request(one_log(traceId="", spanId="")), JSON), NOW)
    )
    assert (rec["trace_id"], rec["span_id"], rec["correlatable"]) == (None, None, False)


def test_time_falls_back_to_observed_then_now() -> None:
    body = log_request(
        one_log(timeUnixNano="0", observedTimeUnixNano="1700000000000000000"),
        one_log(timeUnixNano="0"),
    )
    observed, received = valid_logs(decode_logs(parse_logs_request(body, JSON), NOW))
    assert observed["time_unix_nano"] == 1700000000000000000
    assert observed["observed_time_unix_nano"] == 1700000000000000000
    assert received["time_unix_nano"] == NOW
    assert "observed_time_unix_nano" not in received


# --- bodies and attributes -----------------------------------------------------------------


def test_unknown_body_is_kept_raw() -> None:
    rec_in = one_log(body={"stringValue": "payment service started in 3.2s"}, severityText="INFO")
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    assert rec["format"] == "unknown"
    assert rec["body"] == "payment service started in 3.2s"
    assert rec["fields"] == {}
    assert rec["severity"] == "INFO"


def test_unknown_body_keeps_facts_from_attributes() -> None:
    rec_in = one_log(
        body={"stringValue": "odd line"},
        attributes=[{"key": "response_code", "value": {"stringValue": "500"}}],
    )
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    assert (rec["format"], rec["body"], rec["fields"]) == (
        "unknown",
        "odd line",
        {"response_code": 500},
    )


def test_no_body_attributes_only() -> None:
    rec_in = one_log(
        attributes=[
            {"key": "http.request.method", "value": {"stringValue": "GET"}},
            {"key": "http.response.status_code", "value": {"intValue": "204"}},
        ]
    )
    del rec_in["body"]
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    assert rec["format"] == "attributes"
    assert rec["fields"] == {"method": "GET", "response_code": 204}
    assert rec["attributes"] == {}  # both are in fields, with the same values
    assert "body" not in rec


def test_attributes_keep_what_fields_do_not_repeat() -> None:
    node = "sidecar~10.1.2.3~web-5d9c-abcde.shop~shop.svc.cluster.local"
    rec_in = one_log(
        attributes=[
            {"key": "response_code", "value": {"stringValue": "403"}},  # in fields as 403
            {"key": "source_workload", "value": {"stringValue": "orders-v1"}},  # in fields
            {"key": "bytes_sent", "value": {"stringValue": "0012"}},  # fields say 12: kept
            {"key": "user_agent", "value": {"stringValue": "-"}},  # no fact: kept
            {"key": "namespace", "value": {"stringValue": "shop"}},  # not a plain rename: kept
            {"key": "node_id", "value": {"stringValue": node}},  # not a fact: kept
        ]
    )
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    f = rec["fields"]
    assert (f["response_code"], f["source_workload"], f["bytes_sent"]) == (403, "orders-v1", 12)
    assert f["user_agent"] == "curl/7.73.0-DEV"  # from the body
    assert rec["attributes"] == {
        "bytes_sent": "0012",
        "user_agent": "-",
        "namespace": "shop",
        "node_id": node,
    }


def test_empty_record_is_unknown_without_body() -> None:
    rec_in = one_log()
    del rec_in["body"]
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    assert (rec["format"], rec["fields"]) == ("unknown", {})
    assert "body" not in rec


def test_kvlist_body() -> None:
    kv = [
        {"key": "method", "value": {"stringValue": "PUT"}},
        {"key": "response_code", "value": {"intValue": "201"}},
        {"key": "duration", "value": {"intValue": "9"}},
        {
            "key": "upstream_cluster",
            "value": {"stringValue": "outbound|80||cart.shop.svc.cluster.local"},
        },
    ]
    rec_in = one_log(body={"kvlistValue": {"values": kv}})
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    assert rec["format"] == "json"
    assert rec["fields"] == {
        "method": "PUT",
        "response_code": 201,
        "duration_ms": 9,
        "upstream_cluster": "outbound|80||cart.shop.svc.cluster.local",
        "destination_service": "cart",
        "destination_namespace": "shop",
    }


def test_unrecognised_kvlist_body_is_kept_as_json() -> None:
    rec_in = one_log(body={"kvlistValue": {"values": [{"key": "a", "value": {"intValue": "1"}}]}})
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    assert rec["format"] == "unknown"
    assert json.loads(rec["body"]) == {"a": 1}


def test_bytes_body_is_read_as_text() -> None:
    raw = base64.b64encode(ISTIO_LINE.encode()).decode()
    [rec] = valid_logs(
        decode_logs(parse_logs_request(log_request(one_log(body={"bytesValue": raw})), JSON), NOW)
    )
    assert rec["format"] == "istio_text"
    assert rec["fields"]["response_code"] == 418


def test_attributes_win_over_body() -> None:
    rec_in = one_log(
        attributes=[
            {"key": "response_code", "value": {"stringValue": "403"}},
            {"key": "destination.service.name", "value": {"stringValue": "httpbin-v2"}},
            {
                "key": "downstream_peer_uri_san",
                "value": {"stringValue": "spiffe://td/ns/web/sa/fe"},
            },
        ]
    )
    [rec] = valid_logs(decode_logs(parse_logs_request(log_request(rec_in), JSON), NOW))
    f = rec["fields"]
    assert f["response_code"] == 403  # body said 418
    assert f["destination_service"] == "httpbin-v2"  # body's SNI implied httpbin
    assert f["destination_namespace"] == "foo"  # not contradicted: kept from the body
    assert (f["source_principal"], f["source_namespace"]) == ("spiffe://td/ns/web/sa/fe", "web")
    assert f["path"] == "/status/418"


def test_attribute_value_types_are_flattened() -> None:
    attrs = [
        {"key": "s", "value": {"stringValue": "x"}},
        {"key": "i", "value": {"intValue": "-7"}},
        {"key": "d", "value": {"doubleValue": 1.5}},
        {"key": "b", "value": {"boolValue": True}},
        {"key": "raw", "value": {"bytesValue": base64.b64encode(b"\x01\xff").decode()}},
        {
            "key": "arr",
            "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "2"}]}},
        },
        {
            "key": "kv",
            "value": {"kvlistValue": {"values": [{"key": "n", "value": {"boolValue": False}}]}},
        },
        {"key": "empty", "value": {}},
        {"key": "blank", "value": {"stringValue": ""}},
    ]
    [rec] = valid_logs(
        decode_logs(parse_logs_request(log_request(one_log(attributes=attrs)), JSON), NOW)
    )
    assert rec["attributes"] == {
        "s": "x",
        "i": -7,
        "d": 1.5,
        "b": True,
        "raw": "01ff",
        "arr": ["a", 2],
        "kv": {"n": False},
        "empty": None,
        "blank": "",
    }


# --- attributes shared within a request --------------------------------------------------


OUTBOUND_LINE = ISTIO_LINE.replace(
    "inbound|8000||", "outbound|9080||reviews.default.svc.cluster.local"
)
LABELS = {
    "peer_principal": "spiffe://cluster.local/ns/shop/sa/orders",
    "source_workload": "orders-v1",
    "namespace": "shop",
}


def labelled(body: str, labels: dict[str, Any], **fields: Any) -> dict[str, Any]:
    attrs = [{"key": k, "value": v} for k, v in labels.items()]
    return one_log(body={"stringValue": body}, attributes=attrs, **fields)


def one_by_one(body: bytes) -> list[dict[str, Any]]:
    """Each record decoded in a request of its own: nothing can be shared."""
    doc = orjson.loads(body)
    out = []
    for rl in doc["resourceLogs"]:
        for sl in rl["scopeLogs"]:
            for rec in sl["logRecords"]:
                alone = {"resourceLogs": [{**rl, "scopeLogs": [{**sl, "logRecords": [rec]}]}]}
                out.extend(decode_logs(parse_logs_request(orjson.dumps(alone), JSON), NOW).records)
    return out


def test_records_with_the_same_labels_get_the_same_facts_as_alone() -> None:
    strings = {k: {"stringValue": v} for k, v in LABELS.items()}
    body = log_request(
        labelled(ISTIO_LINE, strings),
        labelled(ISTIO_LINE, strings, timeUnixNano="1606339578409000001"),
        labelled(ISTIO_LINE, {**strings, "source_workload": {"stringValue": "web-v1"}}),
        labelled(ISTIO_LINE, strings, timeUnixNano="1606339578409000002"),
    )
    records = valid_logs(decode_logs(parse_logs_request(body, JSON), NOW))
    assert records == orjson.loads(orjson.dumps(one_by_one(body)))
    assert [r["fields"]["source_workload"] for r in records] == [
        "orders-v1", "orders-v1", "web-v1", "orders-v1",
    ]  # fmt: skip
    assert records[0]["fields"]["source_namespace"] == "shop"


def test_same_labels_on_inbound_and_outbound_lines_name_different_sides() -> None:
    # a bare namespace label is the reporting proxy's own: callee inbound, caller outbound
    strings = {"namespace": {"stringValue": "shop"}}
    body = log_request(
        labelled(ISTIO_LINE, strings),
        labelled(OUTBOUND_LINE, strings),
        labelled(ISTIO_LINE, strings, timeUnixNano="1606339578409000001"),
    )
    inbound, outbound, again = valid_logs(decode_logs(parse_logs_request(body, JSON), NOW))
    assert inbound["fields"]["destination_namespace"] == "shop"
    assert "source_namespace" not in inbound["fields"]
    assert outbound["fields"]["source_namespace"] == "shop"
    assert outbound["fields"]["destination_namespace"] == "default"  # from the cluster
    assert again["fields"] == inbound["fields"]


def test_labels_of_every_value_type_match_records_decoded_alone() -> None:
    import random

    rnd = random.Random(5)
    values: list[dict[str, Any]] = [
        {"stringValue": ""},
        {"stringValue": "-"},
        {"stringValue": "403"},
        {"stringValue": "x" * 300},  # lengths over 127 take two bytes on the wire
        {"stringValue": "ünïcödé"},
        {"intValue": "403"},
        {"boolValue": True},
        {"doubleValue": 2.5},
        {"arrayValue": {"values": [{"stringValue": "a"}]}},
        {"kvlistValue": {"values": [{"key": "k", "value": {"intValue": "1"}}]}},
        {"bytesValue": base64.b64encode(b"\x00\x01").decode()},
        {},
    ]
    keys = ["response_code", "peer_principal", "namespace", "user_agent", "", "k" * 200, "x"]
    lines = [ISTIO_LINE, OUTBOUND_LINE, "not an access log", ""]
    pool = [
        {rnd.choice(keys): rnd.choice(values) for _ in range(rnd.randrange(1, 4))}
        for _ in range(12)
    ]
    recs = [
        labelled(rnd.choice(lines), rnd.choice(pool), timeUnixNano=str(1606339578409000000 + i))
        for i in range(200)
    ]
    body = log_request(*recs, resource={"k8s.pod.name": "p"})
    batch = decode_logs(parse_logs_request(body, JSON), NOW)
    assert batch.records == one_by_one(body)
    valid_logs(batch)


def test_labels_with_fields_protobuf_does_not_know_are_read_like_the_rest() -> None:
    from opentelemetry.proto.common.v1.common_pb2 import KeyValue

    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    for i in range(2):
        rec = sl.log_records.add(time_unix_nano=1606339578409000000 + i)
        rec.body.string_value = ISTIO_LINE
        plain = KeyValue(key="source_workload")
        plain.value.string_value = "orders-v1"
        # a newer KeyValue with a field this protobuf version does not know (number 3)
        rec.attributes.add().MergeFrom(KeyValue.FromString(plain.SerializeToString() + b"\x18\x01"))
    first, second = decode_logs(req, NOW).records
    assert first["attributes"] == second["attributes"] == {}  # fields carry it
    assert first["fields"]["source_workload"] == second["fields"]["source_workload"] == "orders-v1"
    assert first["id"] != second["id"]


def test_records_with_fields_protobuf_does_not_know_keep_their_attributes() -> None:
    from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord

    req = ExportLogsServiceRequest()
    sl = req.resource_logs.add().scope_logs.add()
    plain = LogRecord(time_unix_nano=1606339578409000000)
    plain.body.string_value = ISTIO_LINE
    labelled = LogRecord()
    labelled.CopyFrom(plain)
    labelled.attributes.add(key="source_workload").value.string_value = "orders-v1"
    labelled.attributes.add(key="node_id").value.string_value = "sidecar~x"
    for rec in (plain, labelled):
        # a field number 13 this protobuf version does not know, written before the others
        sl.log_records.add().MergeFrom(LogRecord.FromString(b"\x68\x01" + rec.SerializeToString()))
    sl.log_records.add()  # nothing set at all
    bare, with_labels, empty = decode_logs(req, NOW).records
    assert bare["attributes"] == {} and "source_workload" not in bare["fields"]
    assert with_labels["attributes"] == {"node_id": "sidecar~x"}
    assert with_labels["fields"]["source_workload"] == "orders-v1"
    assert (empty["attributes"], empty["format"]) == ({}, "unknown")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"", (0, 0, 0)),  # nothing set: certainly none
        (b"\x09" + bytes(8) + b"\x2a\x03\x0a\x01x", (0, 0, 0)),  # the end after the body
        (b"\x09" + bytes(8) + b"\x4a\x10" + bytes(16), (0, 0, 0)),  # trace_id (9) comes first
        (b"\x09" + bytes(8) + b"\x32\x00\x32\x00\x4a\x00", (9, 13, 2)),  # two attributes
        (b"\x68\x01\x32\x00", (0, 0, -1)),  # an unknown field first: cannot tell
    ],
)
def test_attribute_run(raw: bytes, expected: tuple[int, int, int]) -> None:
    assert _attribute_run(raw) == expected


# --- spans ---------------------------------------------------------------------------------


def span_request(*spans: Span) -> ExportTraceServiceRequest:
    req = ExportTraceServiceRequest()
    ss = req.resource_spans.add().scope_spans.add()
    ss.spans.extend(spans)
    return req


def make_span(kind: int = Span.SPAN_KIND_SERVER, **tags: str) -> Span:
    sp = Span(
        trace_id=bytes.fromhex(TRACE),
        span_id=bytes.fromhex(SPAN),
        name="ingress",
        kind=kind,  # type: ignore[arg-type]
        start_time_unix_nano=1_745_220_839_000_000_000,
        end_time_unix_nano=1_745_220_839_005_000_000,
    )
    for k, v in tags.items():
        sp.attributes.add(key=k.replace("__", "."), value={"string_value": v})
    return sp


def test_server_span_reports_destination_workload() -> None:
    sp = make_span(
        Span.SPAN_KIND_SERVER,
        http__method="POST",
        http__status_code="503",
        http__url="http://reviews:9080/reviews/1?x=2",
        upstream_cluster="inbound|9080||",
        istio__canonical_service="reviews",
        istio__namespace="bookinfo",
        response_flags="UF",
        grpc__status_code="14",
    )
    sp.status.CopyFrom(Status(code=Status.STATUS_CODE_ERROR, message="upstream failed"))
    [span] = valid_spans(decode_spans(span_request(sp), NOW))
    assert span["kind"] == "server"
    assert (span["status_code"], span["status_message"]) == ("error", "upstream failed")
    assert span["request"] is True
    f = span["fields"]
    assert f["response_code"] == 503
    assert f["path"] == "/reviews/1?x=2"
    assert f["grpc_status"] == "14"
    assert f["response_flags"] == "UF"
    assert (f["destination_service"], f["destination_namespace"]) == ("reviews", "bookinfo")
    assert "source_service" not in f
    assert span["parent_span_id"] is None


def test_node_id_gives_namespace_when_istio_tags_are_missing() -> None:
    sp = make_span(
        Span.SPAN_KIND_CLIENT,
        http__method="GET",
        node_id="sidecar~10.1.2.3~web-5d9c-abcde.shop~shop.svc.cluster.local",
    )
    [span] = valid_spans(decode_spans(span_request(sp), NOW))
    assert span["fields"]["source_namespace"] == "shop"


def test_span_request_flag() -> None:
    internal = make_span(Span.SPAN_KIND_INTERNAL, http__method="GET")
    bare_client = make_span(Span.SPAN_KIND_CLIENT, component="proxy")
    grpc_server = make_span(Span.SPAN_KIND_SERVER, **{"rpc.grpc.status_code": "0"})
    got = [
        s["request"]
        for s in decode_spans(span_request(internal, bare_client, grpc_server), NOW).records
    ]
    assert got == [False, False, True]


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda s: setattr(s, "trace_id", b""), "span trace_id is 0 bytes, want 16"),
        (lambda s: setattr(s, "trace_id", bytes(16)), "span trace_id is all zeros"),
        (lambda s: setattr(s, "span_id", b"\x01" * 4), "span span_id is 4 bytes, want 8"),
        (lambda s: setattr(s, "parent_span_id", b"\x01" * 9), "span parent_span_id is 9 bytes"),
        (lambda s: setattr(s, "start_time_unix_nano", 0), "span start_time_unix_nano is before"),
        (lambda s: setattr(s, "end_time_unix_nano", NOW + 2 * 86_400 * 10**9), "in the future"),
        (
            lambda s: setattr(s, "end_time_unix_nano", s.start_time_unix_nano - 1),
            "ends before it starts",
        ),
    ],
)
def test_invalid_spans_are_rejected(mutate: Any, reason: str) -> None:
    bad = make_span()
    mutate(bad)
    batch = decode_spans(span_request(make_span(), bad), NOW)
    assert (batch.rejected, len(batch.records)) == (1, 1)
    assert reason in batch.reasons[0]


def test_all_zero_parent_is_a_root() -> None:
    sp = make_span()
    sp.parent_span_id = bytes(8)
    [span] = decode_spans(span_request(sp), NOW).records
    assert span["parent_span_id"] is None


def test_span_json_with_string_enums_and_links() -> None:
    doc = {
        "resourceSpans": [
            {
                "scopeSpans": [
                    {
                        "scope": {"name": "linkerd-proxy", "version": "2.19"},
                        "spans": [
                            {
                                "traceId": TRACE.upper(),
                                "spanId": SPAN,
                                "parentSpanId": "",
                                "name": "GET",
                                "kind": "SPAN_KIND_SERVER",
                                "startTimeUnixNano": 1745220839000000000,
                                "endTimeUnixNano": "1745220839000000001",
                                "status": {"code": "STATUS_CODE_OK"},
                                "links": [{"traceId": "ab" * 16, "spanId": "cd" * 8}],
                                "attributes": [
                                    {"key": "http.request.method", "value": {"stringValue": "GET"}}
                                ],
                                "futureField": {"x": 1},
                            }
                        ],
                    }
                ]
            }
        ]
    }
    req = parse_traces_request(orjson.dumps(doc), "application/json; charset=utf-8")
    assert req.resource_spans[0].scope_spans[0].spans[0].links[0].span_id == bytes.fromhex("cd" * 8)
    [span] = valid_spans(decode_spans(req, NOW))
    assert span["trace_id"] == TRACE
    assert (span["kind"], span["status_code"]) == ("server", "ok")
    assert span["scope"] == {"name": "linkerd-proxy", "version": "2.19"}
    assert span["fields"] == {"method": "GET"}


# --- request parsing -----------------------------------------------------------------------


def test_base64_ids_from_old_exporters_are_accepted() -> None:
    b64_trace = base64.b64encode(bytes.fromhex(TRACE)).decode()
    b64_span = base64.b64encode(bytes.fromhex(SPAN)).decode()
    body = log_request(one_log(traceId=b64_trace, spanId=b64_span))
    [rec] = decode_logs(parse_logs_request(body, JSON), NOW).records
    assert (rec["trace_id"], rec["span_id"]) == (TRACE, SPAN)


@pytest.mark.parametrize(
    ("body", "ctype", "message"),
    [
        (b"{not json", JSON, "not valid JSON"),
        (b"[1, 2]", JSON, "must be a JSON object"),
        (log_request(one_log(traceId="zz-not-hex!")), JSON, "traceId 'zz-not-hex!' is neither hex"),
        (
            b'{"resourceLogs": [{"scopeLogs": [{"logRecords": [{"timeUnixNano": "soon"}]}]}]}',
            JSON,
            "malformed OTLP/JSON logs",
        ),
        (b'{"resourceLogs": "nope"}', JSON, "malformed OTLP/JSON logs"),
        (b"\x0a\xff\xff\xff", PROTO, "malformed OTLP/protobuf logs"),
        (b"", "text/plain", "unsupported content type"),
    ],
)
def test_malformed_log_payloads_raise_value_error(body: bytes, ctype: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_logs_request(body, ctype)


def test_malformed_trace_payload_raises_value_error() -> None:
    with pytest.raises(ValueError, match="malformed OTLP/protobuf traces"):
        parse_traces_request(b"\x0a\x05\x0a\x03", PROTO)
    with pytest.raises(ValueError, match="spanId"):
        parse_traces_request(
            b'{"resourceSpans":[{"scopeSpans":[{"spans":[{"spanId":"xyz"}]}]}]}', JSON
        )


def test_empty_requests() -> None:
    assert decode_logs(parse_logs_request(b"", PROTO), NOW) == DecodedBatch([], 0, [])
    spans = decode_spans(parse_traces_request(b"{}", JSON), NOW)
    assert (spans.records, spans.rejected, spans.reasons) == ([], 0, [])


def test_decoded_batch_is_frozen() -> None:
    batch = decode_logs(ExportLogsServiceRequest(), NOW)
    with pytest.raises(AttributeError):
        batch.rejected = 3  # type: ignore[misc]


# --- schemas stay in step with the record types --------------------------------------------


def test_schemas_share_the_access_fields_definition_of_the_typeddict() -> None:
    log_def = LOG_SCHEMA.schema["$defs"]["access_fields"]
    span_def = SPAN_SCHEMA.schema["$defs"]["access_fields"]
    assert log_def == span_def
    assert set(log_def["properties"]) == set(AccessFields.__annotations__)
    int_keys = {k for k, v in log_def["properties"].items() if v["type"] == "integer"}
    assert int_keys == {
        "response_code",
        "bytes_received",
        "bytes_sent",
        "duration_ms",
        "upstream_service_time_ms",
    }


def test_schema_rejects_inconsistent_records() -> None:
    [rec] = valid_logs(fixture_logs("istio_default_als_log.json"))
    for bad in (
        {**rec, "body": "x"},  # body only with format unknown
        {**rec, "correlatable": False},  # has a trace id
        {**rec, "fields": {**rec["fields"], "response_code": "418"}},
        {**rec, "fields": {**rec["fields"], "nonsense": 1}},
        {**rec, "trace_id": "5B8EFFF798038103D269B633813FC60C"},
    ):
        assert not LOG_SCHEMA.is_valid(bad)
