"""The audit agent's machinery: correlators per partition, output buffering, acks behind output.

Faust delivers packed messages from ``mesh.logs`` and ``mesh.spans`` (co-partitioned, one agent
subscribed to both, so partition *n* of both topics lands on the same worker). For each message:

* every record goes to the :class:`~audit_stream.join.correlator.Correlator` of its partition
  number; records whose partner is waiting resolve at once, others wait in memory;
* resolved audit events are rendered (retention, redaction, SIEM mapping) into an output buffer;
* the message is acknowledged (``event.ack()``, the stream runs with ``noack()``) only when every
  record in it is resolved **and** the output it produced has been acknowledged by Kafka. Faust
  commits only the contiguous acknowledged prefix, so a crash or rebalance re-reads exactly the
  unfinished records, and the deterministic event ids make any repeated output recognisable.

State is memory only, never a Faust table: a changelog write per record would cost ~300 µs. On a
rebalance Faust seeks every assigned partition back to its committed offset, so all state is
dropped when partitions are revoked and rebuilt from the replay.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from audit_stream.join.acks import AckTracker
from audit_stream.join.correlator import Correlator, JoinConfig, Resolution
from audit_stream.kafka.codec import decode_packed, pack
from audit_stream.kafka.publisher import OutMessage, Publisher, Record
from audit_stream.metrics import Registry
from audit_stream.siem.output import AuditOutput, Rendered

__all__ = ["GC_THRESHOLDS", "AuditPipeline", "Origin"]

log = logging.getLogger(__name__)

# Beyond this many buffered events the agent flushes before consuming more (the 100 ms flush loop
# normally gets there first, while the agent keeps consuming).
FLUSH_RECORDS = 20_000
# Seconds without records on one input of a partition before the other input's waiting halves
# are held no longer than the wall-clock maximum.
OTHER_SIDE_QUIET = 2.0
# The worker's cyclic-GC thresholds. Every event allocates a few dozen containers that live until
# its output is flushed (~0.1 s, hundreds of thousands of objects at full speed), while the join
# keeps waiting records and recent ids alive: with a small young generation the collector scans
# each of them before it dies, and again in the middle generation. A young generation of a
# million allocations lets most die unscanned (measured 8-10% less CPU per event than 50,000;
# the default 700 is far worse).
GC_THRESHOLDS = (1_000_000, 10, 1_000)


@dataclass(eq=False, slots=True)
class Origin:
    """One consumed Kafka message: what to acknowledge, and where it came from."""

    event: Any  # faust EventT
    topic: str
    partition: int
    offset: int
    flushed: bool = False  # resolved, and everything it produced is acknowledged by Kafka


class _InOrderAcks:
    """Hands messages to Faust's ``ack()`` strictly in offset order per topic-partition.

    Faust commits "the first run of consecutive acknowledged offsets", and its check for an
    unacknowledged message at the head of that run is off by one (and skipped entirely while the
    committed offset is 0 or unknown): acking offsets 1 and 2 while 0 still waits commits 3, and a
    crash then loses offset 0. Acknowledging only the finished prefix ourselves keeps the committed
    offset behind every unfinished message, whatever Faust does with the list.
    """

    __slots__ = ("_queues",)

    def __init__(self) -> None:
        self._queues: dict[tuple[str, int], deque[Origin]] = {}

    def consumed(self, origin: Origin) -> None:
        key = (origin.topic, origin.partition)
        q = self._queues.get(key)
        if q is None:
            q = self._queues[key] = deque()
        q.append(origin)

    def release(self, flushed: Sequence[Origin]) -> None:
        """Mark ``flushed`` done and ack every message now at the head of its partition's queue."""
        touched = set()
        for origin in flushed:
            origin.flushed = True
            touched.add((origin.topic, origin.partition))
        for key in touched:
            q = self._queues.get(key)
            while q and q[0].flushed:
                q.popleft().event.ack()

    def clear(self) -> None:
        self._queues.clear()


@dataclass(slots=True)
class _PartitionState:
    correlator: Correlator
    tracker: AckTracker = field(default_factory=AckTracker)
    last_log: float = 0.0  # monotonic time the last log message of this partition arrived
    last_span: float = 0.0


