"""``audit-stream tail``: follow the SIEM topic (or ``audit.events``) and print one line per event.

Requirements
    * Reads without a consumer group (partitions assigned by hand, nothing committed), so tailing
      never moves the offsets of a real SIEM connector and two tails never share messages.
    * Starts at the end (new events only), at the beginning, at a time (``--since``), or at given
      offsets (the demo's snapshot); stops on ``stop``, after ``max_events`` shown, or after
      ``idle_timeout`` seconds without a message.
    * An unreadable message is reported on stderr with its partition and offset, then skipped.
    * Formatting is :mod:`audit_stream.tools.view`; this module only consumes.

Example::

    >>> start = Start.at_time(parse_since("10m", now_ms))  # doctest: +SKIP
    >>> async for msg in read_topic(kafka, "audit.siem", start, stop):  # doctest: +SKIP
    ...     print(format_line(msg.views[0]))
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Literal, TextIO

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

from audit_stream.config import KafkaSettings, TopicSettings
from audit_stream.errors import KafkaUnavailable, TopicLayoutError
from audit_stream.kafka.admin import partition_counts
from audit_stream.tools.view import EventFilter, EventView, format_line, view_json, views_of

__all__ = [
    "Message",
    "Start",
    "TailOptions",
    "end_offsets",
    "read_topic",
    "resolve_topic",
    "run_tail",
]


@dataclass(frozen=True, slots=True)
class Start:
    """Where reading begins in every partition."""

    kind: Literal["end", "beginning", "time", "offsets"] = "end"
    time_ms: int = 0
    offsets: Mapping[int, int] = field(default_factory=dict)  # partition -> first offset to read

    @classmethod
    def at_time(cls, time_ms: int) -> Start:
        return cls("time", time_ms=time_ms)

    @classmethod
    def at_offsets(cls, offsets: Mapping[int, int]) -> Start:
        return cls("offsets", offsets=dict(offsets))


@dataclass(frozen=True, slots=True)
class Message:
    partition: int
    offset: int
    value: bytes
    views: list[EventView]  # empty when the message could not be read (``error`` says why)
    error: str | None = None


def resolve_topic(name: str, topics: TopicSettings) -> str:
    """``siem`` and ``events`` name the configured topics; anything else is a topic name."""
    return {"siem": topics.siem, "events": topics.events}.get(name, name)


async def _partitions(kafka: KafkaSettings, topic: str) -> list[TopicPartition]:
    count = (await partition_counts(kafka, [topic])).get(topic)
    if not count:
        raise TopicLayoutError(
            f"topic {topic} does not exist (create the pipeline's topics with "
            "`audit-stream topics create`)"
        )
    return [TopicPartition(topic, p) for p in range(count)]


def _consumer(kafka: KafkaSettings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **kafka.client_kwargs(), group_id=None, enable_auto_commit=False, max_poll_records=2000
    )


async def _start(kafka: KafkaSettings) -> AIOKafkaConsumer:
    consumer = _consumer(kafka)
    try:
        await consumer.start()
    except (KafkaError, OSError) as exc:
        await consumer.stop()
        raise KafkaUnavailable(
            f"cannot reach Kafka at {kafka.bootstrap} ({exc}); is the broker running? "
            "(scripts/kafka-local status)",
            retry_after=0,
        ) from None
    return consumer


async def end_offsets(kafka: KafkaSettings, topic: str) -> dict[int, int]:
    """The next offset of every partition: reading from here sees only what comes later."""
    consumer = await _start(kafka)
    try:
        tps = await _partitions(kafka, topic)
        ends = await consumer.end_offsets(tps)
        return {tp.partition: int(off) for tp, off in ends.items()}
    finally:
        await consumer.stop()


async def _seek(consumer: AIOKafkaConsumer, tps: list[TopicPartition], start: Start) -> None:
    if start.kind == "beginning":
        await consumer.seek_to_beginning(*tps)
    elif start.kind == "end":
        await consumer.seek_to_end(*tps)
    elif start.kind == "time":
        found = await consumer.offsets_for_times({tp: start.time_ms for tp in tps})
        for tp in tps:
            hit = found.get(tp)
            if hit is None:
                await consumer.seek_to_end(tp)  # nothing that recent in this partition yet
            else:
                consumer.seek(tp, hit.offset)
    else:
        for tp in tps:
            if tp.partition in start.offsets:
                consumer.seek(tp, start.offsets[tp.partition])
            else:
                await consumer.seek_to_beginning(tp)  # a partition added since the snapshot


async def read_topic(
    kafka: KafkaSettings,
    topic: str,
    start: Start,
    stop: asyncio.Event,
    idle_timeout: float | None = None,
) -> AsyncIterator[Message]:
    """Messages of ``topic`` from ``start`` until ``stop`` is set or nothing came for
    ``idle_timeout`` seconds. Every message is decoded into views (or carries its error)."""
    consumer = await _start(kafka)
    try:
        tps = await _partitions(kafka, topic)
        consumer.assign(tps)
        await _seek(consumer, tps, start)
        last = time.monotonic()
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=200)
            if not batch:
                if idle_timeout is not None and time.monotonic() - last >= idle_timeout:
                    return
                continue
            last = time.monotonic()
            for records in batch.values():
                for r in records:
                    value = r.value or b""
                    try:
                        views = views_of(value, r.headers)
                    except ValueError as exc:
                        yield Message(r.partition, r.offset, value, [], str(exc))
                    else:
                        yield Message(r.partition, r.offset, value, views)
    finally:
        await consumer.stop()


@dataclass(frozen=True, slots=True)
class TailOptions:
    topic: str
    start: Start = field(default_factory=Start)
    event_filter: EventFilter = field(default_factory=EventFilter)
    as_json: bool = False
    max_events: int | None = None
    idle_timeout: float | None = None


async def run_tail(
    kafka: KafkaSettings,
    opts: TailOptions,
    stop: asyncio.Event,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Print matching events until stopped. Exit code 0; 1 when ``max_events`` was given and
    the idle timeout ended the run before that many matched (so scripts can tell)."""
    shown = 0
    try:
        async for msg in read_topic(kafka, opts.topic, opts.start, stop, opts.idle_timeout):
            if msg.error is not None:
                print(f"tail: {opts.topic}[{msg.partition}]@{msg.offset}: {msg.error}", file=err)
                continue
            lines = []
            for v in msg.views:
                if opts.max_events is not None and shown >= opts.max_events:
                    break
                if opts.event_filter.matches(v):
                    lines.append(view_json(v).decode() if opts.as_json else format_line(v))
                    shown += 1
            if lines:
                out.write("\n".join(lines) + "\n")
                out.flush()
            if opts.max_events is not None and shown >= opts.max_events:
                return 0
    except BrokenPipeError:
        # `tail | head`: the reader left. Point stdout at /dev/null so the interpreter's final
        # flush does not fail again, and end quietly like other Unix tools.
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), out.fileno())
        return 0
    if stop.is_set() or opts.max_events is None:
        return 0  # Ctrl-C is how a follow ends
    return 1 if shown < opts.max_events else 0
