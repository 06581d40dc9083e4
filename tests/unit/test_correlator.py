"""The join (audit_stream.join.correlator): orders, windows, duplicates, caps, and resolution."""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import jsonschema
import pytest

from audit_stream.config import JoinSettings
from audit_stream.join.correlator import Correlator, JoinConfig, Resolution
from audit_stream.join.event import request_event_id
from audit_stream.models.records import AuditEvent, MeshLog, MeshSpan

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR = jsonschema.Draft202012Validator(
    json.loads((ROOT / "schemas" / "audit_event.v1.json").read_text())
)

S = 1_000_000_000
MS = 1_000_000
T0 = 1_791_532_493_000_000_000
WINDOW, GRACE = 1 * S, S // 2
CONFIG = JoinConfig(window_ns=WINDOW, grace_ns=GRACE, max_hold_seconds=10.0)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def hex_id(n: int, width: int) -> str:
    return f"{n:0{width}x}"


def make_log(
    n: int,
    *,
    t: int = T0,
    duration_ms: int = 2,
    trace: int | None = None,
    span: int | None = None,
    log_id: int | None = None,
    correlatable: bool = True,
) -> MeshLog:
    """Request ``n``'s access log; ``trace`` / ``span`` default to ids derived from ``n``."""
    return {
        "id": hex_id(log_id if log_id is not None else 0xA000_0000 + n, 32),
        "time_unix_nano": t,
        "trace_id": hex_id(trace if trace is not None else n, 32) if correlatable else None,
        "span_id": hex_id(span if span is not None else n, 16) if correlatable else None,
        "correlatable": correlatable,
        "format": "istio_text",
        "fields": {
            "method": "GET",
            "path": f"/r/{n}",
            "response_code": 200,
            "response_code_details": "via_upstream",
            "duration_ms": duration_ms,
        },
        "attributes": {},
        "resource": {},
    }


def make_span(
    n: int,
    *,
    t: int = T0,
    duration_ms: int = 2,
    trace: int | None = None,
    span: int | None = None,
    span_rec_id: int | None = None,
    request: bool = True,
) -> MeshSpan:
    """Request ``n``'s span (same key as ``make_log(n)`` by default)."""
    return {
        "id": hex_id(span_rec_id if span_rec_id is not None else 0xB000_0000 + n, 32),
        "trace_id": hex_id(trace if trace is not None else n, 32),
        "span_id": hex_id(span if span is not None else n, 16),
        "parent_span_id": None,
        "name": "ingress",
        "kind": "server" if request else "internal",
        "start_time_unix_nano": t,
        "end_time_unix_nano": t + duration_ms * MS,
        "status_code": "unset",
        "request": request,
        "fields": {"method": "GET", "response_code": 200, "user_id": "u1"} if request else {},
        "attributes": {"node_id": "sidecar~10.0.0.1~a-1.ns~ns.svc.cluster.local"},
        "resource": {"telemetry.sdk.name": "envoy"},
    }


def hop_id(n: int, *, trace: int | None = None, span: int | None = None) -> str:
    """The event id of request ``n``'s hop (the key of ``make_log(n)`` / ``make_span(n)``)."""
    return request_event_id(
        hex_id(trace if trace is not None else n, 32), hex_id(span if span is not None else n, 16)
    )


def events(resolutions: list[Resolution]) -> list[AuditEvent]:
    return [r.event for r in resolutions if r.event is not None]


def correlations(resolutions: list[Resolution]) -> list[str]:
    return [e["correlation"] for e in events(resolutions)]


def correlator(config: JoinConfig = CONFIG) -> tuple[Correlator, FakeClock]:
    clock = FakeClock()
    return Correlator(config, clock=clock), clock


# -- orders ---------------------------------------------------------------------------------------


def test_log_then_span_joins_and_resolves_both() -> None:
    c, _ = correlator()
    assert c.add_log(make_log(1), "L1") == []
    assert c.pending_count == 1
    out = c.add_span(make_span(1), "S1")
    assert len(out) == 1
    assert out[0].origins == ("L1", "S1")
    event = out[0].event
    assert event is not None
    assert event["correlation"] == "joined"
    assert event["event_id"] == hop_id(1)
    assert event["user"] == {"id": "u1"}  # a fact the span brought
    assert event["mesh"]["kind"] == "sidecar"
    assert c.pending_count == 0
    assert c.counters.joined == 1


