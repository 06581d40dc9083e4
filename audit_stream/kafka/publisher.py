"""Publishing to Kafka with an answer only after the broker acknowledged.

The producer is idempotent with ``acks=all``: once :meth:`Publisher.send_many` returns, every
message is durable on the in-sync replicas. A request that Kafka does not acknowledge within
``timeout`` raises :class:`~audit_stream.errors.KafkaUnavailable` (retryable) — the caller answers
UNAVAILABLE / 503 and the exporter retries; messages that Kafka still accepts later become
duplicates, which downstream recognises by their deterministic ids (at-least-once, never lost).

The producer starts in the background and keeps retrying, so a receiver can come up before Kafka
does and report "not ready" meanwhile.

Producer defaults are chosen for the receiver's packed messages (hundreds of KiB each):

* ``max_batch_size`` 1,000,000 bytes (aiokafka's default is 16 KiB). A message larger than the
  batch size gets a batch of its own, and a partition holds one open batch at a time, so with
  small batches every ``send()`` to a partition whose batch is still waiting for the broker
  blocks until it drains; woken senders race for the slot and one request could wait seconds
  while later ones went through. With large batches several requests share one batch. Keep it at
  or below the broker's ``message.max.bytes`` (1 MiB by default): a batch is one broker message.
* ``compression`` from ``KafkaSettings.compression`` (``AUDIT_STREAM_KAFKA_COMPRESSION``, zstd by
  default; ``"none"`` turns it off) at ``KafkaSettings.compression_level``
  (:mod:`audit_stream.kafka.compression`: zstd level 1 unless set). aiokafka compresses lz4 at
  level 9 (high-compression mode) unless a level is set, several times the CPU of zstd for
  larger output on packed access-log records.
* :meth:`Publisher.send_many` hands its messages to the producer under a first-come first-served
  lock, so requests enqueue in arrival order when the producer applies back-pressure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from audit_stream.config import KafkaSettings
from audit_stream.errors import KafkaUnavailable
from audit_stream.kafka.compression import set_level

__all__ = ["OutMessage", "Publisher", "Record"]

Record = tuple[bytes | None, bytes, list[tuple[str, bytes]]]  # key, value, headers

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class OutMessage:
    topic: str
    value: bytes
    key: bytes | None = None
    partition: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)


def _codec(name: str) -> str | None:
    return None if name == "none" else name


class Publisher:
    """A started-on-demand, acks=all producer with a timeout on acknowledgement."""

    def __init__(
        self,
        kafka: KafkaSettings,
        *,
        timeout: float = 10.0,
        retry_after: float = 2.0,
        linger_ms: int = 5,
        max_request_size: int = 4 * 1024 * 1024,
        compression: str | None = None,
        max_batch_size: int = 1_000_000,
    ) -> None:
        self._kafka = kafka
        self._timeout = timeout
        self._retry_after = retry_after
        codec = kafka.compression if compression is None else compression
        set_level(codec, kafka.compression_level if codec == kafka.compression else None)
        self._producer_kwargs: dict[str, Any] = {
            **kafka.client_kwargs(),
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": linger_ms,
            "max_request_size": max_request_size,
            "compression_type": _codec(codec),
            "max_batch_size": max_batch_size,
        }
        self._producer: AIOKafkaProducer | None = None
        self._ready = asyncio.Event()
        self._starter: asyncio.Task[None] | None = None
        self._partitions: dict[str, int] = {}
        # asyncio.Lock wakes waiters in FIFO order: the fairness the accumulator lacks
        self._enqueue = asyncio.Lock()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    async def start(self, wait: bool = False) -> None:
        """Begin connecting; with ``wait`` block until connected (raises on the first failure)."""
        if wait:
            await self._connect_once()
            return
        if self._starter is None:
            self._starter = asyncio.create_task(self._connect_forever(), name="publisher-start")

    async def _connect_once(self) -> None:
        producer = AIOKafkaProducer(**self._producer_kwargs)
        try:
            await producer.start()
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        self._producer = producer
        self._ready.set()

    async def _connect_forever(self) -> None:
        delay = 0.5
        while not self._ready.is_set():
            try:
                await self._connect_once()
            except (KafkaError, OSError) as exc:
                log.warning("Kafka not reachable at %s (%s); retrying", self._kafka.bootstrap, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def partitions(self, topic: str) -> int:
        """Partition count of ``topic`` (cached: partitions are only ever added, and adding them
        needs a receiver restart for placement to follow, as the co-partition check explains)."""
        n = self._partitions.get(topic)
        if n is None:
            producer = self._require()
            parts = await asyncio.wait_for(producer.partitions_for(topic), self._timeout)
            n = self._partitions[topic] = len(parts)
        return n

    def _require(self) -> AIOKafkaProducer:
        if self._producer is None:
            raise KafkaUnavailable(
                f"Kafka at {self._kafka.bootstrap} is not reachable yet", self._retry_after
            )
        return self._producer

    async def send_many(self, messages: Sequence[OutMessage]) -> None:
        """Send all ``messages`` and return once Kafka acknowledged every one of them."""
        if not messages:
            return
        producer = self._require()
        async with self._acknowledged():
            # send() only enqueues (awaiting when the accumulator is full); the returned futures
            # resolve on the broker's acknowledgement. The lock covers only the enqueueing:
            # acknowledgements of many requests are awaited concurrently.
            async with self._enqueue:
                futures = [
                    await producer.send(
                        m.topic, m.value, key=m.key, partition=m.partition, headers=m.headers
                    )
                    for m in messages
                ]
            await asyncio.gather(*futures)

    async def send_grouped(self, topic: str, groups: Mapping[int, Sequence[Record]]) -> None:
        """Send many small ``(key, value, headers)`` records, group ``g`` to partition
        ``g % partitions``, and return once Kafka acknowledged all of them.

        One producer batch per partition instead of one ``send()`` per record: the per-call cost
        of ``send()`` would otherwise cap a worker near 40k records/s. The caller chooses the
        placement (the worker keeps an event on the partition number of the mesh input it came
        from, which the receiver chose by trace id: no second hash per record).
        """
        if not groups:
            return
        producer = self._require()
        n = await self.partitions(topic)
        async with self._acknowledged():
            futures = []
            for g, recs in groups.items():
                p = g % n
                batch = producer.create_batch()
                for key, value, headers in recs:
                    if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                        batch.close()  # full: send it and start the next one
                        futures.append(await producer.send_batch(batch, topic, partition=p))
                        batch = producer.create_batch()
                        batch.append(key=key, value=value, timestamp=None, headers=headers)
                batch.close()
                futures.append(await producer.send_batch(batch, topic, partition=p))
            await asyncio.gather(*futures)

    @contextlib.asynccontextmanager
    async def _acknowledged(self) -> AsyncIterator[None]:
        """Bound the block by ``timeout`` and turn Kafka's failures into retryable errors."""
        try:
            async with asyncio.timeout(self._timeout):
                yield
        except TimeoutError:
            raise KafkaUnavailable(
                f"Kafka did not acknowledge within {self._timeout:g}s", self._retry_after
            ) from None
        except KafkaError as exc:
            raise KafkaUnavailable(f"Kafka refused the records: {exc}", self._retry_after) from exc

    async def stop(self) -> None:
        """Flush what is buffered and close. Idempotent."""
        if self._starter is not None and not self._starter.done():
            self._starter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starter
        if self._producer is not None:
            producer, self._producer = self._producer, None
            self._ready.clear()
            await producer.stop()
