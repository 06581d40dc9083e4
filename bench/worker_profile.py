"""Run ``audit-stream worker`` under cProfile, for :mod:`bench.pipeline` or by hand.

The worker runs in this process exactly as ``python -m audit_stream.cli worker ...`` would run it
(same environment, same arguments); only the profiler around it is new. Faust owns SIGTERM/SIGINT
(ordered shutdown) and SIGUSR1/SIGUSR2 (stack dump, debugger), so the profile is driven by the
real-time signals nobody else uses:

* ``SIGRTMIN``: start (or restart) collecting; earlier samples are dropped. With ``--wait-signal``
  nothing is collected before it, so the profile covers only the window a benchmark chooses.
* ``SIGRTMIN+1``: stop collecting and write the profile to ``--out``.
* At exit (SIGTERM -> Faust's shutdown -> ``SystemExit``) whatever is still being collected is
  written too.

cProfile sees only the main thread, which is where the worker's Python work happens (Faust, the
agent, aiokafka); it measures wall time per call, so ``select.epoll.poll`` is the loop idling.
Profiling slows the worker down (about 1.5-2x): use it to rank functions, not to measure speed.

``--hot-path`` instead times the worker's per-record work in this process, without Faust, Kafka
or a profiler: the same packed messages the receiver writes (:mod:`audit_stream.traffic` requests,
decoded by the receiver's decoder, placed by murmur2, packed), then each stage the agent runs for
them, in microseconds per audit event. What the end-to-end CPU per event has beyond the sum is
Faust's stream machinery, aiokafka's fetch and produce paths and asyncio.

Example::

    python bench/worker_profile.py --out /tmp/worker.prof -- -l info
    kill -s RTMIN+1 <pid>     # write what was collected so far
    python -c "from bench.common import print_profile; print_profile('/tmp/worker.prof', 30)"
    python bench/worker_profile.py --hot-path --requests 100000
"""

from __future__ import annotations

import argparse
import cProfile
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

START = signal.SIGRTMIN
STOP = signal.SIGRTMIN + 1


class _Session:
    """One cProfile collector switched on and off by signals, written on stop and at exit."""

    def __init__(self, out: str) -> None:
        self._out = out
        self._prof: cProfile.Profile | None = None

    def start(self, *_: object) -> None:
        if self._prof is not None:
            self._prof.disable()
        self._prof = cProfile.Profile()
        self._prof.enable()

    def stop(self, *_: object) -> None:
        prof, self._prof = self._prof, None
        if prof is not None:
            prof.disable()
            prof.dump_stats(self._out)  # the bench waits for this file: write it whole
            print(f"worker profile written to {self._out}", file=sys.stderr, flush=True)


def _packed(requests: int, partitions: int, seed: int) -> list[tuple[int, bytes]]:
    """(partition, value) of the packed mesh messages for ``requests`` mesh requests, in the
    order the worker would read them: per export of 1000, the logs' messages, then the spans'."""
    import random
    import time

    from audit_stream.kafka.codec import pack_records
    from audit_stream.kafka.partitioner import partition_for
    from audit_stream.receiver.decode import decode_logs, decode_spans
    from audit_stream.traffic import Mix, logs_request, make_requests, spans_request

    rng = random.Random(seed)
    out: list[tuple[int, bytes]] = []
    for first in range(0, requests, 1000):
        now = time.time_ns()
        reqs = make_requests(rng, min(1000, requests - first), now, Mix(), spread_ms=1)
        for kind, batch in (
            ("log", decode_logs(logs_request(reqs), now)),
            ("span", decode_spans(spans_request(reqs), now)),
        ):
            by_part: dict[int, list[Any]] = {}
            spread = 0
            for rec in batch.records:
                tid = rec["trace_id"]
                if tid:
                    p = partition_for(tid.encode(), partitions)
                else:
                    p, spread = spread % partitions, spread + 1
                by_part.setdefault(p, []).append(rec)
            for p, recs in sorted(by_part.items()):
                for m in pack_records(kind, p, None, recs, 1 << 20):  # type: ignore[arg-type]
                    out.append((p, m.value))
    return out


