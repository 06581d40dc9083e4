"""Join access logs with spans on (trace id, span id) into audit events, one correlator per partition.

Requirements
    * Every access-log record yields exactly one audit event: ``joined`` when the span with the
      same (trace_id, span_id) arrives while the log waits (either order), else ``log_only``.
    * A request span (``span["request"]``) no log claimed yields ``span_only``; other spans resolve
      at once (joining a waiting log if there is one).
    * Every record added is resolved exactly once: each :class:`Resolution` lists the origins of the
      records it finishes, so the caller acknowledges a Kafka message only when all its records
      are resolved (:class:`~audit_stream.join.acks.AckTracker`). State is memory only; a crash
      replays the unacknowledged messages, and event ids name the request, not the record, so a
      replayed request keeps its id whichever halves come back (``joined``, ``log_only`` or
      ``span_only``) and the replay is recognisable.
    * Bounded memory, O(1) amortised work per record, O(expired) per expiry call.

How it works
    Waiting records live in a two-level index ``trace_id -> span_id -> entry`` (a per-trace dict
    keeps that trace's entries in arrival order, for the per-trace cap) and in one arrival-ordered
    deque per side. A record whose partner is waiting resolves both at once.

    Expiry uses stream time per side: a waiting log expires when the *span* stream has passed its
    end time + window + grace, a waiting span when the *log* stream has; a side's stream time is
    the highest end time seen on it (log: ``time_unix_nano`` plus ``duration_ms``, span:
    ``end_time_unix_nano``). Watching the other side, rather than the maximum over both, keeps the
    join correct while one topic lags the other (catch-up after a restart, a slow fetch): a half
    is never given up because its own side ran ahead. End times are used on both sides so a long
    request does not look late. Independently, nothing waits longer than ``max_hold_seconds`` of
    wall clock after it was added, so a quiet partition or a side with no traffic still flushes:
    the caller runs :meth:`Correlator.expire` on a timer.

    The deques are in arrival order, which approximates time order; expiry only looks at their
    heads. Trade-off: an entry is never expired early, but one stuck behind a head with a later
    deadline waits until that head goes (at most ``max_hold_seconds``, since wall deadlines are in
    arrival order and therefore exact). Joined entries are left in the deque marked dead and
    skipped when they reach the head; the deque is compacted when dead entries outnumber live ones,
    which keeps memory proportional to what waits and costs O(1) amortised.

    Caps: a new waiting record first makes room. A trace with ``max_pending_per_trace`` waiting
    span ids has its oldest one resolved early; with ``max_pending_total`` records waiting, the
    oldest record overall is. Both are emitted as ``log_only`` / ``span_only`` and count as
    ``shed``. Distinct logs sharing one span id (two access loggers on a listener) wait chained
    under that key and all join its span; each yields its own event, and all of them carry the
    hop's event id (:func:`~audit_stream.join.event.request_event_id`).

    Duplicates (same log id; same span key, since a span is identified by its trace and span id)
    produce one event: a waiting duplicate is found through the index, an emitted one through a
    bounded FIFO of recently resolved log ids and span keys (``dedup_capacity`` each). The key FIFO
    also recognises late halves: a span arriving after its log was emitted ``log_only`` is dropped
    (the request is already audited), and a log arriving after its span was emitted resolves at
    once as ``log_only`` instead of waiting for a partner that is gone. Both count as ``late``.

    No fallback match on (trace_id, request_id): x-request-id is propagated across hops, so every
    proxy on the request path logs the same pair and the fallback could join the wrong hop.

Example::

    >>> c = Correlator(JoinConfig())
    >>> c.add_log(log, origin=("mesh.logs", 3, 120))
    []
    >>> [r.event["correlation"] for r in c.add_span(span, origin=("mesh.spans", 3, 77))]
    ['joined']
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

from audit_stream.join.event import build_event
from audit_stream.models.records import AuditEvent, Correlation, MeshLog, MeshSpan

if TYPE_CHECKING:
    from audit_stream.config import JoinSettings

__all__ = ["Correlator", "Counters", "EventBuilder", "JoinConfig", "Resolution"]

EventBuilder = Callable[[MeshLog | None, MeshSpan | None, Correlation], AuditEvent]

_NS_PER_MS = 1_000_000
_COMPACT_MIN = 1024


@dataclass(frozen=True, slots=True)
class JoinConfig:
    """How long halves wait for each other (stream time, ns; wall clock, s) and how many may wait.

    ``max_pending_per_trace`` counts distinct waiting span ids of one trace.
    """

    window_ns: int = 10_000_000_000
    grace_ns: int = 2_000_000_000
    max_hold_seconds: float = 30.0
    max_pending_per_trace: int = 1_000
    max_pending_total: int = 200_000
    dedup_capacity: int = 100_000

    def __post_init__(self) -> None:
        if self.window_ns <= 0 or self.grace_ns < 0:
            raise ValueError("window_ns must be > 0 and grace_ns >= 0")
        if self.max_hold_seconds <= 0:
            raise ValueError("max_hold_seconds must be > 0")
        if not 1 <= self.max_pending_per_trace <= self.max_pending_total:
            raise ValueError("need 1 <= max_pending_per_trace <= max_pending_total")
        if self.dedup_capacity < 0:
            raise ValueError("dedup_capacity must be >= 0")

    @classmethod
    def from_settings(cls, settings: JoinSettings) -> JoinConfig:
        """From the worker's join settings (in seconds)."""
        return cls(
            window_ns=round(settings.window_seconds * 1e9),
            grace_ns=round(settings.grace_seconds * 1e9),
            max_hold_seconds=settings.max_hold_seconds,
            max_pending_per_trace=settings.max_pending_per_trace,
            max_pending_total=settings.max_pending_total,
            dedup_capacity=settings.dedup_capacity,
        )


