"""The agent's acknowledgement discipline, with a recording publisher instead of Kafka."""

from __future__ import annotations

import random
import time
from typing import Any

import orjson
import pytest

from audit_stream.errors import KafkaUnavailable
from audit_stream.join.correlator import JoinConfig
from audit_stream.metrics import Registry
from audit_stream.pipeline import AuditPipeline, Origin
from audit_stream.receiver.decode import decode_logs, decode_spans
from audit_stream.retention import DEFAULT_POLICY
from audit_stream.siem import Redactor
from audit_stream.siem.output import AuditOutput
from audit_stream.traffic import Mix, logs_request, make_requests, spans_request


class FakeEvent:
    def __init__(self, log: list[int], offset: int) -> None:
        self._log, self.offset = log, offset

    def ack(self) -> None:
        self._log.append(self.offset)


class RecordingPublisher:
    def __init__(self) -> None:
        self.siem: list[bytes] = []
        self.fail = False

    async def partitions(self, topic: str) -> int:
        return 3

    async def send_grouped(
        self, topic: str, groups: dict[int, list[tuple[bytes, bytes, Any]]]
    ) -> None:
        if self.fail:
            raise KafkaUnavailable("down", 1)
        self.siem.extend(value for records in groups.values() for _, value, _ in records)

    async def send_many(self, messages: list[Any]) -> None:
        if self.fail:
            raise KafkaUnavailable("down", 1)


def _pipeline(pub: RecordingPublisher) -> AuditPipeline:
    return AuditPipeline(
        JoinConfig(window_ns=10**9, grace_ns=0, max_hold_seconds=3600),
        AuditOutput(DEFAULT_POLICY, Redactor(), "native", "siem"),
        pub,  # type: ignore[arg-type]
        Registry(),
        events_topic="events",
        deadletter_topic="dead",
    )


def _packed(signal: str, records: list[Any]) -> bytes:
    return orjson.dumps({"v": 1, "signal": signal, "records": records})


async def test_acks_follow_offset_order_and_wait_for_output() -> None:
    now = time.time_ns()
    rng = random.Random(3)
    plain = Mix(denied=0, no_trace=0, with_user=0, with_secret=0, span_only=0)
    first, second = make_requests(rng, 5, now, plain), make_requests(rng, 5, now, plain)
    acked: list[int] = []
    pub = RecordingPublisher()
    p = _pipeline(pub)

    def msg(offset: int, topic: str, records: list[Any]) -> None:
        signal = "log" if topic == "logs" else "span"
        p.on_message(Origin(FakeEvent(acked, offset), topic, 0, offset), _packed(signal, records))

    logs1 = decode_logs(logs_request(first), now).records
    logs2 = decode_logs(logs_request(second), now).records
    # offset 0 waits for spans that come later; offset 1 is complete as soon as its spans come.
    msg(0, "logs", logs1)
    msg(1, "logs", logs2)
    msg(0, "spans", decode_spans(spans_request(second), now).records)
    await p.flush()
    assert acked == [0]  # the spans message; logs offset 1 is done but waits behind offset 0
    assert len(pub.siem) == 5
    pub.fail = True
    msg(1, "spans", decode_spans(spans_request(first), now).records)
    with pytest.raises(KafkaUnavailable):
        await p.flush()
    assert acked == [0]  # nothing is acknowledged before Kafka took the output
    pub.fail = False
    await p.flush()
    assert sorted(acked) == [0, 0, 1, 1]
    assert len(pub.siem) == 10
    assert p.pending() == 0


async def test_undecodable_message_is_dead_lettered_and_acked_in_order() -> None:
    acked: list[int] = []
    pub = RecordingPublisher()
    p = _pipeline(pub)
    p.on_message(Origin(FakeEvent(acked, 7), "logs", 0, 7), b"garbage")
    await p.flush()
    assert acked == [7]