def hot_path(
    requests: int, partitions: int, seed: int, policy_file: str | None, codec: str | None
) -> None:
    """Time the agent's stages on pre-built packed messages; print microseconds per event."""
    import gc
    import time
    from collections import defaultdict

    import orjson
    from aiokafka.producer.message_accumulator import BatchBuilder
    from aiokafka.producer.producer import AIOKafkaProducer

    from audit_stream.config import KafkaSettings
    from audit_stream.join.correlator import Correlator, JoinConfig
    from audit_stream.kafka.codec import decode_packed, pack
    from audit_stream.kafka.compression import set_level
    from audit_stream.pipeline import GC_THRESHOLDS
    from audit_stream.retention import DEFAULT_POLICY, load_policy_file
    from audit_stream.siem import Redactor, mapper_for
    from audit_stream.siem.output import AuditOutput

    t_build = time.perf_counter()
    messages = _packed(requests, partitions, seed)
    print(
        f"{len(messages):,} packed messages for {requests:,} requests, "
        f"built in {time.perf_counter() - t_build:.1f} s"
    )
    policy = load_policy_file(policy_file) if policy_file else DEFAULT_POLICY
    redactor = Redactor()
    output = AuditOutput(policy, redactor, "ocsf", "audit.siem")
    ocsf = mapper_for("ocsf")
    kafka = KafkaSettings()
    if codec is None:  # the default of AUDIT_STREAM_KAFKA_COMPRESSION
        codec = kafka.compression
    set_level(codec, kafka.compression_level if codec == kafka.compression else None)
    codec = None if codec == "none" else codec
    codec_id = AIOKafkaProducer._COMPRESSORS[codec][1] if codec else 0
    correlators = [Correlator(JoinConfig()) for _ in range(partitions)]

    def no_event(log: Any, span: Any, correlation: Any) -> Any:
        return {}

    noop = [Correlator(JoinConfig(), build=no_event) for _ in range(partitions)]

    stages: dict[str, float] = defaultdict(float)
    events = 0
    gc.collect()
    gc.freeze()  # as the worker does after start-up: the packed messages are not scanned
    gc.set_threshold(*GC_THRESHOLDS)
    clock = time.perf_counter
    for part, value in messages:
        t0 = clock()
        kind, records = decode_packed(value)
        t1 = clock()
        corr = correlators[part]
        add = corr.add_log if kind == "log" else corr.add_span
        resolved = []
        for rec in records:
            resolved.extend(add(rec, part))  # type: ignore[arg-type]
        t2 = clock()
        evs = [r.event for r in resolved if r.event is not None]
        rendered = [output.render(e, part) for e in evs]
        t3 = clock()
        by_part: dict[int, list[Any]] = {}
        for r in rendered:
            by_part.setdefault(r.partition, []).append(r)
        for recs in by_part.values():
            b = BatchBuilder(512 * 1024, codec_id)
            for r in recs:
                if (
                    b.append(key=r.key, value=r.siem_value, timestamp=None, headers=r.headers)
                    is None
                ):
                    b._build()
                    b = BatchBuilder(512 * 1024, codec_id)
                    b.append(key=r.key, value=r.siem_value, timestamp=None, headers=r.headers)
            b._build()
        t4 = clock()
        ev_parts: dict[int, list[bytes]] = {}
        for r in rendered:
            ev_parts.setdefault(r.partition, []).append(r.event_value)
        for p, values in ev_parts.items():
            for m in pack("event", p, None, values, 512 * 1024):
                b = BatchBuilder(1 << 20, codec_id)
                b.append(key=m.key, value=m.value, timestamp=None, headers=m.headers("event"))
                b._build()
        t5 = clock()
        stages["1 decode_packed (orjson.loads)"] += t1 - t0
        stages["2 join: Correlator.add_* incl. build_event"] += t2 - t1
        stages["3 render: retention tag + redaction + OCSF + 2 x orjson.dumps"] += t3 - t2
        stages[f"4 audit.siem: record batch per input partition ({codec})"] += t4 - t3
        stages[f"5 audit.events: pack + batch per input partition ({codec})"] += t5 - t4
        events += len(evs)
        # parts of the stages above, not in the sum
        ta = clock()
        nadd = noop[part].add_log if kind == "log" else noop[part].add_span
        for rec in records:
            nadd(rec, part)  # type: ignore[arg-type]
        tb = clock()
        for e in evs:
            policy.tag(e)
        tc = clock()
        encoded = [orjson.dumps(e) for e in evs]
        tc2 = clock()
        redacted = [redactor.redact_event(e, b)[0] for e, b in zip(evs, encoded, strict=True)]
        td = clock()
        mapped = [ocsf(e) for e in redacted]
        te = clock()
        for doc in mapped:
            orjson.dumps(doc)
        tf = clock()
        stages["  2a join bookkeeping alone (no-op event builder)"] += tb - ta
        stages["  3a retention tag"] += tc - tb
        stages["  3b orjson.dumps of the native event"] += tc2 - tc
        stages["  3c redaction (pre-check on the encoding, walk + copy when needed)"] += td - tc2
        stages["  3d OCSF mapping"] += te - td
        stages["  3e orjson.dumps of the SIEM record"] += tf - te
    per = 1e6 / max(events, 1)
    total = sum(v for k, v in stages.items() if k[0].isdigit()) * per
    print(f"\nworker hot path, {events:,} audit events, microseconds per event:")
    for name in sorted(stages, key=lambda k: k.strip()):
        us = stages[name] * per
        print(f"  {name:<66} {us:7.2f} us  {100 * us / total:5.1f}%")
    print(f"  {'sum of stages 1-5':<66} {total:7.2f} us  (= {1e6 / total:,.0f} events/s)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="audit-stream worker under cProfile")
    ap.add_argument("--out", help="where the pstats dump goes")
    ap.add_argument("--hot-path", action="store_true", help="time the stages in process instead")
    ap.add_argument("--requests", type=int, default=60_000, help="--hot-path: mesh requests")
    ap.add_argument("--partitions", type=int, default=6, help="--hot-path: partitions (6)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument(
        "--compression",
        choices=("zstd", "lz4", "snappy", "gzip", "none"),
        help="--hot-path: codec of the output batches (default: the worker's)",
    )
    ap.add_argument(
        "--retention-policy",
        default=str(
            Path(__file__).resolve().parents[1] / "config" / "retention-policy.example.yaml"
        ),
        help="--hot-path: policy file ('' for the built-in default)",
    )
    ap.add_argument(
        "--wait-signal",
        action="store_true",
        help="collect only after SIGRTMIN (default: from the start)",
    )
    ap.add_argument("worker_args", nargs=argparse.REMAINDER, help="arguments after `--`")
    args = ap.parse_args(argv)
    if args.hot_path:
        hot_path(
            args.requests,
            args.partitions,
            args.seed,
            args.retention_policy or None,
            args.compression,
        )
        return 0
    if not args.out:
        ap.error("--out is required (or --hot-path)")
    worker_args = [a for a in args.worker_args if a != "--"] or ["-l", "info"]

    session = _Session(args.out)

    def on_start(signum: int, frame: FrameType | None) -> None:
        session.start()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        session.stop()

    signal.signal(START, on_start)
    signal.signal(STOP, on_stop)
    if not args.wait_signal:
        session.start()

    from audit_stream.cli import main as cli_main

    try:
        return cli_main(["worker", *worker_args])
    finally:
        session.stop()


if __name__ == "__main__":
    sys.exit(main())
