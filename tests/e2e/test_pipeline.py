"""End to end with real processes: OTLP -> receiver -> Kafka -> Faust worker -> audit.siem."""

from __future__ import annotations

import json
import random
import signal
import time
from collections import defaultdict
from dataclasses import replace
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
from aiokafka import AIOKafkaProducer

from audit_stream.config import TopicSettings
from audit_stream.kafka.codec import decode_packed
from audit_stream.kafka.partitioner import partition_for
from audit_stream.traffic import MeshRequest, Mix, logs_request, make_requests, spans_request
from tests.conftest import ROOT
from tests.support import (
    cli,
    read_messages,
    run_receiver,
    start_worker,
    worker_env,
)

pytestmark = pytest.mark.e2e

LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
PLAIN = Mix(denied=0, no_trace=0, with_user=0, with_secret=0, span_only=0)


def _send(target: str, method: str, body: bytes) -> None:
    with grpc.insecure_channel(target) as ch:
        ch.unary_unary(method, request_serializer=None, response_deserializer=None)(
            body, timeout=30
        )


def send_logs(target: str, reqs: list[MeshRequest]) -> None:
    _send(target, LOGS, logs_request(reqs).SerializeToString())


def send_spans(target: str, reqs: list[MeshRequest]) -> None:
    _send(target, TRACES, spans_request(reqs).SerializeToString())


def _by_request_id(messages: list[Any]) -> dict[str, list[tuple[dict[str, Any], dict[str, bytes]]]]:
    out: dict[str, list[tuple[dict[str, Any], dict[str, bytes]]]] = defaultdict(list)
    for m in messages:
        doc = json.loads(m.value)
        rid = doc["http_request"]["uid"] if "http_request" in doc else doc["request"]["request_id"]
        out[rid].append((doc, dict(m.headers)))
    return out