def test_span_then_log_joins() -> None:
    c, _ = correlator()
    assert c.add_span(make_span(1), "S1") == []
    out = c.add_log(make_log(1), "L1")
    assert correlations(out) == ["joined"]
    assert out[0].origins == ("L1", "S1")
    assert c.pending_count == 0


def test_keys_must_match_on_trace_and_span() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, trace=7, span=1), "L")
    assert c.add_span(make_span(2, trace=7, span=2), "S") == []  # same trace, other hop
    assert c.add_span(make_span(3, trace=8, span=1), "S2") == []  # same span id, other trace
    assert c.pending_count == 3
    out = c.drain()
    assert correlations(out) == ["log_only", "span_only", "span_only"]
    # Three hops, three request ids: neither the trace nor the span id alone names a request.
    ids = [e["event_id"] for e in events(out)]
    assert ids == [
        hop_id(1, trace=7, span=1),
        hop_id(2, trace=7, span=2),
        hop_id(3, trace=8, span=1),
    ]
    assert len(set(ids)) == 3


# -- event ids across a crash ---------------------------------------------------------------------


def test_a_replayed_request_keeps_its_event_id_whichever_half_comes_back() -> None:
    before, _ = correlator()
    before.add_log(make_log(1), "L1")
    (published,) = events(before.add_span(make_span(1), "S1"))
    assert published["correlation"] == "joined"
    # A crash after the log's offset was committed, the span's not: only the span is re-read.
    after, clock = correlator()
    assert after.add_span(make_span(1), "S1") == []
    clock.now += CONFIG.max_hold_seconds
    (span_only,) = events(after.expire())
    assert span_only["correlation"] == "span_only"
    # The other way round: only the log is re-read.
    other, clock = correlator()
    assert other.add_log(make_log(1), "L1") == []
    clock.now += CONFIG.max_hold_seconds
    (log_only,) = events(other.expire())
    assert log_only["correlation"] == "log_only"
    assert published["event_id"] == span_only["event_id"] == log_only["event_id"] == hop_id(1)


# -- expiry by stream time ------------------------------------------------------------------------


def test_waiting_log_expires_when_the_span_stream_passes_its_deadline() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, t=T0, duration_ms=2), "L1")
    deadline = T0 + 2 * MS + WINDOW + GRACE
    # A span ending exactly at the deadline does not expire it (strictly greater is needed).
    assert c.add_span(make_span(2, t=deadline - 2 * MS), "S2") == []
    out = c.add_span(make_span(3, t=deadline - 2 * MS + 1), "S3")
    assert correlations(out) == ["log_only"]
    assert out[0].origins == ("L1",)
    assert c.counters.expired == 1
    assert c.counters.log_only == 1


def test_own_side_running_ahead_does_not_expire_a_waiting_log() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, t=T0), "L1")
    # The log topic is far ahead (e.g. catching up after a restart); spans lag behind.
    for n in range(2, 6):
        assert c.add_log(make_log(n, t=T0 + n * 60 * S), f"L{n}") == []
    assert correlations(c.add_span(make_span(1, t=T0), "S1")) == ["joined"]


def test_waiting_span_expires_when_the_log_stream_passes_its_deadline() -> None:
    c, _ = correlator()
    c.add_span(make_span(1, t=T0, duration_ms=5), "S1")
    assert c.add_span(make_span(2, t=T0 + 60 * S), "S2") == []  # own side: no effect
    out = c.add_log(make_log(3, t=T0 + 5 * MS + WINDOW + GRACE + 1, duration_ms=0), "L3")
    assert correlations(out) == ["span_only"]
    assert out[0].origins == ("S1",)
    ev = out[0].event
    assert ev is not None and ev["event_id"] == hop_id(1)


