"""End-to-end receiver benchmark: OTLP/gRPC in, Kafka acknowledgements out, one receiver process.

What it does
    1. Makes sure Kafka answers on ``--bootstrap`` (starts ``scripts/kafka-local`` on that port when
       nothing listens on a loopback address) and creates topics with names unique to this run
       (``audit-stream topics create``), so runs never count each other's records.
    2. Builds ``--variety`` distinct export requests of ``--records-per-request`` records each
       (Istio access logs, or Envoy spans with ``--signal spans``; see :mod:`bench.common`) and
       serialises them once, so the client spends its CPU on gRPC, not on protobuf.
    3. Starts ``audit-stream receiver`` pinned to core 0 (``taskset -c 0``; the client processes and
       this script run on core 1; ``--no-pin`` turns pinning off) and drives it over loopback with
       ``--concurrency`` unary calls in flight (raw bytes on ``grpc.aio``) from ``--clients``
       processes: ``--warmup`` seconds first, then ``--duration`` measured seconds. Bounded in time
       (per-call ``--timeout``, the schedule) and in count (``--max-requests`` per client).
    4. Prints acknowledged records/s (only OK answers count, minus records a partial success
       rejected; an OK means Kafka acknowledged every message), receiver CPU seconds per 100k
       records (``/proc/<pid>/stat`` utime+stime over the measured window, all threads) with the
       split by thread, peak RSS (``VmHWM``), p50/p99/max latency, errors by gRPC status, the CPU of
       the clients and of the Kafka broker (to show what else competed for the cores).
    5. Cross-checks Kafka: sums the ``records`` header of every message on the topic. It must
       equal the records acknowledged over the whole run, or exceed it by at most the records of
       requests that failed (those may have landed and are retried by real exporters). Exit
       status 1 if not. Then deletes the run's topics (``--keep-topics`` keeps them).

``--profile FILE`` runs the receiver under cProfile (output in FILE, top functions printed); the
throughput of such a run is lower than without profiling and is not the benchmark result.

Run (from the repository root)::

    python bench/receiver.py                      # logs, 20 s, concurrency 8
    python bench/receiver.py --signal spans --duration 10
    python bench/receiver.py --profile /tmp/receiver.prof --duration 10
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ProcSample,
    broker_pid,
    build_name,
    count_on_topic,
    delete_topics,
    ensure_kafka,
    envoy_spans_request,
    free_port,
    istio_logs_request,
    machine_busy_seconds,
    percentile,
    print_profile,
    rejected_records,
    scrape_metrics,
    thread_cpu,
    topic_env,
    wait_ready,
)

_METHODS = {
    "logs": "/opentelemetry.proto.collector.logs.v1.LogsService/Export",
    "spans": "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
}


# ---------------------------------------------------------------------------------------------
# client (runs in child processes)


@dataclass
class ClientResult:
    ok_records_window: int = 0  # acknowledged records of OK calls completed in the window
    ok_requests_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)  # calls completed in the window
    errors_window: collections.Counter[str] = field(default_factory=collections.Counter)
    errors_total: collections.Counter[str] = field(default_factory=collections.Counter)
    ok_records_total: int = 0  # whole run, warm-up and tail included: for the Kafka cross-check
    rejected_records_total: int = 0  # refused via partial_success (never published)
    failed_records_total: int = 0  # records in calls that did not answer OK
    requests_total: int = 0


async def _drive(
    target: str,
    signal_name: str,
    payloads: list[bytes],
    records_per_request: int,
    concurrency: int,
    t_measure: float,
    t_end: float,
    call_timeout: float,
    max_requests: int,
) -> ClientResult:
    import grpc

    res = ClientResult()
    issued = 0
    opts = [
        ("grpc.max_receive_message_length", 64 << 20),
        ("grpc.max_send_message_length", 64 << 20),
    ]
    async with grpc.aio.insecure_channel(target, options=opts) as channel:
        call = channel.unary_unary(
            _METHODS[signal_name], request_serializer=None, response_deserializer=None
        )

        async def worker(first: int) -> None:
            nonlocal issued
            i = first
            while time.monotonic() < t_end and issued < max_requests:
                issued += 1
                payload = payloads[i % len(payloads)]
                i += concurrency
                t0 = time.monotonic()
                try:
                    body = await call(payload, timeout=call_timeout)
                    status = "OK"
                except grpc.aio.AioRpcError as exc:
                    status = exc.code().name
                t1 = time.monotonic()
                res.requests_total += 1
                in_window = t_measure <= t1 <= t_end
                if status == "OK":
                    rejected = rejected_records(signal_name, body)
                    acked = records_per_request - rejected
                    res.ok_records_total += acked
                    res.rejected_records_total += rejected
                    if in_window:
                        res.ok_records_window += acked
                        res.ok_requests_window += 1
                else:
                    res.failed_records_total += records_per_request
                    res.errors_total[status] += 1
                    if in_window:
                        res.errors_window[status] += 1
                if in_window:
                    res.latencies_ms.append((t1 - t0) * 1000)

        await asyncio.gather(*(worker(k) for k in range(concurrency)))
    return res


def client_main(conn: Any, pin: int | None, kwargs: dict[str, Any]) -> None:
    """Entry point of one client process: drive, then send the :class:`ClientResult` back."""
    if pin is not None:
        os.sched_setaffinity(0, {pin})
    try:
        conn.send(asyncio.run(_drive(**kwargs)))
    except BaseException as exc:  # report, do not hang the parent
        conn.send(exc)
    finally:
        conn.close()


def _payloads(args: argparse.Namespace) -> list[bytes]:
    rng = random.Random(args.seed)
    now = time.time_ns()
    build = istio_logs_request if args.signal == "logs" else envoy_spans_request
    return [
        build(args.records_per_request, rng, now).SerializeToString() for _ in range(args.variety)
    ]


def run(args: argparse.Namespace) -> int:
    """The end-to-end benchmark; returns the exit status (1 when the Kafka cross-check fails)."""
    print(ensure_kafka(args.bootstrap))
    prefix = f"bench-{uuid.uuid4().hex[:8]}"
    env = topic_env(args.bootstrap, prefix, args.partitions)
    topic = env["AUDIT_STREAM_TOPIC_LOGS" if args.signal == "logs" else "AUDIT_STREAM_TOPIC_SPANS"]
    made = subprocess.run(
        [sys.executable, "-m", "audit_stream.cli", "topics", "create"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if made.returncode != 0:
        raise SystemExit(f"creating topics failed:\n{made.stdout}{made.stderr}")
    all_topics = [v for k, v in env.items() if k.startswith("AUDIT_STREAM_TOPIC_")]

    t_build = time.monotonic()
    payloads = _payloads(args)
    size = sum(map(len, payloads)) / len(payloads)
    print(
        f"payloads: {args.variety} x {args.records_per_request} {args.signal} records, "
        f"{size / 1024:.0f} KiB each (built in {time.monotonic() - t_build:.1f} s)"
    )

    pin = not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    gport, hport = free_port(), free_port()
    cmd = [sys.executable]
    if args.profile:
        cmd += ["-m", "cProfile", "-o", args.profile]
    cmd += ["-m", "audit_stream.cli", "receiver", "--grpc-listen", f"127.0.0.1:{gport}"]
    cmd += ["--http-listen", f"127.0.0.1:{hport}", "--log-level", "warning"]
    if pin:
        cmd = ["taskset", "-c", "0", *cmd]
        os.sched_setaffinity(0, {1})
    log_path = Path(args.log_dir) / f"{prefix}-receiver.log"
    http = f"http://127.0.0.1:{hport}"
    extra = dict(kv.split("=", 1) for kv in args.receiver_env)
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env={**env, **extra}, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_ready(http, proc, 60)
        summary = _measure(args, proc, payloads, f"127.0.0.1:{gport}", http, pin)
    except BaseException:
        if proc.poll() is not None:
            print(f"receiver exited early with status {proc.returncode}; log: {log_path}")
        raise
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
    try:
        status = 0 if args.no_verify else _cross_check(args, topic, summary)
    finally:
        if not args.keep_topics:
            with contextlib.suppress(Exception):
                asyncio.run(delete_topics(args.bootstrap, all_topics))
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    if args.profile:
        print_profile(args.profile, args.profile_top)
    print(f"receiver log: {log_path}" + ("" if args.keep_topics else "; topics deleted"))
    return status


@dataclass
class _Snapshot:
    receiver: ProcSample
    threads: dict[str, float]
    clients_cpu: float | None  # None: a client process was gone
    broker_cpu: float | None  # None: no broker of scripts/kafka-local on this port
    machine_busy: float
    metrics: dict[str, float]

    @classmethod
    def take(cls, pid: int, clients: list[Any], broker: int | None, http: str) -> _Snapshot:
        clients_cpu: float | None = 0.0
        for p in clients:
            try:
                clients_cpu = (clients_cpu or 0.0) + ProcSample.read(p.pid).cpu_seconds
            except OSError:
                clients_cpu = None
                break
        broker_cpu = None
        if broker is not None:
            with contextlib.suppress(OSError):
                broker_cpu = ProcSample.read(broker).cpu_seconds
        return cls(
            ProcSample.read(pid),
            thread_cpu(pid),
            clients_cpu,
            broker_cpu,
            machine_busy_seconds(),
            scrape_metrics(http),
        )


def _start_clients(
    args: argparse.Namespace, payloads: list[bytes], target: str, pin: bool, t_measure: float
) -> list[tuple[Any, Any]]:
    ctx = mp.get_context("spawn")  # no fork after grpc was imported
    kwargs = {
        "target": target,
        "signal_name": args.signal,
        "payloads": payloads,
        "records_per_request": args.records_per_request,
        "concurrency": max(1, args.concurrency // args.clients),
        "t_measure": t_measure,
        "t_end": t_measure + args.duration,
        "call_timeout": args.timeout,
        "max_requests": args.max_requests,
    }
    out = []
    for _ in range(args.clients):
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(target=client_main, args=(child, 1 if pin else None, kwargs), daemon=True)
        p.start()
        child.close()
        out.append((p, parent))
    return out


def _measure(
    args: argparse.Namespace,
    proc: subprocess.Popen[bytes],
    payloads: list[bytes],
    target: str,
    http: str,
    pin: bool,
) -> dict[str, Any]:
    t_measure = time.monotonic() + 2.0 + args.warmup  # 2 s for the client processes to start
    clients = _start_clients(args, payloads, target, pin, t_measure)
    procs = [p for p, _ in clients]
    broker = broker_pid(args.bootstrap)
    time.sleep(max(0.0, t_measure - time.monotonic()))
    s0 = _Snapshot.take(proc.pid, procs, broker, http)
    time.sleep(max(0.0, t_measure + args.duration - time.monotonic()))
    s1 = _Snapshot.take(proc.pid, procs, broker, http)

    results: list[ClientResult] = []
    for p, conn in clients:
        if not conn.poll(args.timeout + 30):
            raise SystemExit("a client process did not report back")
        got = conn.recv()
        if isinstance(got, BaseException):
            raise SystemExit(f"client failed: {got!r}")
        results.append(got)
        p.join(10)
    end = _Snapshot.take(proc.pid, [], None, http)
    summary = _summarise(args, pin, s0, s1, end, results)
    _report(summary)
    return summary


def _summarise(
    args: argparse.Namespace,
    pin: bool,
    s0: _Snapshot,
    s1: _Snapshot,
    end: _Snapshot,
    results: list[ClientResult],
) -> dict[str, Any]:
    wall = s1.receiver.at - s0.receiver.at
    ok_records = sum(r.ok_records_window for r in results)
    cpu = s1.receiver.cpu_seconds - s0.receiver.cpu_seconds
    lat = sorted(x for r in results for x in r.latencies_ms)
    errors: collections.Counter[str] = collections.Counter()
    errors_total: collections.Counter[str] = collections.Counter()
    for r in results:
        errors.update(r.errors_window)
        errors_total.update(r.errors_total)
    pub = f'published_records_total{{signal="{args.signal}"}}'
    threads = {
        name: round(100 * (t - s0.threads.get(name, 0.0)) / max(cpu, 1e-9), 1)
        for name, t in sorted(s1.threads.items(), key=lambda kv: -kv[1])
        if t - s0.threads.get(name, 0.0) > 0
    }

    def per_core(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(100 * (b - a) / wall, 1)

    return {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "signal": args.signal,
        "records_per_request": args.records_per_request,
        "concurrency": args.concurrency,
        "clients": args.clients,
        "partitions": args.partitions,
        "pinned": pin,
        "window_s": round(wall, 2),
        "warmup_s": args.warmup,
        "records_per_s": round(ok_records / wall, 1),
        "ok_requests": sum(r.ok_requests_window for r in results),
        "ok_records": ok_records,
        "published_per_s_metric": round((s1.metrics.get(pub, 0) - s0.metrics.get(pub, 0)) / wall),
        "target_per_s": args.target,
        "build": build_name(s1.metrics.get("native_modules")),
        "cpu_s_per_100k": round(cpu / ok_records * 100_000, 3) if ok_records else None,
        "cpu_percent_of_core": round(100 * cpu / wall, 1),
        "cpu_by_thread_percent": threads,
        "page_faults_per_1k": (
            round((s1.receiver.page_faults - s0.receiver.page_faults) / ok_records * 1000, 1)
            if ok_records
            else None
        ),
        "peak_rss_mib": round(end.receiver.peak_rss_bytes / 2**20, 1),
        "rss_mib": round(end.receiver.rss_bytes / 2**20, 1),
        "latency_ms": {
            "p50": round(percentile(lat, 50), 1),
            "p99": round(percentile(lat, 99), 1),
            "max": round(lat[-1], 1) if lat else None,
            "calls": len(lat),
        },
        "errors_window": dict(errors),
        "errors_run": dict(errors_total),
        "clients_cpu_percent": per_core(s0.clients_cpu, s1.clients_cpu),
        "broker_cpu_percent": per_core(s0.broker_cpu, s1.broker_cpu),
        "machine_busy_percent": per_core(s0.machine_busy, s1.machine_busy),
        "cores": os.cpu_count(),
        "run_requests": sum(r.requests_total for r in results),
        "run_acknowledged_records": sum(r.ok_records_total for r in results),
        "run_rejected_records": sum(r.rejected_records_total for r in results),
        "run_failed_request_records": sum(r.failed_records_total for r in results),
        "run_published_metric": end.metrics.get(pub, 0),
    }


def _report(s: dict[str, Any]) -> None:
    lat = s["latency_ms"]
    sig = s["signal"]
    print(
        f"\n== receiver bench: {sig}, {s['records_per_request']} records/request, concurrency "
        f"{s['concurrency']} over {s['clients']} client process(es), {s['partitions']} partitions,"
        f" pinned={'receiver core 0, clients core 1' if s['pinned'] else 'no'}"
    )
    rows = [
        ("measured window", f"{s['window_s']:.1f} s (after {s['warmup_s']:g} s warm-up)"),
        (
            "acknowledged",
            f"{s['records_per_s']:,.0f} {sig} records/s  ({s['ok_records']:,} records in "
            f"{s['ok_requests']:,} OK requests; receiver's published counter "
            f"{s['published_per_s_metric']:,.0f}/s)",
        ),
        (
            "target",
            f"{s['target_per_s']:,} records/s: "
            + ("meets" if s["records_per_s"] >= s["target_per_s"] else "BELOW"),
        ),
        ("receiver build", s["build"]),
        ("receiver CPU", f"{s['cpu_s_per_100k']} s per 100k records"),
        ("receiver CPU use", f"{s['cpu_percent_of_core']:.0f}% of one core"),
        (
            "  by thread",
            ", ".join(f"{n} {p:.0f}%" for n, p in s["cpu_by_thread_percent"].items()),
        ),
        ("receiver page faults", f"{s['page_faults_per_1k']} per 1000 records"),
        (
            "receiver memory",
            f"peak RSS (VmHWM) {s['peak_rss_mib']:,.0f} MiB, RSS now {s['rss_mib']:,.0f} MiB",
        ),
        (
            "latency",
            f"p50 {lat['p50']} ms, p99 {lat['p99']} ms, max {lat['max']} ms ({lat['calls']} calls)",
        ),
        (
            "errors",
            f"{s['errors_window'] or 'none'} in window; {s['errors_run'] or 'none'} over the run",
        ),
        ("client CPU", f"{s['clients_cpu_percent']}% of one core ({s['clients']} procs)"),
        ("Kafka broker CPU", f"{s['broker_cpu_percent']}% of one core"),
        ("machine busy", f"{s['machine_busy_percent']}% of {s['cores']} cores"),
        (
            "run totals",
            f"{s['run_requests']:,} requests, {s['run_acknowledged_records']:,} records "
            f"acknowledged, {s['run_rejected_records']:,} rejected, "
            f"{s['run_failed_request_records']:,} in failed requests; receiver's published "
            f"counter {s['run_published_metric']:,.0f}",
        ),
    ]
    for name, value in rows:
        print(f"{name:<22} {value}")


def _cross_check(args: argparse.Namespace, topic: str, s: dict[str, Any]) -> int:
    """Records on Kafka vs acknowledged: equal, or more by at most the failed requests' records."""
    t0 = time.monotonic()
    messages, on_kafka = asyncio.run(count_on_topic(args.bootstrap, topic, 600))
    acked = s["run_acknowledged_records"]
    failed = s["run_failed_request_records"]
    ok = acked <= on_kafka <= acked + failed
    s["kafka_records"], s["kafka_messages"], s["kafka_check"] = on_kafka, messages, ok
    print(
        f"{'Kafka cross-check':<22} {on_kafka:,} records in {messages:,} messages on {topic} "
        f"({on_kafka / max(messages, 1):.0f} records/message; read in "
        f"{time.monotonic() - t0:.1f} s): "
        + ("OK" if ok else f"MISMATCH (acknowledged {acked:,}, failed {failed:,})")
    )
    return 0 if ok else 1


