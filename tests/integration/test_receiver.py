"""The receiver as a real process, fed by the real OpenTelemetry SDK exporters, read back from Kafka."""

from __future__ import annotations

import gzip
import json
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

from audit_stream.config import TopicSettings
from audit_stream.kafka.partitioner import partition_for
from tests.conftest import FIXTURES, ROOT, kafka_local
from tests.support import cli, free_port, read_packed, records_of, run_receiver, topic_env

pytestmark = pytest.mark.integration

ISTIO_LINE = (
    '[2026-10-09T07:54:53.132Z] "GET /reviews/{n}?token=abc HTTP/1.1" 200 - via_upstream - "-" 0 19 4 3 '
    '"-" "curl/8.11.1" "req-{n}" "reviews:9080" "10.244.0.12:9080" '
    "inbound|9080|| 127.0.0.6:48211 10.244.0.12:9080 10.244.0.11:37238 "
    "outbound_.9080_._.reviews.bookinfo.svc.cluster.local default\n"
)


@pytest.fixture
def topics(kafka_bootstrap: str, topic_settings: TopicSettings) -> dict[str, str]:
    env = topic_env(kafka_bootstrap, topic_settings)
    created = cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    return env


def _sdk_traffic(n: int, span_exporter: Any, log_exporter: Any) -> list[tuple[str, str]]:
    """Emit ``n`` requests (a SERVER span plus an access log inside it) through the real SDK."""
    resource = Resource.create(
        {"service.name": "reviews.bookinfo", "k8s.namespace.name": "bookinfo"}
    )
    tp = TracerProvider(resource=resource)
    tp.add_span_processor(BatchSpanProcessor(span_exporter, max_export_batch_size=200))
    lp = LoggerProvider(resource=resource)
    lp.add_log_record_processor(BatchLogRecordProcessor(log_exporter, max_export_batch_size=200))
    tracer = tp.get_tracer("envoy")
    logger = lp.get_logger("envoy.access")
    ids = []
    for i in range(n):
        with tracer.start_as_current_span(
            "reviews:9080/*",
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.method": "GET",
                "http.url": f"http://reviews:9080/reviews/{i}",
                "http.status_code": "200",
                "guid:x-request-id": f"req-{i}",
                "upstream_cluster": "inbound|9080||",
            },
        ) as span:
            ctx = span.get_span_context()
            logger.emit(
                body=ISTIO_LINE.format(n=i),
                attributes={"peer_principal": "spiffe://cluster.local/ns/bookinfo/sa/productpage"},
            )
            ids.append((f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"))
    assert tp.force_flush(30_000)
    assert lp.force_flush(30_000)
    tp.shutdown()
    lp.shutdown()
    return ids


def _check_placement(consumed: list[Any], partitions: int) -> None:
    for c in consumed:
        trace_ids = {r["trace_id"] for r in c.records}
        for t in trace_ids:
            assert partition_for(t.encode(), partitions) == c.partition
        assert c.key is not None and partition_for(c.key, partitions) == c.partition
        assert int(c.headers["records"]) == len(c.records)


@pytest.mark.parametrize("transport", ["grpc", "http"])
async def test_sdk_exporters_land_on_kafka_keyed_by_trace_id(
    transport: str, topics: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    n = 60
    with run_receiver(topics, tmp_path) as rcv:
        if transport == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            se: Any = OTLPSpanExporter(endpoint=rcv.grpc, insecure=True)
            le: Any = OTLPLogExporter(endpoint=rcv.grpc, insecure=True)
        else:
            from opentelemetry.exporter.otlp.proto.http._log_exporter import (
                OTLPLogExporter as HttpLogExporter,
            )
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HttpSpanExporter,
            )

            se = HttpSpanExporter(endpoint=f"{rcv.http}/v1/traces")
            le = HttpLogExporter(endpoint=f"{rcv.http}/v1/logs")
        ids = _sdk_traffic(n, se, le)
        bootstrap = topics["AUDIT_STREAM_KAFKA_BOOTSTRAP"]
        logs = await read_packed(bootstrap, topic_settings.logs, n)
        spans = await read_packed(bootstrap, topic_settings.spans, n)
        m = rcv.metrics()

    log_records = records_of(logs)
    span_records = records_of(spans)
    assert len(log_records) == n and len(span_records) == n  # exactly once, nothing extra
    _check_placement(logs, topic_settings.partitions)
    _check_placement(spans, topic_settings.partitions)
    assert {(r["trace_id"], r["span_id"]) for r in log_records} == set(ids)
    assert {(r["trace_id"], r["span_id"]) for r in span_records} == set(ids)
    by_req = {r["fields"]["request_id"]: r for r in log_records}
    first = by_req["req-7"]
    assert first["format"] == "istio_text"
    assert first["fields"]["method"] == "GET"
    assert first["fields"]["path"] == "/reviews/7?token=abc"
    assert first["fields"]["response_code"] == 200
    assert (
        first["fields"]["source_principal"] == "spiffe://cluster.local/ns/bookinfo/sa/productpage"
    )
    assert first["resource"]["service.name"] == "reviews.bookinfo"
    span7 = next(s for s in span_records if s["fields"].get("request_id") == "req-7")
    assert span7["kind"] == "server" and span7["request"] is True
    assert span7["fields"]["response_code"] == 200  # a string tag parsed to int
    for sig in ("logs", "spans"):
        received = m[f'received_records_total{{signal="{sig}"}}']
        published = m[f'published_records_total{{signal="{sig}"}}']
        rejected = m.get(f'rejected_records_total{{signal="{sig}"}}', 0.0)
        assert received == n and published + rejected == received


def _post(
    url: str, body: bytes, ctype: str, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(
        url, data=body, method="POST", headers={"Content-Type": ctype, **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        # refused, reset, or never answered (queued while the server shut down): not accepted
        return 0, {}, b""


async def test_json_fixtures_parse_and_partial_success(
    topics: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    names = [
        "istio_default_als_log.json",
        "istio_labels_rbac_deny_log.json",
        "envoy_builtin_labels_log.json",
    ]
    with run_receiver(topics, tmp_path) as rcv:
        for name in names:
            status, _, body = _post(
                f"{rcv.http}/v1/logs", (FIXTURES / name).read_bytes(), "application/json"
            )
            assert status == 200, body
            assert json.loads(body) == {}
        # gzip + one record with a wrong-length trace id: partial success, the rest published.
        doc = json.loads((FIXTURES / "istio_default_als_log.json").read_text())
        good = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]
        bad = dict(good, traceId="abcd")
        doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"] = [good, bad]
        status, _, body = _post(
            f"{rcv.http}/v1/logs",
            gzip.compress(json.dumps(doc).encode()),
            "application/json",
            {"Content-Encoding": "gzip"},
        )
        assert status == 200
        partial = json.loads(body)["partialSuccess"]
        assert partial["rejectedLogRecords"] == "1"
        assert "trace" in partial["errorMessage"].lower()
        span_status, _, _ = _post(
            f"{rcv.http}/v1/traces",
            (FIXTURES / "istio_sidecar_span.json").read_bytes(),
            "application/json",
        )
        assert span_status == 200
        bootstrap = topics["AUDIT_STREAM_KAFKA_BOOTSTRAP"]
        logs = records_of(await read_packed(bootstrap, topic_settings.logs, 4))
        spans = records_of(await read_packed(bootstrap, topic_settings.spans, 1))
        m = rcv.metrics()
    assert len(logs) == 4 and len(spans) == 1
    deny = next(r for r in logs if r["fields"].get("response_code") == 403)
    assert deny["fields"]["response_code_details"] == "rbac_access_denied_matched_policy[none]"
    assert deny["fields"]["source_principal"] == "spiffe://cluster.local/ns/starfleet/sa/probe"
    envoy = next(r for r in logs if r["trace_id"] is None)
    assert envoy["correlatable"] is False
    assert envoy["fields"]["method"] == "POST" and envoy["fields"]["path"] == "/api/orders"
    # The same record sent twice (plain and gzip) keeps one id: retries are recognisable downstream.
    default_ids = [r["id"] for r in logs if r["trace_id"] == "5b8efff798038103d269b633813fc60c"]
    assert len(default_ids) == 2 and default_ids[0] == default_ids[1]
    assert spans[0]["fields"]["response_code"] == 200
    assert m['received_records_total{signal="logs"}'] == 5
    assert m['rejected_records_total{signal="logs"}'] == 1
    assert m['published_records_total{signal="logs"}'] == 4


async def test_bad_requests_get_the_right_codes(topics: dict[str, str], tmp_path: Path) -> None:
    env = {
        **topics,
        "AUDIT_STREAM_AUTH_TOKENS": "good-token",
        "AUDIT_STREAM_MAX_REQUEST_BYTES": "200000",
        "AUDIT_STREAM_MAX_DECOMPRESSED_BYTES": "400000",
        "AUDIT_STREAM_MAX_INFLIGHT_BYTES": "400000",
    }
    auth = {"Authorization": "Bearer good-token"}
    fixture = (FIXTURES / "istio_default_als_log.json").read_bytes()
    with run_receiver(env, tmp_path) as rcv:
        url = f"{rcv.http}/v1/logs"
        assert _post(url, fixture, "application/json")[0] == 401
        assert _post(url, fixture, "application/json", {"Authorization": "Bearer nope"})[0] == 401
        assert _post(url, fixture, "application/json", auth)[0] == 200
        status, _, _ = _post(url, b"\x0a\xff\xff\xff", "application/x-protobuf", auth)
        assert status == 400
        assert _post(url, b"{not json", "application/json", auth)[0] == 400
        assert _post(url, fixture, "text/plain", auth)[0] == 400
        assert _post(url, b"x" * 300_000, "application/x-protobuf", auth)[0] == 413
        bomb = gzip.compress(b"\x00" * 5_000_000)  # ~5 kB that inflates to 5 MB
        assert (
            _post(url, bomb, "application/x-protobuf", {**auth, "Content-Encoding": "gzip"})[0]
            == 413
        )

        with grpc.insecure_channel(rcv.grpc) as ch:
            export = ch.unary_unary(
                "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                request_serializer=None,
                response_deserializer=logs_service_pb2.ExportLogsServiceResponse.FromString,
            )
            with pytest.raises(grpc.RpcError) as err:
                export(
                    b"\x0a\xff\xff\xff",
                    metadata=[("authorization", "Bearer good-token")],
                    timeout=10,
                )
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            with pytest.raises(grpc.RpcError) as err:
                export(b"", timeout=10)
            assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
            # Bad ids and absurd times are rejected one by one, via partial_success.
            req = logs_service_pb2.ExportLogsServiceRequest()
            rl = req.resource_logs.add().scope_logs.add()
            for tid, t in (
                (b"\x01" * 16, time.time_ns()),
                (b"\x00" * 16, time.time_ns()),
                (b"\x01" * 3, time.time_ns()),
                (b"\x02" * 16, 1),
            ):
                rec = rl.log_records.add(trace_id=tid, span_id=b"\x03" * 8, time_unix_nano=t)
                rec.body.string_value = "GET /"
            resp = export(
                req.SerializeToString(),
                metadata=[("authorization", "Bearer good-token")],
                timeout=10,
            )
            assert resp.partial_success.rejected_log_records == 3
            assert resp.partial_success.error_message
            spans = ch.unary_unary(
                "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
                request_serializer=None,
                response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
            )
            big = b"\x0a" + b"\xff" * 450_000
            with pytest.raises(grpc.RpcError) as err:
                spans(big, metadata=[("authorization", "Bearer good-token")], timeout=10)
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def _free_port_pair() -> int:
    """A port whose successor is free too (the broker's controller listens on port + 1)."""
    import socket

    for _ in range(50):
        p = free_port()
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", p + 1))
            except OSError:
                continue
        return p
    raise AssertionError("no free port pair")


async def test_kafka_down_is_retryable_and_sdk_retry_lands(
    topic_settings: TopicSettings, tmp_path: Path
) -> None:
    """Stop the broker under a running receiver: 503/UNAVAILABLE with Retry-After, overload is 429,
    and the SDK exporter's own retry delivers once Kafka is back."""
    outage_port = _free_port_pair()  # a broker of its own: this test stops it
    started = kafka_local_on(outage_port, "start")
    assert started.returncode == 0, started.stderr
    bootstrap = f"127.0.0.1:{outage_port}"
    env = {
        **topic_env(bootstrap, topic_settings),
        "AUDIT_STREAM_KAFKA_TIMEOUT_SECONDS": "2",
        # room for one large request in flight, not two
        "AUDIT_STREAM_MAX_REQUEST_BYTES": "3000000",
        "AUDIT_STREAM_MAX_DECOMPRESSED_BYTES": "3000000",
        "AUDIT_STREAM_MAX_INFLIGHT_BYTES": "3000000",
    }
    try:
        assert cli(env, "topics", "create").returncode == 0
        fixture = (FIXTURES / "istio_default_als_log.json").read_bytes()
        with run_receiver(env, tmp_path) as rcv:
            assert _post(f"{rcv.http}/v1/logs", fixture, "application/json")[0] == 200
            assert kafka_local_on(outage_port, "stop").returncode == 0
            # While one request waits for Kafka, a request that would pass the in-flight bound is 429.
            big = json_fixture_as_protobuf(fixture, copies=5_000)
            assert 1_500_000 < len(big) < 3_000_000
            results: list[int] = []
            waiting = threading.Thread(
                target=lambda: results.append(
                    _post(f"{rcv.http}/v1/logs", big, "application/x-protobuf")[0]
                )
            )
            waiting.start()
            time.sleep(0.7)
            status, headers, _ = _post(f"{rcv.http}/v1/logs", big, "application/x-protobuf")
            waiting.join(30)
            assert status == 429 and int(headers["Retry-After"]) > 0
            assert results == [503]

            status, headers, _ = _post(f"{rcv.http}/v1/logs", fixture, "application/json")
            assert status == 503
            assert int(headers["Retry-After"]) > 0
            with grpc.insecure_channel(rcv.grpc) as ch:
                export = ch.unary_unary(
                    "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
                    request_serializer=None,
                    response_deserializer=None,
                )
                with pytest.raises(grpc.RpcError) as err:
                    export(json_fixture_as_protobuf(fixture), timeout=20)
                assert err.value.code() == grpc.StatusCode.UNAVAILABLE
                assert any(k == "grpc-status-details-bin" for k, _ in err.value.trailing_metadata())

            # The SDK exporter retries UNAVAILABLE; bring Kafka back while it does.
            from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

            restarter = threading.Timer(3.0, lambda: kafka_local_on(outage_port, "start"))
            restarter.start()
            ids = _sdk_traffic(
                5,
                OTLPSpanExporter(endpoint=rcv.grpc, insecure=True, timeout=60),
                OTLPLogExporter(endpoint=rcv.grpc, insecure=True, timeout=60),
            )
            restarter.join()
            logs = records_of(await read_packed(bootstrap, topic_settings.logs, 6, timeout=40))
            assert {(r["trace_id"], r["span_id"]) for r in logs} >= set(ids)
            m = rcv.metrics()
            assert m['failed_records_total{signal="logs"}'] >= 1
            assert rcv.terminate() == 0
    finally:
        kafka_local_on(outage_port, "stop")
        shutil.rmtree(ROOT / ".run" / f"kafka-{outage_port}", ignore_errors=True)


def kafka_local_on(port: int, action: str) -> Any:
    return kafka_local(action, port=port)


def json_fixture_as_protobuf(fixture: bytes, copies: int = 1) -> bytes:
    from audit_stream.receiver.decode import parse_logs_request

    req = parse_logs_request(fixture, "application/json")
    if copies > 1:
        recs = req.resource_logs[0].scope_logs[0].log_records
        one = recs[0]
        for _ in range(copies - 1):
            recs.add().CopyFrom(one)
    return bytes(req.SerializeToString())


async def test_sigterm_drains_and_flushes(
    topics: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    """SIGTERM while clients are sending: every request answered 200 is on Kafka, the process
    exits 0, and later requests are refused at the door (never half-accepted)."""
    fixture = (FIXTURES / "istio_labels_rbac_deny_log.json").read_bytes()
    statuses: list[int] = []
    with run_receiver(topics, tmp_path) as rcv:
        url = f"{rcv.http}/v1/logs"

        def client() -> None:
            for _ in range(5_000):  # until the server stops answering
                statuses.append(_post(url, fixture, "application/json")[0])
                if statuses[-1] != 200:
                    return

        threads = [threading.Thread(target=client) for _ in range(8)]
        for t in threads:
            t.start()
        time.sleep(0.5)
        code = rcv.terminate()
        for t in threads:
            t.join(60)
    assert code == 0
    ok = statuses.count(200)
    assert 0 < ok < len(statuses)  # the signal really arrived mid-stream
    assert set(statuses) <= {200, 0, 503}
    logs = records_of(
        await read_packed(topics["AUDIT_STREAM_KAFKA_BOOTSTRAP"], topic_settings.logs, ok)
    )
    assert len(logs) == ok