def test_log_deadline_counts_from_its_end_time() -> None:
    c, _ = correlator()
    # A 5-second request: logged with its start time, but it ended 5 s later.
    c.add_log(make_log(1, t=T0, duration_ms=5_000), "L1")
    assert c.add_span(make_span(2, t=T0 + 5 * S), "S2") == []
    assert correlations(c.add_span(make_span(1, t=T0, duration_ms=5_000), "S1")) == ["joined"]


def test_late_span_after_log_only_is_dropped_not_audited_twice() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, t=T0), "L1")
    assert correlations(c.add_span(make_span(2, t=T0 + 10 * S), "S2")) == ["log_only"]
    out = c.add_span(make_span(1, t=T0), "S1")
    assert out == [Resolution(None, ("S1",))]
    assert c.counters.late == 1
    assert c.counters.spans_dropped == 1
    # A retry of that late span is now a plain duplicate.
    assert c.add_span(make_span(1, t=T0), "S1b") == [Resolution(None, ("S1b",))]
    assert c.counters.deduplicated == 1


def test_late_log_after_span_only_resolves_at_once() -> None:
    c, _ = correlator()
    c.add_span(make_span(1, t=T0), "S1")
    assert correlations(c.add_log(make_log(2, t=T0 + 10 * S), "L2")) == ["span_only"]
    out = c.add_log(make_log(1, t=T0), "L1")
    assert correlations(out) == ["log_only"]
    assert out[0].origins == ("L1",)
    assert [e["event_id"] for e in events(out)] == [hop_id(1)]  # the span_only event's id
    assert c.counters.late == 1
    assert c.pending_count == 1  # only L2 waits


# -- expiry by wall clock -------------------------------------------------------------------------


def test_quiet_partition_flushes_after_max_hold() -> None:
    c, clock = correlator()
    c.add_log(make_log(1), "L1")
    clock.now += 5
    c.add_span(make_span(2), "S2")
    assert c.expire(clock.now + 4.999) == []
    out = c.expire(clock.now + 5.0)
    assert correlations(out) == ["log_only"]
    assert c.pending_count == 1
    clock.now += 10
    assert correlations(c.expire()) == ["span_only"]  # defaults to the correlator's clock
    assert c.pending_count == 0
    assert c.counters.expired == 2


def test_wall_clock_hold_can_be_withheld_per_side() -> None:
    """While the other input is still delivering, only stream time may expire a waiting half."""
    c, clock = correlator()
    c.add_log(make_log(1), "L1")
    c.add_span(make_span(2), "S2")
    clock.now += CONFIG.max_hold_seconds + 1
    assert c.expire(hold_logs=False, hold_spans=False) == []
    assert correlations(c.expire(hold_logs=False)) == ["span_only"]
    assert c.pending_count == 1
    assert correlations(c.expire(hold_spans=False)) == ["log_only"]
    assert c.pending_count == 0


def test_expire_with_nothing_due_is_empty() -> None:
    c, clock = correlator()
    assert c.expire() == []
    c.add_log(make_log(1), "L1")
    assert c.expire(clock.now) == []
    assert c.pending_count == 1


# -- duplicates -----------------------------------------------------------------------------------


def test_duplicate_log_while_waiting_gives_one_event() -> None:
    c, _ = correlator()
    c.add_log(make_log(1), "L1")
    assert c.add_log(make_log(1), "L1-retry") == [Resolution(None, ("L1-retry",))]
    out = c.add_span(make_span(1), "S1")
    assert correlations(out) == ["joined"]
    assert c.counters.deduplicated == 1
    assert c.pending_count == 0


def test_duplicate_log_after_emit_gives_no_event() -> None:
    c, _ = correlator()
    c.add_span(make_span(1), "S1")
    c.add_log(make_log(1), "L1")
    assert c.add_log(make_log(1), "L1-retry") == [Resolution(None, ("L1-retry",))]
    assert c.counters.deduplicated == 1
    assert c.counters.joined == 1


def test_duplicate_span_while_waiting_and_after_join() -> None:
    c, _ = correlator()
    c.add_span(make_span(1), "S1")
    assert c.add_span(make_span(1), "S1-retry") == [Resolution(None, ("S1-retry",))]
    c.add_log(make_log(1), "L1")
    # Same key, re-exported with another record id: the same span.
    assert c.add_span(make_span(1, span_rec_id=99), "S1-again") == [Resolution(None, ("S1-again",))]
    assert c.counters.deduplicated == 2
    assert c.counters.joined == 1
    assert c.counters.span_only == 0