async def test_mixed_traffic_yields_one_correct_event_per_request(
    pipeline_env: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    rng = random.Random(42)
    now = time.time_ns()
    plain = make_requests(rng, 20, now, PLAIN)
    plain[0] = replace(plain[0], user="alice@example.com")
    plain[1] = replace(plain[1], path="/reviews/1?access_token=SECRET-tok-123&page=1")
    span_first = make_requests(rng, 10, now, PLAIN)
    denied = [
        replace(
            r,
            status=403,
            details="rbac_access_denied_matched_policy[ns[bookinfo]-policy[deny-all]-rule[0]]",
        )
        for r in make_requests(rng, 5, now, PLAIN)
    ]
    untraced = [replace(r, trace_id=b"", span_id=b"") for r in make_requests(rng, 5, now, PLAIN)]
    span_only = [replace(r, log=False) for r in make_requests(rng, 2, now, PLAIN)]
    bootstrap = pipeline_env["AUDIT_STREAM_KAFKA_BOOTSTRAP"]

    worker = start_worker(worker_env(pipeline_env, tmp_path), tmp_path)
    try:
        with run_receiver(pipeline_env, tmp_path) as rcv:
            send_spans(rcv.grpc, span_first)
            send_logs(rcv.grpc, plain + denied + untraced)
            send_spans(rcv.grpc, plain + denied + span_only)
            # An OTLP retry of requests already sent: must not produce second events.
            send_logs(rcv.grpc, plain[:5])
            send_spans(rcv.grpc, plain[:5])
            time.sleep(0.5)
            send_logs(rcv.grpc, span_first)
        # Garbage on the input topic goes to the dead-letter topic; the agent keeps going.
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        await producer.send_and_wait(topic_settings.logs, b"not a packed message", partition=0)
        await producer.stop()

        expected = len(plain) + len(span_first) + len(denied) + len(untraced) + len(span_only)
        siem = await read_messages(bootstrap, topic_settings.siem, expected, settle=4.0)
        dead = await read_messages(bootstrap, topic_settings.deadletter, 1, settle=0.5)
        events = await read_messages(bootstrap, topic_settings.events, 1, settle=0.5)
        stats = worker.stats()
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)

    assert len(siem) == expected, f"{len(siem)} SIEM records for {expected} requests"
    by_rid = _by_request_id(siem)
    assert all(len(v) == 1 for v in by_rid.values())
    assert len({m.key for m in siem}) == expected  # one event id per request
    schema = json.loads((ROOT / "schemas" / "siem_ocsf_http_activity.v1.json").read_text())
    for m in siem:
        jsonschema.validate(json.loads(m.value), schema)

    def one(r: MeshRequest) -> tuple[dict[str, Any], dict[str, bytes]]:
        return by_rid[r.request_id][0]

    for r in plain + span_first:
        doc, headers = one(r)
        assert doc["unmapped"]["correlation"] == "joined", r
        assert doc["http_response"]["code"] == r.status
        assert doc["metadata"]["correlation_uid"] == r.trace_id.hex()
        assert doc["actor"]["authorizations"][0]["decision"] == "allow"
        assert doc["actor"]["app_uid"] == r.source_principal
        assert headers["retention-class"] in (b"standard", b"pci", b"privileged")
    for r in denied:
        doc, headers = one(r)
        assert doc["unmapped"]["correlation"] == "joined"
        assert doc["actor"]["authorizations"][0]["decision"] == "deny"
        assert doc["action"] == "Denied"
        assert headers["retention-class"] == b"security" and headers["retention-days"] == b"2555"
    for r in untraced:
        assert one(r)[0]["unmapped"]["correlation"] == "log_only"
    for r in span_only:
        assert one(r)[0]["unmapped"]["correlation"] == "span_only"
    assert "alice@example.com" in json.dumps(one(plain[0])[0])
    # No secret reaches the SIEM topic or audit.events.
    for m in siem + events:
        assert b"SECRET-tok-123" not in m.value
    assert b"page=1" in one(plain[1])[0]["http_request"]["url"]["url_string"].encode()
    # Outputs stay on the partition the receiver chose by trace id (the mesh input's).
    n = topic_settings.partitions
    traced = [(m, json.loads(m.value)["metadata"].get("correlation_uid")) for m in siem]
    assert sum(1 for _, tid in traced if tid) >= len(plain) + len(span_first) + len(denied)
    for m, tid in traced:
        if tid:
            assert m.partition == partition_for(tid.encode(), n)
    for m in events:
        for ev in decode_packed(m.value)[1]:
            if ev["trace"].get("trace_id"):
                assert m.partition == partition_for(ev["trace"]["trace_id"].encode(), n)
    assert len(dead) == 1
    headers = dict(dead[0].headers)
    assert headers["origin-topic"] == topic_settings.logs.encode()
    assert b"undecodable" in headers["error"]
    counters = stats["counters"]
    assert counters['events_total{correlation="joined"}'] == len(plain) + len(span_first) + len(
        denied
    )
    assert counters["redacted_total"] >= 1
    assert counters["join_deduplicated_total"] >= 5  # the re-sent logs (and their spans)
    assert stats["pending"] == 0


async def test_worker_killed_mid_stream_loses_nothing(
    pipeline_env: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    rng = random.Random(7)
    env = worker_env({**pipeline_env, "AUDIT_STREAM_SIEM_FORMAT": "native"}, tmp_path)
    batches = [make_requests(rng, 60, time.time_ns(), Mix(span_only=0.05)) for _ in range(8)]
    bootstrap = env["AUDIT_STREAM_KAFKA_BOOTSTRAP"]
    worker = start_worker(env, tmp_path, "worker-1")
    with run_receiver(pipeline_env, tmp_path) as rcv:
        for b in batches[:4]:
            send_logs(rcv.grpc, b)
            send_spans(rcv.grpc, b)
        send_logs(rcv.grpc, batches[4])  # their spans come after the crash
        time.sleep(1.0)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)
        send_spans(rcv.grpc, batches[4])
        for b in batches[5:]:
            send_spans(rcv.grpc, b)
            send_logs(rcv.grpc, b)
        worker = start_worker(env, tmp_path, "worker-2")
        try:
            expected = {r.request_id for b in batches for r in b}
            siem = await read_messages(
                bootstrap,
                topic_settings.siem,
                len(expected),
                timeout=90,
                done=lambda msgs: set(_by_request_id(msgs)) >= expected,
            )
            stats = worker.stats()
        finally:
            worker.proc.send_signal(signal.SIGTERM)
            worker.proc.wait(30)

    by_rid = _by_request_id(siem)
    missing = [r for b in batches for r in b if r.request_id in expected - set(by_rid)]
    assert set(by_rid) == expected, (missing, stats)  # every request has its event, none invented
    for rid, docs in by_rid.items():
        # Replays after the crash may repeat an event, but only under the same event id.
        assert len({d["event_id"] for d, _ in docs}) == 1, rid
    # Both halves of every traced request were re-read as needed and joined, crash or not.
    joined = {
        rid for rid, docs in by_rid.items() if any(d["correlation"] == "joined" for d, _ in docs)
    }
    assert joined == {r.request_id for b in batches for r in b if r.trace_id and r.log}


