"""Packed Kafka messages (audit_stream.kafka.codec): pack_records against pack, decode_packed."""

from __future__ import annotations

import random
from typing import Any

import orjson
import pytest

from audit_stream.kafka.codec import CONTENT_TYPES, Signal, decode_packed, pack, pack_records


def _records(rnd: random.Random, n: int) -> list[dict[str, Any]]:
    """Records of uneven sizes, with the value types the receiver publishes."""
    return [
        {
            "id": f"{rnd.getrandbits(128):032x}",
            "time_unix_nano": 1_800_000_000_000_000_000 + i,
            "trace_id": f"{rnd.getrandbits(128):032x}" if rnd.random() < 0.9 else None,
            "correlatable": True,
            "fields": {"path": "/x" * rnd.randrange(0, 400), "response_code": 200},
            "attributes": {"é": "ü" * rnd.randrange(0, 20), "n": None, "l": [1, 2.5]},
        }
        for i in range(n)
    ]


def _reference(
    signal: Signal, partition: int, key: bytes | None, recs: list[dict[str, Any]], max_bytes: int
) -> list[Any]:
    return list(pack(signal, partition, key, [orjson.dumps(r) for r in recs], max_bytes))


@pytest.mark.parametrize("signal", ["log", "span", "event"])
def test_pack_records_gives_the_messages_of_pack(signal: Signal) -> None:
    rnd = random.Random(signal)
    for _ in range(60):
        recs = _records(rnd, rnd.randrange(1, 80))
        total = len(orjson.dumps({"v": 1, "signal": signal, "records": recs}))
        # below, at and above the size of everything in one message, and tiny limits
        for max_bytes in (1_000, 5_000, total - 1, total, total + 1, 10 * total):
            for hint in (0.0, 1e9):  # try one call first, or go straight to one per record
                got = pack_records(signal, 3, b"k", recs, max_bytes, hint)
                assert got == _reference(signal, 3, b"k", recs, max_bytes)


def test_pack_records_one_message_when_everything_fits() -> None:
    recs = _records(random.Random(1), 50)
    [msg] = pack_records("log", 5, None, recs, 1 << 20)
    assert (msg.partition, msg.key, msg.count) == (5, None, 50)
    assert msg.value.startswith(b'{"v":1,"signal":"log","records":[{')
    assert decode_packed(msg.value) == ("log", orjson.loads(orjson.dumps(recs)))
    assert msg.headers("log") == [("content-type", CONTENT_TYPES["log"]), ("records", b"50")]


def test_pack_records_splits_in_order_and_keeps_the_limit() -> None:
    recs = _records(random.Random(2), 300)
    msgs = pack_records("log", 0, b"key", recs, 20_000)
    assert len(msgs) > 1
    back: list[Any] = []
    for m in msgs:
        assert len(m.value) < 20_000
        assert m.key == b"key"
        signal, part = decode_packed(m.value)
        assert signal == "log" and len(part) == m.count
        back.extend(part)
    assert back == orjson.loads(orjson.dumps(recs))


def test_pack_records_single_record_may_exceed_the_limit() -> None:
    big = {"fields": {"path": "/" + "a" * 5_000}}
    [msg] = pack_records("span", 1, None, [big], 1_000)
    assert msg.count == 1 and len(msg.value) > 1_000
    assert decode_packed(msg.value) == ("span", [big])
    two = pack_records("span", 1, None, [big, big], 1_000)
    assert [m.count for m in two] == [1, 1]


def test_pack_records_of_nothing_and_of_a_tuple() -> None:
    assert pack_records("log", 0, None, [], 1_000) == []
    recs = _records(random.Random(3), 4)
    assert pack_records("log", 0, None, tuple(recs), 1 << 20) == _reference(
        "log", 0, None, recs, 1 << 20
    )


@pytest.mark.parametrize(
    "value",
    [b"[]", b'{"v":2,"signal":"log","records":[]}', b'{"v":1,"signal":"x","records":[]}'],
)
def test_decode_packed_refuses_other_documents(value: bytes) -> None:
    with pytest.raises(ValueError):
        decode_packed(value)