def test_uncorrelatable_log_is_log_only_at_once_and_deduplicated() -> None:
    c, _ = correlator()
    out = c.add_log(make_log(1, correlatable=False), "L1")
    assert correlations(out) == ["log_only"]
    ev = out[0].event
    assert ev is not None and ev["trace"] == {}
    assert ev["event_id"] == make_log(1, correlatable=False)["id"]
    assert c.add_log(make_log(1, correlatable=False), "L1-retry") == [
        Resolution(None, ("L1-retry",))
    ]
    assert c.pending_count == 0


def test_dedup_memory_is_bounded_and_forgets_oldest_first() -> None:
    c, _ = correlator(JoinConfig(window_ns=WINDOW, grace_ns=GRACE, dedup_capacity=2))
    for n in (1, 2, 3):
        c.add_log(make_log(n, correlatable=False), f"L{n}")
    assert correlations(c.add_log(make_log(1, correlatable=False), "again")) == ["log_only"]
    assert c.add_log(make_log(3, correlatable=False), "again3") == [Resolution(None, ("again3",))]


def test_zero_dedup_capacity_still_catches_waiting_duplicates() -> None:
    c, _ = correlator(JoinConfig(window_ns=WINDOW, grace_ns=GRACE, dedup_capacity=0))
    c.add_log(make_log(1), "L1")
    assert c.add_log(make_log(1), "L1b") == [Resolution(None, ("L1b",))]


# -- spans that are not requests, and shared keys ------------------------------------------------


def test_non_request_span_resolves_at_once_without_an_event() -> None:
    c, _ = correlator()
    assert c.add_span(make_span(1, request=False), "S1") == [Resolution(None, ("S1",))]
    assert c.counters.spans_dropped == 1
    assert c.pending_count == 0


def test_non_request_span_joins_a_waiting_log() -> None:
    c, _ = correlator()
    c.add_log(make_log(1), "L1")
    out = c.add_span(make_span(1, request=False), "S1")
    assert correlations(out) == ["joined"]
    assert out[0].origins == ("L1", "S1")


def test_two_logs_of_one_span_both_join_it() -> None:
    c, _ = correlator()
    c.add_log(make_log(1), "La")
    c.add_log(make_log(1, log_id=0xBEEF), "Lb")
    assert c.pending_count == 2
    out = c.add_span(make_span(1), "S1")
    assert correlations(out) == ["joined", "joined"]
    assert [r.origins for r in out] == [("La", "S1"), ("Lb",)]
    # Both loggers logged the same hop: two events, one request id.
    assert [e["event_id"] for e in events(out)] == [hop_id(1), hop_id(1)]
    assert c.pending_count == 0


def test_chained_logs_expire_by_their_own_deadlines() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, t=T0), "La")
    c.add_log(make_log(1, t=T0 + S, log_id=0xBEEF), "Lb")
    out = c.add_span(make_span(9, t=T0 + WINDOW + GRACE + 10 * MS), "S9")
    assert [r.origins for r in out] == [("La",)]
    assert correlations(c.add_span(make_span(1, t=T0), "S1")) == ["joined"]


def test_chain_survives_its_first_log_expiring() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, t=T0), "La")
    c.add_log(make_log(1, t=T0 + S, log_id=0xB1), "Lb")
    c.add_log(make_log(1, t=T0 + S, log_id=0xB2), "Lc")
    assert [r.origins for r in c.add_span(make_span(9, t=T0 + 1_600 * MS), "S9")] == [("La",)]
    assert c.pending_count == 3
    out = c.add_span(make_span(1, t=T0), "S1")
    assert [r.origins for r in out] == [("Lb", "S1"), ("Lc",)]
    assert correlations(out) == ["joined", "joined"]
    assert c.pending_count == 1  # S9


# -- caps -----------------------------------------------------------------------------------------


