"""The receiver core (audit_stream.receiver.ingest) and the publisher it drives, without Kafka."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

import jsonschema
import orjson
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

from audit_stream.config import KafkaSettings, ReceiverSettings, TopicSettings
from audit_stream.kafka import publisher as publisher_module
from audit_stream.kafka.codec import CONTENT_TYPES, decode_packed, pack
from audit_stream.kafka.partitioner import partition_for
from audit_stream.kafka.publisher import OutMessage, Publisher
from audit_stream.metrics import Registry
from audit_stream.receiver.decode import decode_logs
from audit_stream.receiver.ingest import Ingest

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000_000_000_000
LOG_SCHEMA = jsonschema.Draft202012Validator(
    json.loads((ROOT / "schemas" / "mesh_log.v1.json").read_text())
)


def _line(rnd: random.Random) -> str:
    port = rnd.choice((8000, 9080))
    return (
        f'[2026-11-27T10:00:00.{rnd.randrange(1000):03d}Z] "GET /api/{rnd.randrange(10**6)} '
        f'HTTP/1.1" 200 - via_upstream - "-" 0 {rnd.randrange(9000)} 3 2 "-" "curl/8.5.0" '
        f'"{rnd.getrandbits(64):016x}" "svc:{port}" "10.0.0.1:{port}" '
        f"outbound|{port}||svc.ns.svc.cluster.local 10.0.0.2:4000 10.0.0.3:{port} "
        f"10.0.0.4:5000 - default\n"
    )


def _request(rnd: random.Random, n: int, untraced: float) -> ExportLogsServiceRequest:
    req = ExportLogsServiceRequest()
    for pod in range(3):
        rl = req.resource_logs.add()
        rl.resource.attributes.add(key="k8s.pod.name").value.string_value = f"pod-{pod}"
        sl = rl.scope_logs.add()
        for _ in range(n // 3):
            rec = sl.log_records.add()
            rec.time_unix_nano = NOW - rnd.randrange(10**9)
            if rnd.random() >= untraced:
                rec.trace_id = rnd.randbytes(16)
                rec.span_id = rnd.randbytes(8)
            rec.body.string_value = _line(rnd)
    return req


def _ingest(max_batch_bytes: int = 1024 * 1024) -> Ingest:
    settings = ReceiverSettings(max_batch_bytes=max_batch_bytes)
    return Ingest(settings, TopicSettings(), None, Registry())  # type: ignore[arg-type]


def _reference_place(
    records: Sequence[dict[str, Any]], partitions: int, max_bytes: int, spread: int
) -> list[OutMessage]:
    """Placement spelled out one record at a time (murmur2 per id, one dumps per record);
    untraced records go round-robin from ``spread``, the number placed before."""
    groups: dict[int, list[bytes]] = {}
    keys: dict[int, bytes | None] = {}
    for rec in records:
        tid = rec["trace_id"]
        if tid is None:
            p, key = spread % partitions, None
            spread += 1
        else:
            p, key = partition_for(tid.encode(), partitions), tid.encode()
        if p not in groups:
            groups[p], keys[p] = [], key
        elif keys[p] is None:
            keys[p] = key
        groups[p].append(orjson.dumps(rec))
    return [
        OutMessage("t.logs", m.value, m.key, p, m.headers("log"))
        for p, encoded in groups.items()
        for m in pack("log", p, keys[p], encoded, max_bytes)
    ]


@pytest.mark.parametrize("untraced", [0.0, 0.1, 1.0])
@pytest.mark.parametrize("max_batch_bytes", [1024 * 1024, 20_000, 1_000])
def test_place_matches_placement_record_by_record(untraced: float, max_batch_bytes: int) -> None:
    rnd = random.Random(f"{untraced}-{max_batch_bytes}")
    for partitions in (1, 6, 7):
        ingest = _ingest(max_batch_bytes)
        spread = 0
        for _ in range(3):  # later requests use the record size seen in earlier ones
            records = decode_logs(_request(rnd, 300, untraced), NOW).records
            got = ingest._place("log", "t.logs", partitions, records)
            assert got == _reference_place(records, partitions, max_batch_bytes, spread)
            spread += sum(1 for r in records if r["trace_id"] is None)


def test_placed_messages_hold_every_record_once_on_its_trace_partition() -> None:
    records = decode_logs(_request(random.Random(9), 600, 0.1), NOW).records
    messages = _ingest(50_000)._place("log", "t.logs", 6, records)
    seen: list[dict[str, Any]] = []
    for m in messages:
        headers = dict(m.headers)
        assert headers["content-type"] == CONTENT_TYPES["log"]
        signal, part = decode_packed(m.value)
        assert signal == "log" and int(headers["records"]) == len(part)
        assert len(m.value) < 50_000
        for rec in part:
            LOG_SCHEMA.validate(rec)
            if rec["trace_id"] is not None:
                assert partition_for(rec["trace_id"].encode(), 6) == m.partition
        seen.extend(part)
    assert sorted(r["id"] for r in seen) == sorted(r["id"] for r in records)
    position = {r["id"]: i for i, r in enumerate(records)}
    for p in {m.partition for m in messages}:
        mine = [m for m in messages if m.partition == p]
        recs = [r for m in mine for r in decode_packed(m.value)[1]]
        # records keep the order they came in; every message of the partition is keyed by the
        # first trace id among its records
        assert [r["id"] for r in recs] == sorted((r["id"] for r in recs), key=position.get)
        traced = [r["trace_id"].encode() for r in recs if r["trace_id"] is not None]
        assert {m.key for m in mine} == {traced[0] if traced else None}


class _Recorder:
    """Stands in for Publisher: partitions and acknowledged sends."""

    def __init__(self) -> None:
        self.sent: list[OutMessage] = []

    async def partitions(self, topic: str) -> int:
        return 6

    async def send_many(self, messages: Sequence[OutMessage]) -> None:
        self.sent.extend(messages)


def test_export_logs_publishes_every_decoded_record() -> None:
    req = _request(random.Random(4), 90, 0.1)
    bad = req.resource_logs[0].scope_logs[0].log_records.add(trace_id=b"\x01" * 3)
    bad.time_unix_nano = NOW
    recorder = _Recorder()
    metrics = Registry()
    ingest = Ingest(ReceiverSettings(), TopicSettings(), recorder, metrics, clock=lambda: NOW)  # type: ignore[arg-type]
    result = asyncio.run(ingest.export_logs(req))
    assert (result.accepted, result.rejected) == (90, 1)
    assert "trace_id is 3 bytes" in result.message
    published = [r for m in recorder.sent for r in decode_packed(m.value)[1]]
    expected = orjson.loads(orjson.dumps(decode_logs(req, NOW).records))
    assert sorted(published, key=lambda r: r["id"]) == sorted(expected, key=lambda r: r["id"])
    assert {m.topic for m in recorder.sent} == {TopicSettings().logs}
    assert metrics.get("published_records_total", signal="logs") == 90
    assert metrics.get("rejected_records_total", signal="logs") == 1


class _Producer:
    """Stands in for AIOKafkaProducer: records what was enqueued, and can hold a send()."""

    made: ClassVar[list[_Producer]] = []

    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.enqueued: list[bytes] = []
        self.hold: asyncio.Event | None = None
        _Producer.made.append(self)

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def send(self, topic: str, value: bytes, **kwargs: Any) -> asyncio.Future[None]:
        if self.hold is not None and value.endswith(b"-held"):
            await self.hold.wait()
        self.enqueued.append(value)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def test_publisher_defaults_and_requests_enqueue_in_arrival_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publisher_module, "AIOKafkaProducer", _Producer)

    async def scenario() -> list[bytes]:
        pub = Publisher(KafkaSettings())
        await pub.start(wait=True)
        producer = _Producer.made[-1]
        assert producer.kwargs["compression_type"] == "zstd"
        assert producer.kwargs["max_batch_size"] == 1_000_000
        producer.hold = asyncio.Event()
        first = [OutMessage("t", b"a1-held"), OutMessage("t", b"a2"), OutMessage("t", b"a3")]
        second = [OutMessage("t", b"b1"), OutMessage("t", b"b2")]
        a = asyncio.create_task(pub.send_many(first))
        await asyncio.sleep(0)  # a is waiting for the producer
        b = asyncio.create_task(pub.send_many(second))
        await asyncio.sleep(0.01)  # b arrived while a was still enqueueing
        producer.hold.set()
        await asyncio.gather(a, b)
        await pub.stop()
        return producer.enqueued

    assert asyncio.run(scenario()) == [b"a1-held", b"a2", b"a3", b"b1", b"b2"]