@dataclass(slots=True)
class Counters:
    """What the correlator did, cumulative. ``late`` overlaps ``log_only`` / ``spans_dropped``;
    ``expired`` and ``shed`` count waiting records given up (also in ``log_only`` / ``span_only``).
    """

    joined: int = 0
    log_only: int = 0
    span_only: int = 0
    expired: int = 0
    deduplicated: int = 0
    shed: int = 0
    spans_dropped: int = 0
    late: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(slots=True)
class Resolution:
    """Records finished together: ``event`` is None when they yield no audit event."""

    event: AuditEvent | None
    origins: tuple[object, ...]


class _Entry:
    """A waiting record. ``extra`` chains further distinct logs that carry the same key."""

    __slots__ = (
        "alive",
        "deadline",
        "extra",
        "log",
        "origin",
        "seq",
        "span",
        "span_id",
        "trace_id",
        "wall_deadline",
    )

    def __init__(
        self,
        log: MeshLog | None,
        span: MeshSpan | None,
        origin: object,
        trace_id: str,
        span_id: str,
        deadline: int,
        wall_deadline: float,
        seq: int,
    ) -> None:
        self.log = log
        self.span = span
        self.origin = origin
        self.trace_id = trace_id
        self.span_id = span_id
        self.deadline = deadline  # the other side's stream time must pass this
        self.wall_deadline = wall_deadline
        self.seq = seq
        self.alive = True
        self.extra: list[_Entry] | None = None


class _Side:
    """One input's waiting entries in arrival order, and its stream time (highest end time)."""

    __slots__ = ("dead", "queue", "time")

    def __init__(self) -> None:
        self.queue: deque[_Entry] = deque()
        self.dead = 0  # resolved entries still in the queue, skipped when they reach the head
        self.time = 0

    def bury(self) -> None:
        self.dead += 1
        if self.dead > _COMPACT_MIN and 2 * self.dead > len(self.queue):
            alive = [entry for entry in self.queue if entry.alive]
            self.queue.clear()
            self.queue.extend(alive)
            self.dead = 0

    def head(self) -> _Entry | None:
        queue = self.queue
        while queue:
            entry = queue[0]
            if entry.alive:
                return entry
            queue.popleft()
            self.dead -= 1
        return None


class _Recent(dict[object, bool]):
    """Bounded FIFO map of recently resolved keys: the oldest is forgotten first.

    A dict subclass so that lookups on the hot path are plain dict lookups.
    """

    __slots__ = ("_capacity", "_order")

    def __init__(self, capacity: int) -> None:
        super().__init__()
        self._capacity = capacity
        self._order: deque[object] = deque()

    def put(self, key: object, value: bool) -> None:
        if key in self:
            if value:
                self[key] = True
        elif self._capacity:
            self[key] = value
            self._order.append(key)
            if len(self._order) > self._capacity:
                del self[self._order.popleft()]