def test_worker_refuses_topics_that_are_not_copartitioned(
    pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    env = {
        **pipeline_env,
        "AUDIT_STREAM_TOPIC_LOGS": pipeline_env["AUDIT_STREAM_TOPIC_LOGS"] + ".x",
        "AUDIT_STREAM_PARTITIONS": "2",
    }
    assert cli(env, "topics", "create").returncode == 2  # created, then the check refuses
    out = cli(worker_env(env, tmp_path), "worker", timeout=60)
    assert out.returncode == 2
    assert "co-partitioned" in out.stderr and "--partitions 3" in out.stderr


def test_worker_refuses_an_invalid_retention_policy(
    pipeline_env: dict[str, str], tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "default: {class: standard, days: 90}\n"
        "rules:\n"
        "  - name: x\n"
        "    match: {request.path: '/a*'}\n"
        "    class: short\n"
        "    days: -1\n"
    )
    out = cli(
        worker_env({**pipeline_env, "AUDIT_STREAM_RETENTION_POLICY": str(policy)}, tmp_path),
        "worker",
        timeout=60,
    )
    assert out.returncode == 2
    assert f"{policy}:6" in out.stderr  # points at the offending line


async def test_topic_per_class_routes_each_class_to_its_own_topic(
    pipeline_env: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    """With TOPIC_PER_CLASS the worker writes each event only to the SIEM topic of its retention
    class (`topics create` makes those; their retention.ms is checked in test_kafka_basics)."""
    env = {**pipeline_env, "AUDIT_STREAM_TOPIC_PER_CLASS": "true"}
    created = cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    bootstrap = env["AUDIT_STREAM_KAFKA_BOOTSTRAP"]
    classes = ("security", "standard", "pci", "privileged")  # the example policy's

    rng = random.Random(5)
    now = time.time_ns()
    plain = make_requests(rng, 12, now, PLAIN)
    denied = [
        replace(r, status=403, details="rbac_access_denied_matched_policy[none]")
        for r in make_requests(rng, 4, now, PLAIN)
    ]
    worker = start_worker(worker_env(env, tmp_path), tmp_path)
    try:
        with run_receiver(env, tmp_path) as rcv:
            send_logs(rcv.grpc, plain + denied)
            send_spans(rcv.grpc, plain + denied)
        got: dict[str, list[Any]] = {}
        for cls in classes:
            topic = f"{topic_settings.siem}.{cls}"
            got[cls] = await read_messages(bootstrap, topic, 0, timeout=1, settle=0.5)
        total = len(plain) + len(denied)
        deadline = time.monotonic() + 60
        # The worker may still be writing: read again until all arrived (or the deadline).
        while sum(map(len, got.values())) < total and time.monotonic() < deadline:
            for cls in classes:
                topic = f"{topic_settings.siem}.{cls}"
                got[cls] = await read_messages(bootstrap, topic, 0, timeout=1, settle=1.0)
        base = await read_messages(bootstrap, topic_settings.siem, 0, timeout=1, settle=0.5)
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)

    for cls, messages in got.items():
        assert all(dict(m.headers)["retention-class"] == cls.encode() for m in messages), cls
    assert sorted(_by_request_id(got["security"])) == sorted(r.request_id for r in denied)
    others = [m for cls in classes if cls != "security" for m in got[cls]]
    assert sorted(_by_request_id(others)) == sorted(r.request_id for r in plain)
    assert base == []  # nothing goes to the base topic when every class has its own
