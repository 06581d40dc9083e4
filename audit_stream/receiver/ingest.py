"""The receiver's core, shared by the gRPC and HTTP front ends: admit, decode, place, publish.

For one OTLP export request:

1. **Admit**: reserve the request's decoded size against ``max_inflight_bytes``; over the bound the
   request is refused with :class:`Overloaded` (RESOURCE_EXHAUSTED + RetryInfo / 429) before any
   work, so memory stays bounded however fast clients send.
2. **Decode** (pure, :mod:`audit_stream.receiver.decode`): records plus rejects for partial_success.
3. **Place**: each record goes to the partition Kafka's murmur2 picks for its trace id; records of
   one request and one partition are packed into as few messages as ``max_batch_bytes`` allows.
   Records without a trace id are spread round-robin: they are never joined.
4. **Publish** and wait for Kafka's acknowledgement of every message, only then answer.

Counters: ``received_records_total``, ``published_records_total``, ``rejected_records_total``,
``failed_records_total`` by ``signal`` (logs / spans); published + rejected + failed == received.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

from audit_stream.config import ReceiverSettings, TopicSettings
from audit_stream.errors import AuditStreamError, Overloaded
from audit_stream.kafka.codec import Signal, pack_records
from audit_stream.kafka.partitioner import place_by_trace_id
from audit_stream.kafka.publisher import OutMessage, Publisher
from audit_stream.metrics import Registry
from audit_stream.receiver import decode

__all__ = ["ExportResult", "Ingest"]

SignalName = Literal["logs", "spans"]


@dataclass(frozen=True, slots=True)
class ExportResult:
    accepted: int
    rejected: int
    message: str  # partial_success.error_message; empty when nothing was rejected


class Ingest:
    """Admission control, decoding, placement and publishing for one receiver process."""

    def __init__(
        self,
        settings: ReceiverSettings,
        topics: TopicSettings,
        publisher: Publisher,
        metrics: Registry,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        self._settings = settings
        self._topics = topics
        self._publisher = publisher
        self._metrics = metrics
        self._clock = clock
        self._inflight = 0
        self._spread = itertools.count()
        # encoded size of a record in the last request of each signal: lets _place skip encoding
        # a partition's records at once when they will clearly not fit in one message
        self._record_bytes: dict[Signal, float] = {}
        for name, help_ in (
            ("received_records_total", "records received in OTLP requests"),
            ("published_records_total", "records acknowledged by Kafka"),
            ("rejected_records_total", "records refused as invalid (reported in partial_success)"),
            ("failed_records_total", "records not acknowledged by Kafka (client told to retry)"),
            ("refused_requests_total", "requests refused before decoding, by reason"),
        ):
            metrics.describe(name, help_)
        metrics.gauge("inflight_bytes", "request bytes awaiting Kafka", lambda: self._inflight)

    @property
    def inflight_bytes(self) -> int:
        return self._inflight

    @contextmanager
    def admit(self, size: int) -> Iterator[None]:
        """Hold ``size`` bytes of the in-flight budget for the duration of the block."""
        if self._inflight + size > self._settings.max_inflight_bytes and self._inflight > 0:
            self._metrics.inc("refused_requests_total", reason="overloaded")
            raise Overloaded(
                f"receiver has {self._inflight} bytes in flight (limit "
                f"{self._settings.max_inflight_bytes}); retry later",
                self._settings.retry_after_seconds,
            )
        self._inflight += size
        try:
            yield
        finally:
            self._inflight -= size

    # The decoded records are referenced only until they are packed: waiting for Kafka can take
    # a while, and dropping them first lets the next request reuse their memory while it is still
    # in the CPU cache (and keeps the young generation the cyclic collector scans small).

    async def export_logs(self, request: Any) -> ExportResult:
        return await self._publish(
            "logs", "log", self._topics.logs, *_parts(decode.decode_logs(request, self._clock()))
        )

    async def export_spans(self, request: Any) -> ExportResult:
        return await self._publish(
            "spans",
            "span",
            self._topics.spans,
            *_parts(decode.decode_spans(request, self._clock())),
        )

    async def _publish(
        self,
        name: SignalName,
        signal: Signal,
        topic: str,
        records: Sequence[dict[str, Any]],
        rejected: int,
        message: str,
    ) -> ExportResult:
        accepted = len(records)
        self._metrics.inc("received_records_total", accepted + rejected, signal=name)
        if rejected:
            self._metrics.inc("rejected_records_total", rejected, signal=name)
        if accepted:
            try:
                partitions = await self._publisher.partitions(topic)
                messages = self._place(signal, topic, partitions, records)
                records = ()  # dropped before waiting for Kafka (see above)
                await self._publisher.send_many(messages)
            except AuditStreamError:
                self._metrics.inc("failed_records_total", accepted, signal=name)
                raise
            self._metrics.inc("published_records_total", accepted, signal=name)
        return ExportResult(accepted, rejected, message)

    def _place(
        self, signal: Signal, topic: str, partitions: int, records: Sequence[dict[str, Any]]
    ) -> list[OutMessage]:
        """Group ``records`` by partition (input order kept within each) and pack each group.

        All trace ids are hashed in one call (:func:`place_by_trace_id`) and each group is
        encoded by one ``orjson.dumps`` (:func:`pack_records`): per-record calls of either were
        a quarter of the receiver's CPU.
        """
        placed = place_by_trace_id([rec["trace_id"] for rec in records], partitions, self._spread)
        by_partition: dict[int, list[dict[str, Any]]] = {}
        for rec, p in zip(records, placed, strict=True):
            bucket = by_partition.get(p)
            if bucket is None:
                by_partition[p] = [rec]
            else:
                bucket.append(rec)
        out: list[OutMessage] = []
        max_bytes = self._settings.max_batch_bytes
        expected = self._record_bytes.get(signal, 0.0)
        size = 0
        for p, bucket in by_partition.items():
            # the key is the first trace id of the partition's records, if any has one
            key = next((r["trace_id"] for r in bucket if r["trace_id"] is not None), None)
            kb = key.encode() if key is not None else None
            for msg in pack_records(signal, p, kb, bucket, max_bytes, expected):
                out.append(OutMessage(topic, msg.value, msg.key, p, msg.headers(signal)))
                size += len(msg.value)
        if records:
            self._record_bytes[signal] = size / len(records)
        return out


def _parts(batch: decode.DecodedBatch[Any]) -> tuple[Sequence[dict[str, Any]], int, str]:
    """A batch as ``_publish``'s arguments: the batch object itself is not kept alive."""
    return batch.records, batch.rejected, "; ".join(batch.reasons)