class Correlator:
    """The join for one partition. Not thread-safe; one instance per partition (see module doc).

    ``build`` makes the audit events (default :func:`~audit_stream.join.event.build_event`);
    ``clock`` is the wall clock for ``max_hold_seconds`` and must be the clock whose readings are
    passed to :meth:`expire` (default ``time.monotonic``).
    """

    def __init__(
        self,
        config: JoinConfig,
        *,
        build: EventBuilder = build_event,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.counters = Counters()
        self._build = build
        self._clock = clock
        self._wait_ns = config.window_ns + config.grace_ns
        self._traces: dict[str, dict[str, _Entry]] = {}
        self._logs = _Side()
        self._spans = _Side()
        self._pending = 0
        self._seq = 0
        self._recent_ids = _Recent(config.dedup_capacity)  # log ids
        self._recent_keys = _Recent(config.dedup_capacity)  # (trace, span) -> span was seen

    @property
    def pending_count(self) -> int:
        """Records waiting for their partner."""
        return self._pending

    @property
    def stream_times(self) -> tuple[int, int]:
        """(log side, span side) stream time in unix ns."""
        return self._logs.time, self._spans.time

    def add_log(self, log: MeshLog, origin: object) -> list[Resolution]:
        """Add one access-log record; return what it and the advancing stream time resolved."""
        out: list[Resolution] = []
        end = log["time_unix_nano"]
        duration = log["fields"].get("duration_ms")
        if isinstance(duration, int) and duration > 0:
            end += duration * _NS_PER_MS
        trace_id, span_id = log["trace_id"], log["span_id"]
        if self._recent_ids.get(log["id"]) is not None:
            self._duplicate(origin, out)
        elif not log["correlatable"] or trace_id is None or span_id is None:
            self._emit_log(log, origin, out)
        else:
            trace = self._traces.get(trace_id)
            entry = trace.get(span_id) if trace is not None else None
            if entry is None:
                if self._recent_keys.get((trace_id, span_id)):
                    # Its span was already emitted: nothing left to wait for.
                    self.counters.late += 1
                    self._emit_log(log, origin, out)
                else:
                    self._insert(log, None, origin, trace_id, span_id, end, out)
            elif entry.span is not None:
                self._detach(entry)
                self._spans.bury()
                self._joined(log, entry.span, (origin, entry.origin), out)
            elif _waiting(entry, log["id"]):
                self._duplicate(origin, out)
            else:
                # Another log of the same span (e.g. two access loggers on one listener).
                self._insert(log, None, origin, trace_id, span_id, end, out)
        if end > self._logs.time:
            self._logs.time = end
            self._expire(self._spans, end, None, out)
        return out

    def add_span(self, span: MeshSpan, origin: object) -> list[Resolution]:
        """Add one span; return what it and the advancing stream time resolved."""
        out: list[Resolution] = []
        trace_id, span_id = span["trace_id"], span["span_id"]
        end = span["end_time_unix_nano"]
        trace = self._traces.get(trace_id)
        entry = trace.get(span_id) if trace is not None else None
        if entry is not None:
            if entry.log is None:
                self._duplicate(origin, out)
            else:
                for i, log_entry in enumerate(self._take(entry)):
                    assert log_entry.log is not None
                    origins = (log_entry.origin, origin) if i == 0 else (log_entry.origin,)
                    self._joined(log_entry.log, span, origins, out)
        else:
            seen = self._recent_keys.get((trace_id, span_id))
            if seen:
                self._duplicate(origin, out)
            elif seen is not None or not span["request"]:
                if seen is not None:
                    # Its log was already emitted log_only: the request is audited.
                    self.counters.late += 1
                    self._recent_keys.put((trace_id, span_id), True)
                self.counters.spans_dropped += 1
                out.append(Resolution(None, (origin,)))
            else:
                self._insert(None, span, origin, trace_id, span_id, end, out)
        if end > self._spans.time:
            self._spans.time = end
            self._expire(self._logs, end, None, out)
        return out

    def expire(
        self,
        wall_now: float | None = None,
        *,
        hold_logs: bool = True,
        hold_spans: bool = True,
    ) -> list[Resolution]:
        """Resolve what waited past its stream-time deadline or ``max_hold_seconds`` of wall clock.

        ``wall_now`` defaults to the correlator's clock. ``hold_logs=False`` (``hold_spans``)
        applies only stream time to waiting logs (spans) in this call: the caller passes it while
        the other input is still delivering records, e.g. catching up on a backlog, where a
        partner may be further down the topic although its wall-clock hold has run out.
        Cost is O(entries resolved).
        """
        if wall_now is None:
            wall_now = self._clock()
        out: list[Resolution] = []
        self._expire(self._logs, self._spans.time, wall_now if hold_logs else None, out)
        self._expire(self._spans, self._logs.time, wall_now if hold_spans else None, out)
        return out

    def drain(self) -> list[Resolution]:
        """Resolve everything waiting now (``log_only`` / ``span_only``), e.g. on shutdown."""
        out: list[Resolution] = []
        for side in (self._logs, self._spans):
            while side.queue:
                entry = side.queue.popleft()
                if entry.alive:
                    self._detach(entry)
                    self._emit_waiting(entry, out)
            side.dead = 0
        return out

    def _insert(
        self,
        log: MeshLog | None,
        span: MeshSpan | None,
        origin: object,
        trace_id: str,
        span_id: str,
        end: int,
        out: list[Resolution],
    ) -> None:
        config = self.config
        trace = self._traces.get(trace_id)
        if trace is not None and len(trace) >= config.max_pending_per_trace:
            if span_id not in trace:
                for entry in self._take(next(iter(trace.values()))):
                    self.counters.shed += 1
                    self._emit_waiting(entry, out)
            trace = self._traces.get(trace_id)  # may have been emptied and removed
        if self._pending >= config.max_pending_total:
            self._shed_oldest(out)
            trace = self._traces.get(trace_id)
        self._seq += 1
        wall_deadline = self._clock() + config.max_hold_seconds
        entry = _Entry(
            log, span, origin, trace_id, span_id, end + self._wait_ns, wall_deadline, self._seq
        )
        if trace is None:
            self._traces[trace_id] = {span_id: entry}
        else:
            head = trace.get(span_id)
            if head is None:
                trace[span_id] = entry
            elif head.extra is None:
                head.extra = [entry]
            else:
                head.extra.append(entry)
        self._pending += 1
        (self._logs if log is not None else self._spans).queue.append(entry)

    def _take(self, head: _Entry) -> tuple[_Entry, ...]:
        """Remove a key and its whole chain from the index; the entries stay queued, dead."""
        trace = self._traces[head.trace_id]
        del trace[head.span_id]
        if not trace:
            del self._traces[head.trace_id]
        chain = (head, *head.extra) if head.extra else (head,)
        head.extra = None
        for entry in chain:
            entry.alive = False
            (self._logs if entry.log is not None else self._spans).bury()
        self._pending -= len(chain)
        return chain

    def _detach(self, entry: _Entry) -> None:
        """Remove a head entry from the index; the next log of its chain takes its place.

        Entries leave their deque in arrival order, and a chain's head is its oldest log, so a
        chained log is always resolved as the head.
        """
        trace = self._traces[entry.trace_id]
        assert trace[entry.span_id] is entry
        if entry.extra:
            successor = entry.extra.pop(0)
            successor.extra = entry.extra or None
            trace[entry.span_id] = successor  # keeps the key's place in arrival order
            entry.extra = None
        else:
            del trace[entry.span_id]
            if not trace:
                del self._traces[entry.trace_id]
        entry.alive = False
        self._pending -= 1

    def _shed_oldest(self, out: list[Resolution]) -> None:
        log_head, span_head = self._logs.head(), self._spans.head()
        if log_head is not None and (span_head is None or log_head.seq < span_head.seq):
            entry = self._logs.queue.popleft()
        elif span_head is not None:
            entry = self._spans.queue.popleft()
        else:
            return
        self._detach(entry)
        self.counters.shed += 1
        self._emit_waiting(entry, out)

    def _expire(
        self, side: _Side, horizon: int, wall_now: float | None, out: list[Resolution]
    ) -> None:
        """Resolve the side's head while it is dead or past its deadline (other side's time)."""
        queue = side.queue
        while queue:
            entry = queue[0]
            if not entry.alive:
                queue.popleft()
                side.dead -= 1
            elif entry.deadline < horizon or (
                wall_now is not None and entry.wall_deadline <= wall_now
            ):
                queue.popleft()
                self._detach(entry)
                self.counters.expired += 1
                self._emit_waiting(entry, out)
            else:
                return

    def _duplicate(self, origin: object, out: list[Resolution]) -> None:
        self.counters.deduplicated += 1
        out.append(Resolution(None, (origin,)))

    def _joined(
        self, log: MeshLog, span: MeshSpan, origins: tuple[object, ...], out: list[Resolution]
    ) -> None:
        self._recent_ids.put(log["id"], True)
        self._recent_keys.put((span["trace_id"], span["span_id"]), True)
        self.counters.joined += 1
        out.append(Resolution(self._build(log, span, "joined"), origins))

    def _emit_waiting(self, entry: _Entry, out: list[Resolution]) -> None:
        if entry.log is not None:
            self._emit_log(entry.log, entry.origin, out)
        else:
            assert entry.span is not None
            self._recent_keys.put((entry.trace_id, entry.span_id), True)
            self.counters.span_only += 1
            out.append(Resolution(self._build(None, entry.span, "span_only"), (entry.origin,)))

    def _emit_log(self, log: MeshLog, origin: object, out: list[Resolution]) -> None:
        self._recent_ids.put(log["id"], True)
        trace_id, span_id = log["trace_id"], log["span_id"]
        if trace_id is not None and span_id is not None:
            self._recent_keys.put((trace_id, span_id), False)
        self.counters.log_only += 1
        out.append(Resolution(self._build(log, None, "log_only"), (origin,)))


def _waiting(head: _Entry, log_id: str) -> bool:
    """Whether a log with this id waits under the head's key."""
    chain = (head, *head.extra) if head.extra else (head,)
    return any(entry.log is not None and entry.log["id"] == log_id for entry in chain)