# ---------------------------------------------------------------------------------------------
# in-process breakdown of the per-request CPU work (no gRPC, no Kafka)


def hot_path(args: argparse.Namespace, payloads: list[bytes]) -> None:
    """Time each stage of the receiver's per-request work on the pre-built payloads, in this
    process, and the alternatives worth considering; prints microseconds per record.

    Stages mirror :class:`audit_stream.receiver.ingest.Ingest`: protobuf parse, decode,
    placement (murmur2 of all trace ids + one ``orjson.dumps`` per partition, ``Ingest._place``),
    then what aiokafka does per message (record batch build + compression with the Publisher's
    default codec and batch size). What is left of the end-to-end CPU per record is gRPC, asyncio,
    aiokafka's network path, freeing the request's objects and page faults.
    """
    import gc
    import inspect

    import orjson
    from aiokafka.producer.message_accumulator import BatchBuilder
    from aiokafka.producer.producer import AIOKafkaProducer
    from opentelemetry.proto.collector.logs.v1 import logs_service_pb2
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2

    from audit_stream.config import KafkaSettings, ReceiverSettings, TopicSettings
    from audit_stream.kafka.compression import effective_level, set_level
    from audit_stream.kafka.partitioner import partitions_for_hex_ids
    from audit_stream.kafka.publisher import Publisher
    from audit_stream.metrics import Registry
    from audit_stream.receiver import decode
    from audit_stream.receiver.accesslog import parse_line
    from audit_stream.receiver.ingest import Ingest
    from audit_stream.receiver.server import GC_THRESHOLDS

    logs = args.signal == "logs"
    Req: Any = (
        logs_service_pb2.ExportLogsServiceRequest
        if logs
        else trace_service_pb2.ExportTraceServiceRequest
    )
    defaults = inspect.signature(Publisher.__init__).parameters
    kafka = KafkaSettings()
    codec = kafka.compression
    set_level(codec, kafka.compression_level)  # as the Publisher does
    level = effective_level(codec, kafka.compression_level)
    batch_size = defaults["max_batch_size"].default
    codecs = {name: AIOKafkaProducer._COMPRESSORS[name][1] for name in ("lz4", "zstd", "snappy")}
    codecs["none"] = 0
    ingest = Ingest(ReceiverSettings(), TopicSettings(), None, Registry())  # type: ignore[arg-type]
    now = time.time_ns()
    decoder: Any = decode.decode_logs if logs else decode.decode_spans
    sig: Any = "log" if logs else "span"

    def batches(messages: list[Any], codec_id: int) -> int:
        size = 0
        for m in messages:  # one batch per message: with 1 MB batches, two messages at most share
            b = BatchBuilder(batch_size, codec_id)
            b.append(timestamp=None, key=m.key, value=m.value, headers=m.headers)
            size += len(b._build())
        return size

    stages: dict[str, float] = collections.defaultdict(float)
    sizes: dict[str, int] = collections.defaultdict(int)
    records = 0
    gc_time = [0.0, 0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            gc_time[1] = time.perf_counter()
        else:
            gc_time[0] += time.perf_counter() - gc_time[1]

    gc.collect()
    gc.freeze()  # as the receiver does after start-up
    gc.set_threshold(*GC_THRESHOLDS)
    gc.callbacks.append(on_gc)
    rounds = max(1, args.hot_rounds)
    for i in range(rounds * len(payloads)):
        body = payloads[i % len(payloads)]
        gc_before = gc_time[0]
        t0 = time.perf_counter()
        req = Req.FromString(body)
        t1 = time.perf_counter()
        batch = decoder(req, now)
        t2 = time.perf_counter()
        msgs = ingest._place(sig, "t", args.partitions, batch.records)
        t3 = time.perf_counter()
        sizes[codec or "none"] += batches(msgs, codecs.get(codec or "none", 0))
        t4 = time.perf_counter()
        stages["1 parse protobuf (FromString)"] += t1 - t0
        stages[f"2 decode ({decoder.__name__})"] += t2 - t1
        stages["3 place (Ingest._place)"] += t3 - t2
        stages[f"4 aiokafka batch build, {codec} level {level or 'default'}"] += t4 - t3
        stages["  1-4 of which cyclic garbage collection"] += gc_time[0] - gc_before
        # parts and alternatives, not part of the sum
        recs: list[Any] = batch.records
        t5 = time.perf_counter()
        if logs:
            for rec in req.resource_logs:
                for sl in rec.scope_logs:
                    for lr in sl.log_records:
                        if lr.body.string_value:
                            parse_line(lr.body.string_value)
        t6 = time.perf_counter()
        traced = [r["trace_id"] for r in recs if r["trace_id"]]
        t7 = time.perf_counter()
        partitions_for_hex_ids(traced, args.partitions)
        t8 = time.perf_counter()
        for m in msgs:
            orjson.loads(m.value)  # not timed: only to have the partition groups again
        t9 = time.perf_counter()
        dumps = orjson.dumps
        for r in recs:
            dumps(r)
        t10 = time.perf_counter()
        dumps(recs)
        t11 = time.perf_counter()
        if logs:
            stages["  2a of which access-log line parsing (parse_line)"] += t6 - t5
        stages["  3a of which murmur2 (partitions_for_hex_ids)"] += t8 - t7
        stages["  3b of which orjson.dumps, one call for all records"] += t11 - t10
        stages["  alt: orjson.dumps per record"] += t10 - t9
        for name in ("lz4", "zstd", "snappy", "none"):
            if name != (codec or "none"):
                ta = time.perf_counter()
                sizes[name] += batches(msgs, codecs[name])
                stages[f"  alt: batch build with {name}"] += time.perf_counter() - ta
        records += len(recs)
    gc.callbacks.remove(on_gc)
    per = 1e6 / records
    main_total = sum(v for k, v in stages.items() if k[0].isdigit()) * per
    print(f"\nin-process hot path, {records:,} {args.signal} records, microseconds per record:")
    for name in sorted(stages, key=lambda k: k.strip().lstrip("alt: ")):
        us = stages[name] * per
        print(f"  {name:<58} {us:7.2f} us  {100 * us / main_total:5.1f}%")
    print(
        f"  {'sum of stages 1-4':<58} {main_total:7.2f} us  (= {1e6 / main_total:,.0f} records/s)"
    )
    print(
        "  record batch bytes per record: "
        + ", ".join(f"{k} {v / records:,.0f}" for k, v in sorted(sizes.items()))
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Drive one audit-stream receiver over OTLP/gRPC and report throughput."
    )
    ap.add_argument("--duration", type=float, default=20.0, help="measured seconds (20)")
    ap.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring (3)")
    ap.add_argument("--concurrency", type=int, default=8, help="calls in flight, total (8)")
    ap.add_argument("--clients", type=int, default=1, help="client processes sharing them (1)")
    ap.add_argument("--records-per-request", type=int, default=1000)
    ap.add_argument("--variety", type=int, default=8, help="distinct pre-built requests (8)")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka (127.0.0.1:9092)")
    ap.add_argument("--signal", choices=["logs", "spans"], default="logs")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--no-pin", action="store_true", help="do not pin receiver/clients to cores")
    ap.add_argument("--timeout", type=float, default=30.0, help="per-call deadline, seconds")
    ap.add_argument("--max-requests", type=int, default=1_000_000, help="per client process")
    ap.add_argument("--target", type=int, default=80_000, help="records/s to compare against")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-verify", action="store_true", help="skip the Kafka cross-check")
    ap.add_argument("--keep-topics", action="store_true")
    ap.add_argument("--profile", metavar="FILE", help="run the receiver under cProfile")
    ap.add_argument("--profile-top", type=int, default=30)
    ap.add_argument(
        "--receiver-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the receiver process (repeatable), e.g. MALLOC_TOP_PAD_=...",
    )
    ap.add_argument("--log-dir", default="/tmp", help="where the receiver's log goes (/tmp)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    ap.add_argument(
        "--hot-path",
        action="store_true",
        help="only time the receiver's per-request stages in this process (no gRPC, no Kafka)",
    )
    ap.add_argument("--hot-rounds", type=int, default=5, help="passes over the payloads (5)")
    args = ap.parse_args(argv)
    if args.clients < 1 or args.concurrency < args.clients:
        ap.error("need --clients >= 1 and --concurrency >= --clients")
    if any("=" not in kv for kv in args.receiver_env):
        ap.error("--receiver-env takes NAME=VALUE")
    if args.hot_path:
        if not args.no_pin and (os.cpu_count() or 1) >= 2:
            os.sched_setaffinity(0, {0})
        hot_path(args, _payloads(args))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