def test_per_trace_cap_sheds_the_oldest_key_of_that_trace() -> None:
    c, _ = correlator(JoinConfig(window_ns=WINDOW, grace_ns=GRACE, max_pending_per_trace=2))
    c.add_log(make_log(1, trace=7, span=1), "L1")
    c.add_log(make_log(2, trace=8, span=2), "other-trace")
    c.add_span(make_span(3, trace=7, span=3), "S3")
    out = c.add_log(make_log(4, trace=7, span=4), "L4")
    assert [r.origins for r in out] == [("L1",)]
    assert correlations(out) == ["log_only"]
    assert c.counters.shed == 1
    assert c.pending_count == 3
    assert correlations(c.add_log(make_log(3, trace=7, span=3), "L3")) == ["joined"]


def test_total_cap_sheds_the_oldest_record_overall() -> None:
    config = JoinConfig(
        window_ns=WINDOW, grace_ns=GRACE, max_pending_per_trace=2, max_pending_total=3
    )
    c, _ = correlator(config)
    c.add_span(make_span(1), "S1")
    c.add_log(make_log(2), "L2")
    c.add_span(make_span(3), "S3")
    out = c.add_log(make_log(4), "L4")
    assert [r.origins for r in out] == [("S1",)]
    assert correlations(out) == ["span_only"]
    out = c.add_span(make_span(5), "S5")
    assert [r.origins for r in out] == [("L2",)]
    assert c.counters.shed == 2
    assert c.counters.as_dict()["shed"] == 2
    assert c.pending_count == 3


def test_dead_entries_behind_a_stuck_head_are_compacted() -> None:
    c, _ = correlator()
    c.add_log(make_log(0, t=T0 + 3600 * S), "stuck")  # far in the future: never expires by time
    for n in range(1, 5_001):
        c.add_log(make_log(n, t=T0), f"L{n}")
        c.add_span(make_span(n, t=T0), f"S{n}")
    assert c.counters.joined == 5_000
    assert c.pending_count == 1
    assert len(c._logs.queue) <= 2 * 1 + 1_025  # memory follows what waits, not what passed


# -- config and counters --------------------------------------------------------------------------


def test_config_from_settings_and_validation() -> None:
    config = JoinConfig.from_settings(JoinSettings(window_seconds=2.5, grace_seconds=0.25))
    assert config.window_ns == 2_500_000_000
    assert config.grace_ns == 250_000_000
    assert config.max_hold_seconds == JoinSettings().max_hold_seconds
    with pytest.raises(ValueError, match="window_ns"):
        JoinConfig(window_ns=0)
    with pytest.raises(ValueError, match="max_pending_per_trace"):
        JoinConfig(max_pending_per_trace=10, max_pending_total=5)
    with pytest.raises(ValueError, match="dedup_capacity"):
        JoinConfig(dedup_capacity=-1)
    with pytest.raises(ValueError, match="max_hold_seconds"):
        JoinConfig(max_hold_seconds=0)


def test_counters_as_dict_names_every_counter() -> None:
    c, _ = correlator()
    c.add_log(make_log(1, correlatable=False), "L1")
    assert c.counters.as_dict() == {
        "joined": 0,
        "log_only": 1,
        "span_only": 0,
        "expired": 0,
        "deduplicated": 0,
        "shed": 0,
        "spans_dropped": 0,
        "late": 0,
    }


def test_drain_resolves_everything_waiting() -> None:
    c, _ = correlator()
    c.add_log(make_log(1), "L1")
    c.add_log(make_log(1, log_id=5), "L1b")
    c.add_span(make_span(2), "S2")
    out = c.drain()
    assert sorted(str(o) for r in out for o in r.origins) == ["L1", "L1b", "S2"]
    assert sorted(correlations(out)) == ["log_only", "log_only", "span_only"]
    assert c.pending_count == 0
    assert c.drain() == []


# -- property: random interleavings ---------------------------------------------------------------


