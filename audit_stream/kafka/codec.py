"""The packed message format of ``mesh.logs`` and ``mesh.spans``.

One Kafka message carries many records that all belong to one partition (the partition Kafka's
murmur2 partitioner picks for each record's trace id). Packing is what lets the join keep up: the
worker pays a fixed cost per Kafka message, so a message of a hundred records costs about as much as
a message of one.

Value (UTF-8 JSON, built without re-encoding the records)::

    {"v":1,"signal":"log","records":[<mesh_log.v1>, ...]}

Key: the trace id of the first record (lowercase hex), or null when the records have none (those go
to any partition, they are never joined). Headers: ``content-type``
(``application/vnd.audit-stream.mesh-log.v1+json`` / ``...mesh-span.v1+json``; ``audit.events``
uses the same envelope with ``"signal":"event"``) and ``records``
(the count, ASCII).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import orjson

__all__ = [
    "CONTENT_TYPES",
    "PackedMessage",
    "decode_packed",
    "pack",
    "pack_records",
]

Signal = Literal["log", "span", "event"]

CONTENT_TYPES: dict[Signal, bytes] = {
    "log": b"application/vnd.audit-stream.mesh-log.v1+json",
    "span": b"application/vnd.audit-stream.mesh-span.v1+json",
    "event": b"application/vnd.audit-stream.audit-event.v1+json",
}
_PREFIX: dict[Signal, bytes] = {
    "log": b'{"v":1,"signal":"log","records":[',
    "span": b'{"v":1,"signal":"span","records":[',
    "event": b'{"v":1,"signal":"event","records":[',
}


@dataclass(frozen=True, slots=True)
class PackedMessage:
    partition: int
    key: bytes | None
    value: bytes
    count: int

    def headers(self, signal: Signal) -> list[tuple[str, bytes]]:
        return [("content-type", CONTENT_TYPES[signal]), ("records", str(self.count).encode())]


def pack(
    signal: Signal,
    partition: int,
    key: bytes | None,
    encoded: Sequence[bytes],
    max_bytes: int,
) -> Iterator[PackedMessage]:
    """Pack already-encoded records into messages of at most ``max_bytes`` (one record may exceed it).

    ``key`` is used for the first message; later chunks of the same partition reuse it, which is
    harmless because the partition is explicit.
    """
    prefix = _PREFIX[signal]
    start = 0
    size = len(prefix) + 2
    for i, rec in enumerate(encoded):
        if i > start and size + len(rec) + 1 > max_bytes:
            yield PackedMessage(
                partition, key, prefix + b",".join(encoded[start:i]) + b"]}", i - start
            )
            start, size = i, len(prefix) + 2
        size += len(rec) + 1
    if start < len(encoded):
        body = prefix + b",".join(encoded[start:]) + b"]}"
        yield PackedMessage(partition, key, body, len(encoded) - start)


def pack_records(
    signal: Signal,
    partition: int,
    key: bytes | None,
    records: Sequence[Any],
    max_bytes: int,
    record_bytes: float = 0.0,
) -> list[PackedMessage]:
    """``list(pack(signal, partition, key, [orjson.dumps(r) for r in records], max_bytes))``,
    with one ``orjson.dumps`` call for all ``records`` when they fit in one message.

    orjson writes a dict's keys in insertion order and a list as its items' encodings joined by
    commas, so one call on the envelope gives the same bytes as :func:`pack`, without a call per
    record or a copy of the result. When the records do not fit, they are encoded one by one and
    packed by :func:`pack` (same messages, same order). ``record_bytes``, the expected encoded
    size of one record (e.g. the average of the previous call), skips the single call when the
    records will clearly not fit.

    Example::

        >>> [m.value for m in pack_records("log", 0, None, [{"a": 1}, {"b": 2}], 1024)]
        [b'{"v":1,"signal":"log","records":[{"a":1},{"b":2}]}']
    """
    n = len(records)
    if n == 0:
        return []
    if n == 1 or n * record_bytes < max_bytes:
        # orjson writes the envelope's keys in this order, compactly: the prefix of pack()
        listed = records if isinstance(records, list) else list(records)
        value = orjson.dumps({"v": 1, "signal": signal, "records": listed})
        # pack() cuts before a message would reach max_bytes (or if it is one record)
        if len(value) < max_bytes or n == 1:
            return [PackedMessage(partition, key, value, n)]
    dumps = orjson.dumps
    return list(pack(signal, partition, key, [dumps(r) for r in records], max_bytes))


def decode_packed(value: bytes) -> tuple[Signal, list[dict[str, Any]]]:
    """Parse one packed message; raises ``ValueError`` when it is not one."""
    doc = orjson.loads(value)
    if not isinstance(doc, dict) or doc.get("v") != 1:
        raise ValueError("not a packed audit-stream message (missing v=1)")
    signal = doc.get("signal")
    records = doc.get("records")
    if signal not in ("log", "span", "event") or not isinstance(records, list):
        raise ValueError("packed message needs signal log|span|event and a records list")
    return signal, records