class AuditPipeline:
    """Everything the agent does between a consumed message and an acknowledged output."""

    def __init__(
        self,
        join: JoinConfig,
        output: AuditOutput,
        publisher: Publisher,
        metrics: Registry,
        events_topic: str | None,
        deadletter_topic: str,
    ) -> None:
        self._join = join
        self._output = output
        self._publisher = publisher
        self._metrics = metrics
        self._events_topic = events_topic
        self._deadletter_topic = deadletter_topic
        self._states: dict[int, _PartitionState] = {}
        self._rendered: list[Rendered] = []
        self._ready_acks: list[Origin] = []
        self._deadletters: list[OutMessage] = []
        self._flush_lock = asyncio.Lock()
        self._in_order = _InOrderAcks()
        self._generation = 0
        for name, help_ in (
            ("messages_total", "Kafka messages consumed, by topic"),
            ("records_total", "records consumed, by signal"),
            ("events_total", "audit events acknowledged by Kafka, by correlation"),
            ("deadlettered_total", "messages or records sent to the dead-letter topic"),
            ("redacted_total", "secrets removed before the SIEM topic"),
        ):
            metrics.describe(name, help_)
        metrics.gauge("pending_records", "records waiting for their other half", self.pending)
        # The join's own counters, summed over the partitions' correlators (including those
        # dropped at rebalances, so the totals never go back).
        self._retired: dict[str, int] = {}
        for name, help_ in (
            ("deduplicated", "records recognised as duplicates (OTLP retries)"),
            ("expired", "waiting halves given up by the join window"),
            ("shed", "waiting halves emitted early because a cap was reached"),
            ("late", "halves that arrived after their partner was already emitted"),
            ("spans_dropped", "spans that produced no event of their own (joined or non-request)"),
        ):
            metrics.gauge(f"join_{name}_total", help_, functools.partial(self._join_counter, name))

    # -- consuming -------------------------------------------------------------------------------

    def _join_counter(self, name: str) -> int:
        live: int = sum(st.correlator.counters.as_dict()[name] for st in self._states.values())
        return self._retired.get(name, 0) + live

    def pending(self) -> int:
        return sum(s.correlator.pending_count for s in self._states.values())

    def _state(self, partition: int) -> _PartitionState:
        st = self._states.get(partition)
        if st is None:
            st = self._states[partition] = _PartitionState(Correlator(self._join))
        return st

    def on_message(self, origin: Origin, value: bytes) -> None:
        """Feed one consumed message. Synchronous: no await between reading and resolving."""
        self._metrics.inc("messages_total", topic=origin.topic)
        self._in_order.consumed(origin)
        try:
            signal, records = decode_packed(value)
        except ValueError as exc:
            self._deadletter(origin, value, f"undecodable message: {exc}")
            self._ready_acks.append(origin)
            return
        st = self._state(origin.partition)
        if signal == "log":
            st.last_log = time.monotonic()
        else:
            st.last_span = time.monotonic()
        if st.tracker.track(origin, len(records)):
            self._ready_acks.append(origin)
            return
        self._metrics.inc("records_total", len(records), signal=signal)
        add = st.correlator.add_log if signal == "log" else st.correlator.add_span
        for rec in records:
            try:
                resolutions = add(rec, origin)  # type: ignore[arg-type]
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                # A record that passed the receiver but breaks the join: keep it, move on.
                self._deadletter(origin, orjson.dumps(rec), f"unprocessable {signal}: {exc!r}")
                if st.tracker.done(origin):
                    self._ready_acks.append(origin)
                continue
            self._resolve(st, resolutions)

    def expire(self) -> None:
        """Give up halves whose window passed (each correlator reads its own monotonic clock).

        The wall-clock hold exists for inputs that went quiet; while the other input of a
        partition still delivers (catching up on a backlog, say), a waiting half's partner may be
        further down that topic, so only stream time applies to it.
        """
        now = time.monotonic()
        for st in self._states.values():
            resolved = st.correlator.expire(
                hold_logs=now - st.last_span >= OTHER_SIDE_QUIET,
                hold_spans=now - st.last_log >= OTHER_SIDE_QUIET,
            )
            self._resolve(st, resolved)

    def _resolve(self, st: _PartitionState, resolutions: Sequence[Resolution]) -> None:
        for r in resolutions:
            if r.event is not None:
                origin = r.origins[0]
                assert isinstance(origin, Origin)
                try:
                    self._rendered.append(self._output.render(r.event, origin.partition))
                except Exception as exc:  # a mapping bug must not stop the audit trail
                    self._deadletter(origin, orjson.dumps(r.event), f"render failed: {exc!r}")
            for o in r.origins:
                if st.tracker.done(o):
                    self._ready_acks.append(o)  # type: ignore[arg-type]

    def _deadletter(self, origin: Origin, value: bytes, error: str) -> None:
        self._metrics.inc("deadlettered_total", topic=origin.topic)
        headers = [
            ("error", error.encode()[:1000]),
            ("origin-topic", origin.topic.encode()),
            ("origin-partition", str(origin.partition).encode()),
            ("origin-offset", str(origin.offset).encode()),
        ]
        self._deadletters.append(OutMessage(self._deadletter_topic, value, None, None, headers))

    def reset(self) -> None:
        """Drop all join state (partitions revoked: Faust replays from the committed offsets)."""
        self._generation += 1
        for st in self._states.values():
            for name, value in st.correlator.counters.as_dict().items():
                self._retired[name] = self._retired.get(name, 0) + value
        self._states.clear()
        self._ready_acks.clear()
        self._in_order.clear()

    # -- producing -------------------------------------------------------------------------------

    @property
    def buffered(self) -> int:
        return len(self._rendered)

    def wants_flush(self) -> bool:
        return len(self._rendered) >= FLUSH_RECORDS

    async def flush(self) -> None:
        """Publish what is buffered, then acknowledge the messages it completes.

        Raises ``KafkaUnavailable`` when Kafka does not acknowledge: nothing is acked then, the
        outputs are kept and retried by the next flush.
        """
        async with self._flush_lock:
            rendered, acks, dead = self._rendered, self._ready_acks, self._deadletters
            generation = self._generation
            if not (rendered or acks or dead):
                return
            self._rendered, self._ready_acks, self._deadletters = [], [], []
            try:
                await self._publish(rendered, dead)
            except BaseException:
                # Put everything back in front, in order, for the next attempt.
                self._rendered[:0] = rendered
                self._deadletters[:0] = dead
                if generation == self._generation:
                    self._ready_acks[:0] = acks
                raise
            if generation == self._generation:
                self._in_order.release(acks)
            # Counted once Kafka has the events, per flush rather than per event.
            by_correlation: dict[str, int] = {}
            redactions = 0
            for r in rendered:
                by_correlation[r.correlation] = by_correlation.get(r.correlation, 0) + 1
                redactions += r.redactions
            for correlation, n in by_correlation.items():
                self._metrics.inc("events_total", n, correlation=correlation)
            if redactions:
                self._metrics.inc("redacted_total", redactions)

    async def _publish(self, rendered: list[Rendered], dead: list[OutMessage]) -> None:
        """SIEM records and native events go to the partition number of the mesh input they came
        from (modulo the output topic's partition count). The receiver placed every traced record
        by murmur2 of its trace id, so a trace's events stay together and a replayed event lands
        where its first copy did, without hashing each event again."""
        by_topic: dict[str, dict[int, list[Record]]] = {}
        for r in rendered:
            groups = by_topic.get(r.siem_topic)
            if groups is None:
                groups = by_topic[r.siem_topic] = {}
            group = groups.get(r.partition)
            if group is None:
                group = groups[r.partition] = []
            group.append((r.key, r.siem_value, r.headers))
        sends = [self._publisher.send_grouped(t, groups) for t, groups in by_topic.items()]
        if self._events_topic is not None and rendered:
            sends.append(self._publish_events(self._events_topic, rendered))
        if dead:
            sends.append(self._publisher.send_many(dead))
        await asyncio.gather(*sends)

    async def _publish_events(self, topic: str, rendered: list[Rendered]) -> None:
        """``audit.events`` holds the native events packed per partition."""
        n = await self._publisher.partitions(topic)
        by_partition: dict[int, list[bytes]] = {}
        keys: dict[int, bytes | None] = {}
        for r in rendered:
            p = r.partition % n
            values = by_partition.get(p)
            if values is None:
                values = by_partition[p] = []
                keys[p] = None
            values.append(r.event_value)
            if keys[p] is None and r.trace_id:  # the first trace id of the partition's events
                keys[p] = r.trace_id.encode()
        msgs = [
            OutMessage(topic, m.value, m.key, p, m.headers("event"))
            for p, values in by_partition.items()
            for m in pack("event", p, keys[p], values, 512 * 1024)
        ]
        await self._publisher.send_many(msgs)