@dataclass
class Workload:
    """Records of a random mix of requests, in a random arrival order, with unique origins."""

    arrivals: list[tuple[float, str, MeshLog | MeshSpan, str]] = field(default_factory=list)
    logs: dict[str, MeshLog] = field(default_factory=dict)  # every distinct log, by log id
    paired_log_ids: set[str] = field(default_factory=set)  # logs with a request span
    shared: list[set[str]] = field(default_factory=list)  # log ids that share one span
    enriched_log_ids: set[str] = field(default_factory=set)  # logs with a non-request span

    @property
    def log_ids(self) -> set[str]:
        return set(self.logs)


def random_workload(rng: random.Random, requests: int, max_delay_s: float) -> Workload:
    w = Workload()
    serial = 0

    def arrive(kind: str, record: MeshLog | MeshSpan, time_ns: int) -> None:
        nonlocal serial
        serial += 1
        at = time_ns / S + rng.uniform(0, max_delay_s)
        w.arrivals.append((at, kind, record, f"{kind}{serial}"))
        if rng.random() < 0.1:  # an OTLP retry of the same record
            w.arrivals.append((at + rng.uniform(0, 2), kind, record, f"{kind}{serial}-retry"))

    for n in range(requests):
        t = T0 + n * 7 * MS + rng.randrange(0, 50 * MS)
        trace = n // 3  # a few hops per trace
        shape = rng.random()
        log = make_log(n, t=t, trace=trace, correlatable=shape < 0.95)
        if shape < 0.95:
            w.logs[log["id"]] = log
            arrive("log", log, t)
        if shape < 0.65 or 0.8 <= shape < 0.95:
            span = make_span(n, t=t, trace=trace, request=shape < 0.9)
            arrive("span", span, t)
            (w.paired_log_ids if shape < 0.65 else w.enriched_log_ids).add(log["id"])
            if rng.random() < 0.05:  # the same span exported again with other resource attributes
                arrive("span", make_span(n, t=t, trace=trace, span_rec_id=10**9 + n), t)
        if shape < 0.03:  # a second access logger on the same listener
            extra = make_log(n, t=t, trace=trace, log_id=0xC000_0000 + n)
            extra["fields"]["path"] = f"/r/{n}/second-logger"  # tells its event from the first's
            w.logs[extra["id"]] = extra
            arrive("log", extra, t)
            if shape < 0.65:
                w.paired_log_ids.discard(log["id"])
                w.shared.append({log["id"], extra["id"]})
        if shape >= 0.95:
            w.logs[log["id"]] = log
            arrive("log", log, t)
    w.arrivals.sort(key=lambda a: a[0])
    return w


def run_workload(
    c: Correlator, clock: FakeClock, w: Workload, rng: random.Random
) -> list[Resolution]:
    out: list[Resolution] = []
    for at, kind, record, origin in w.arrivals:
        clock.now = 1_000.0 + (at - T0 / S)
        if kind == "log":
            out += c.add_log(record, origin)  # type: ignore[arg-type]
        else:
            out += c.add_span(record, origin)  # type: ignore[arg-type]
        if rng.random() < 0.05:
            out += c.expire()
    out += c.expire()
    out += c.drain()
    return out


def expected_event_id(log: MeshLog) -> str:
    """The rule: the hop's id when the log names its hop, else the log's own id."""
    if log["trace_id"] is not None and log["span_id"] is not None:
        return request_event_id(log["trace_id"], log["span_id"])
    return log["id"]


def log_events(w: Workload, out: list[Resolution]) -> list[tuple[MeshLog, AuditEvent]]:
    """Each ``joined`` / ``log_only`` event with the one log it was made from.

    Since logs of one hop share an event id, the log is found through the origins its resolution
    finishes, and the event's content is checked to be that log's.
    """
    logs_by_origin = {a[3]: cast(MeshLog, a[2]) for a in w.arrivals if a[1] == "log"}
    pairs: list[tuple[MeshLog, AuditEvent]] = []
    for r in out:
        ev = r.event
        if ev is None or ev["correlation"] == "span_only":
            continue
        logs = [logs_by_origin[o] for o in r.origins if o in logs_by_origin]
        assert len(logs) == 1, r.origins
        log = logs[0]
        assert ev["time_unix_nano"] == log["time_unix_nano"]
        assert ev["request"]["path"] == log["fields"]["path"]
        assert ev["event_id"] == expected_event_id(log)
        pairs.append((log, ev))
    return pairs


def check_resolution(
    c: Correlator, w: Workload, out: list[Resolution], *, validate: bool = True
) -> Counter[str]:
    origins = Counter(o for r in out for o in r.origins)
    assert set(origins) == {a[3] for a in w.arrivals}, "every added record is resolved"
    assert max(origins.values()) == 1, "and only once"
    assert c.pending_count == 0

    evs = events(out)
    for ev in evs if validate else ():
        errors = [e.message for e in VALIDATOR.iter_errors(ev)]
        assert not errors, errors
    per_log = Counter(log["id"] for log, _ in log_events(w, out))
    assert set(per_log) == w.log_ids, "every log yields an event"
    assert max(per_log.values()) == 1, "and only one"
    # Counted by event id: as many events under each id as there are logs of that hop.
    assert Counter(e["event_id"] for e in evs if e["correlation"] != "span_only") == Counter(
        expected_event_id(log) for log in w.logs.values()
    )
    span_only = [e for e in evs if e["correlation"] == "span_only"]
    span_only_keys = Counter((e["trace"]["trace_id"], e["trace"]["span_id"]) for e in span_only)
    for e in span_only:
        assert e["event_id"] == request_event_id(e["trace"]["trace_id"], e["trace"]["span_id"])
    assert not span_only_keys or max(span_only_keys.values()) == 1
    joined_keys = {
        (e["trace"]["trace_id"], e["trace"]["span_id"]) for e in evs if e["correlation"] == "joined"
    }
    assert not joined_keys & set(span_only_keys), "a joined request is not also span_only"
    kinds: Counter[str] = Counter(e["correlation"] for e in evs)
    counters = c.counters
    assert counters.joined == kinds["joined"]
    assert counters.log_only == kinds["log_only"]
    assert counters.span_only == kinds["span_only"]
    assert counters.joined + counters.log_only == len(w.log_ids)
    return kinds


@pytest.mark.parametrize("seed", range(12))
def test_random_interleavings_resolve_every_record_exactly_once(seed: int) -> None:
    rng = random.Random(seed)
    w = random_workload(rng, requests=400, max_delay_s=rng.choice([0.2, 1.0, 4.0]))
    c, clock = correlator()
    check_resolution(c, w, run_workload(c, clock, w, rng))


@pytest.mark.parametrize("seed", range(4))
def test_random_interleavings_within_the_window_always_join(seed: int) -> None:
    rng = random.Random(100 + seed)
    w = random_workload(rng, requests=400, max_delay_s=WINDOW / S / 4)
    c = Correlator(JoinConfig(window_ns=WINDOW, grace_ns=GRACE, max_hold_seconds=1e9))
    out: list[Resolution] = []
    for _, kind, record, origin in w.arrivals:
        out += c.add_log(record, origin) if kind == "log" else c.add_span(record, origin)  # type: ignore[arg-type]
    out += c.drain()
    check_resolution(c, w, out)
    joined = {log["id"] for log, ev in log_events(w, out) if ev["correlation"] == "joined"}
    # A non-request span joins its log only when the log was already waiting.
    shared = set().union(*w.shared)
    assert w.paired_log_ids <= joined <= w.paired_log_ids | w.enriched_log_ids | shared
    # Logs sharing a span all join it if they wait for it; one arriving after the span was
    # emitted finds it gone (log_only), but at least the first one joins.
    assert all(ids & joined for ids in w.shared)
    assert c.counters.late <= len(w.shared)


@pytest.mark.parametrize("seed", range(4))
def test_random_interleavings_under_tight_caps(seed: int) -> None:
    rng = random.Random(200 + seed)
    w = random_workload(rng, requests=2_000, max_delay_s=2.0)
    config = JoinConfig(
        window_ns=WINDOW,
        grace_ns=GRACE,
        max_hold_seconds=3.0,
        max_pending_per_trace=2,
        max_pending_total=40,
    )
    clock = FakeClock()
    c = Correlator(config, clock=clock)
    out = run_workload(c, clock, w, rng)
    check_resolution(c, w, out, validate=False)  # the same events are validated above
    assert c.counters.shed > 0
