"""Pipeline benchmark: OTLP -> receiver -> Kafka -> Faust worker -> ``audit.siem``, real processes.

Answers: how many audit events per second does one worker process turn out on one core, how long
after a request does its joined SIEM record arrive, does the worker's memory stay flat under
sustained load, and what does an event cost in worker CPU.

What it does
    1. Makes sure Kafka answers on ``--bootstrap`` (``scripts/kafka-local start`` when nothing
       listens on a loopback address) and creates topics named ``bench-<random>.*`` (``audit-stream
       topics create``), so runs never see each other's records; deletes them at the end.
    2. Builds ``--variety`` pairs of export requests with :mod:`audit_stream.traffic`: for
       ``--records-per-request`` mesh requests, one logs request (Istio access-log lines) and one
       spans request (the callee's SERVER span), with the default :class:`~audit_stream.traffic.Mix`
       (~5% untraced logs, ~2% span-only, 10% RBAC denials, some end users and secrets). Each is
       serialised once; the byte offsets of every time field (fixed64) and trace id are found by
       serialising again with those fields flipped. Before each send the loader patches the bytes:
       times moved to "now", trace ids XOR-ed with a per-pair random salt (the same for the logs and
       the spans of a pair). Every request sent is therefore new to the worker (no deduplication),
       its halves still join, and the load generator spends ~0.25 ms per request instead of rebuilding
       protobuf.
    3. Starts ``audit-stream receiver`` and ``audit-stream worker`` (unique app id, web port, data
       dir; retention policy ``config/retention-policy.example.yaml``). With two or more cores the
       worker runs under ``taskset -c 0`` and the receiver, the load generator process and this
       script on core 1 (``--worker-core 1`` swaps them, ``--no-pin`` turns pinning off).

Live mode (default)
    The loader sends pairs for ``--warmup`` + ``--duration`` seconds: at ``--rate`` audit events/s,
    or as fast as ``--concurrency`` calls in flight allow (``--rate 0``). A pair's spans go
    ``--span-delay`` seconds after its logs (Envoy exports them separately; the logs wait in the
    join meanwhile). Then it waits until the worker has produced every expected event (bounded by
    ``--drain-timeout``). This script reads ``audit.siem`` from the start all along: latency is the
    arrival time of a joined record at this consumer minus the request's log time (OCSF ``time``,
    ms; native ``time_unix_nano``), for requests sent inside the measured window.

Preload mode (``--preload``)
    Measures the worker alone: the loader first fills ``mesh.logs``/``mesh.spans`` through the
    receiver (``--preload-events`` events, both cores, nothing pinned), then the worker starts and
    drains them. Events/s is the growth of ``audit.siem``'s end offsets between ``--warmup`` s after
    the first output and the end of the drain (or ``--duration`` s later). No latency (the records'
    times are the fill's).

What it prints
    A row every ``--sample-every`` seconds (events/s, worker CPU %, run-queue wait, RSS, waiting
    records, input lag), then: audit events/s from the SIEM topic's end offsets (the worker's
    ``events_total`` rate beside it), joined-event latency p50/p99/max at this consumer and by the
    SIEM record's Kafka timestamp (set by the worker's producer, so free of this reader's own
    delays), worker RSS at the start, middle and end of the window with the slope (judged flat on
    the second half), worker CPU seconds per 100k events, % of its core, page faults per 1000
    events (a fault costs microseconds on a VM) and main thread vs other threads, the worker's
    counters, CPU of the receiver / loader / broker / machine, how long the
    worker waited for a core (``schedstat``) and the busiest other processes: other people's
    work on a shared machine shows up there. Last, a check: the SIEM records must number exactly
    one per request acknowledged by the receiver (within the bounds that failed requests leave
    open), else the exit status is 1.

``--profile FILE`` runs the worker under cProfile (:mod:`bench.worker_profile`), collecting only
during the measured window, and prints the top functions; that run's throughput is not the result.

Run (from the repository root)::

    python bench/pipeline.py                         # live, as fast as possible, 10 s + 60 s
    python bench/pipeline.py --rate 4000             # live at 4,000 events/s (latency)
    python bench/pipeline.py --preload               # the worker alone, draining 600k events
    python bench/pipeline.py --preload --profile /tmp/worker.prof
    python bench/pipeline.py --preload --worker-core 1   # when core 0 is busy with other work
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import (
    ROOT,
    ProcSample,
    broker_pid,
    build_name,
    delete_topics,
    ensure_kafka,
    free_port,
    machine_busy_seconds,
    percentile,
    print_profile,
    rejected_records,
    topic_env,
    wait_ready,
)

_MiB = 2**20
_Q = struct.Struct("<Q")
_LOGS = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
_TRACES = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


# ---------------------------------------------------------------------------------------------
# payloads: serialised once, patched per send


@dataclass(frozen=True, slots=True)
class Half:
    """One serialised export request and where its times and trace ids sit in the bytes."""

    body: bytes
    times: tuple[tuple[int, int], ...]  # (offset, value) of every fixed64 time field
    traces: tuple[tuple[int, int], ...]  # (offset, first 8 bytes little-endian) of every trace id
    records: int

    def render(self, shift_ns: int, salt: int) -> bytes:
        """The request with every time moved by ``shift_ns`` and every trace id XOR ``salt``."""
        buf = bytearray(self.body)
        pack = _Q.pack_into
        for off, value in self.times:
            pack(buf, off, value + shift_ns)
        for off, value in self.traces:
            pack(buf, off, value ^ salt)
        return bytes(buf)


@dataclass(frozen=True, slots=True)
class Template:
    """A logs request and the spans request of the same mesh requests."""

    logs: Half
    spans: Half
    base_ns: int  # the requests' time when built
    events: int  # one audit event per mesh request
    joined: int  # traced requests with a log: joined events


def _diff(a: bytes, b: bytes) -> list[int]:
    if len(a) != len(b):
        raise AssertionError("flipping a fixed-size field changed the message size")
    return [i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y]


def _locate(req: Any, records: Any, time_fields: tuple[str, ...]) -> Half:
    """Find the offsets by serialising copies with one byte of each field flipped: fixed64 times
    flip their low byte (little-endian: the field's first byte), trace ids their first byte."""
    body = req.SerializeToString()
    copy = type(req)()
    copy.CopyFrom(req)
    recs = list(records(copy))
    for rec in recs:
        for f in time_fields:
            setattr(rec, f, getattr(rec, f) ^ 0xFF)
    time_offs = _diff(body, copy.SerializeToString())
    if len(time_offs) != len(recs) * len(time_fields):
        raise AssertionError(f"found {len(time_offs)} time fields, want {len(recs) * 2}")
    copy.CopyFrom(req)
    traced = 0
    for rec in records(copy):
        if rec.trace_id:
            rec.trace_id = bytes([rec.trace_id[0] ^ 0xFF]) + rec.trace_id[1:]
            traced += 1
    trace_offs = _diff(body, copy.SerializeToString())
    if len(trace_offs) != traced:
        raise AssertionError(f"found {len(trace_offs)} trace ids, want {traced}")
    return Half(
        body,
        tuple((o, _Q.unpack_from(body, o)[0]) for o in time_offs),
        tuple((o, _Q.unpack_from(body, o)[0]) for o in trace_offs),
        len(recs),
    )


def _log_records(req: Any) -> Any:
    for rl in req.resource_logs:
        for sl in rl.scope_logs:
            yield from sl.log_records


def _spans(req: Any) -> Any:
    for rs in req.resource_spans:
        for ss in rs.scope_spans:
            yield from ss.spans


def build_templates(variety: int, n: int, seed: int) -> list[Template]:
    """``variety`` pairs of requests for ``n`` mesh requests each, default traffic mix."""
    from audit_stream.traffic import Mix, logs_request, make_requests, spans_request

    rng = random.Random(seed)
    base = time.time_ns()
    out = []
    for _ in range(variety):
        reqs = make_requests(rng, n, base, Mix(), spread_ms=1)  # every request at `base`
        logs = _locate(
            logs_request(reqs), _log_records, ("time_unix_nano", "observed_time_unix_nano")
        )
        spans = _locate(spans_request(reqs), _spans, ("start_time_unix_nano", "end_time_unix_nano"))
        joined = sum(1 for r in reqs if r.trace_id and r.log)
        out.append(Template(logs, spans, base, len(reqs), joined))
    return out


# ---------------------------------------------------------------------------------------------
# load generator (a child process)


async def _load(target: str, templates: list[Template], spec: dict[str, Any]) -> dict[str, Any]:
    """Send pairs (see the module docstring); returns what was acknowledged and what it implies."""
    import grpc

    live = spec["mode"] == "live"
    rng = random.Random()
    sem = asyncio.Semaphore(spec["concurrency"])
    errors: dict[str, int] = {}
    latencies: list[float] = []
    acked = [0]
    opts = [("grpc.max_send_message_length", 64 << 20)]

    async with grpc.aio.insecure_channel(target, options=opts) as channel:
        calls = {
            "logs": channel.unary_unary(_LOGS, request_serializer=None, response_deserializer=None),
            "spans": channel.unary_unary(
                _TRACES, request_serializer=None, response_deserializer=None
            ),
        }

        async def send(
            signal_name: str,
            half: Half,
            body: bytes | None,
            shift: int,
            salt: int,
            at: float,
            held: bool,
        ) -> bool:
            """One export call; ``held``: the caller already holds a semaphore slot."""
            if not held:
                await asyncio.sleep(max(0.0, at - time.monotonic()))
                await sem.acquire()
            try:
                if body is None:
                    body = half.render(shift, salt)
                t0 = time.monotonic()
                try:
                    resp = await calls[signal_name](body, timeout=spec["timeout"])
                    ok = rejected_records(signal_name, resp) == 0
                    if not ok:
                        errors["PARTIAL"] = errors.get("PARTIAL", 0) + 1
                except grpc.aio.AioRpcError as exc:
                    ok = False
                    errors[exc.code().name] = errors.get(exc.code().name, 0) + 1
                latencies.append((time.monotonic() - t0) * 1000)
                if ok:
                    acked[0] += half.records
                return ok
            finally:
                sem.release()

        pairs: list[tuple[Template, float, Any, Any]] = []
        if live:
            await asyncio.sleep(max(0.0, spec["t_start"] - time.monotonic()))
        t0 = time.monotonic()
        per_pair = sum(t.events for t in templates) / len(templates)
        interval = per_pair / spec["rate"] if live and spec["rate"] else 0.0
        delay = spec["span_delay"] if live else 0.0
        sent_events = 0
        i = 0
        while (time.monotonic() < spec["t_end"]) if live else (sent_events < spec["events"]):
            if interval:
                await asyncio.sleep(max(0.0, t0 + i * interval - time.monotonic()))
            await sem.acquire()
            tpl = templates[i % len(templates)]
            shift = time.time_ns() - tpl.base_ns
            salt = rng.getrandbits(64)
            now = time.monotonic()
            body = tpl.logs.render(shift, salt)
            logs = asyncio.create_task(send("logs", tpl.logs, body, shift, salt, now, True))
            spans = asyncio.create_task(
                send("spans", tpl.spans, None, shift, salt, now + delay, False)
            )
            pairs.append((tpl, now, logs, spans))
            sent_events += tpl.events
            i += 1
        await asyncio.gather(*(t for p in pairs for t in p[2:]))

    lower = upper = joined = failed = 0
    for tpl, _, logs, spans in pairs:
        lok, sok = logs.result(), spans.result()
        failed += (not lok) + (not sok)
        upper += tpl.events
        if lok and sok:
            lower += tpl.events
            joined += tpl.joined
        elif lok:
            lower += tpl.logs.records  # every log yields an event; span-only ones may not
        elif sok:
            lower += tpl.spans.records  # every request span does; untraced logs may not
    lat = sorted(latencies)
    out: dict[str, Any] = {
        "events_lower": lower,
        "events_upper": upper,
        "joined_expected": joined,
        "requests": 2 * len(pairs),
        "failed_requests": failed,
        "errors": errors,
        "records_acked": acked[0],
        "call_latency_ms": {
            "p50": round(percentile(lat, 50), 1),
            "p99": round(percentile(lat, 99), 1),
        },
    }
    if live:
        t_measure, t_end = spec["t_measure"], spec["t_end"]
        in_window = sum(t.events for t, at, _, _ in pairs if t_measure <= at < t_end)
        out["offered_events_per_s"] = round(in_window / (t_end - t_measure), 1)
    return out


def loader_main(
    conn: Any, core: int | None, target: str, templates: list[Template], spec: dict[str, Any]
) -> None:
    """Entry point of the load generator process: load, then send the result dict back."""
    if core is not None:
        os.sched_setaffinity(0, {core})
    try:
        conn.send(asyncio.run(_load(target, templates, spec)))
    except BaseException as exc:  # report, do not hang the parent
        conn.send(exc)
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# processes


def _audit_stream(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit_stream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _stop(proc: subprocess.Popen[bytes] | None, timeout: float = 60) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


def _start_receiver(
    env: dict[str, str], core: int | None, log_path: Path
) -> tuple[subprocess.Popen[bytes], str, str]:
    gport, hport = free_port(), free_port()
    cmd = [sys.executable, "-m", "audit_stream.cli", "receiver"]
    cmd += ["--grpc-listen", f"127.0.0.1:{gport}", "--http-listen", f"127.0.0.1:{hport}"]
    cmd += ["--log-level", "warning"]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    http = f"http://127.0.0.1:{hport}"
    wait_ready(http, proc, 60)
    return proc, f"127.0.0.1:{gport}", http


def _start_worker(
    env: dict[str, str], core: int | None, log_path: Path, profile: str | None
) -> subprocess.Popen[bytes]:
    if profile:
        cmd = [sys.executable, str(ROOT / "bench" / "worker_profile.py"), "--out", profile]
        cmd += ["--wait-signal", "--", "-l", "info"]
    else:
        cmd = [sys.executable, "-m", "audit_stream.cli", "worker", "-l", "info"]
    if core is not None:
        cmd = ["taskset", "-c", str(core), *cmd]  # taskset execs: the pid is the worker's
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-3000:]
            raise SystemExit(f"worker exited with {proc.returncode} while starting:\n{tail}")
        # Faust logs this once partitions are assigned and the agent consumes.
        if b"Worker ready" in log_path.read_bytes():
            return proc
        time.sleep(0.2)
    raise SystemExit(f"worker not ready within 90 s; log: {log_path}")


def _worker_stats(web: str) -> dict[str, Any]:
    with urllib.request.urlopen(f"{web}/audit/stats", timeout=5) as r:
        return dict(json.loads(r.read()))


def _runq_wait(pid: int) -> float:
    """Seconds the process's threads spent runnable but waiting for a core (``schedstat``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            total += int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[1])
    return total / 1e9


def _main_and_other_threads(pid: int) -> dict[str, float]:
    """CPU seconds of the main thread (the event loop, the agent) and of all other threads
    (Faust runs aiokafka's consumer in a thread of its own); all are named ``python``."""
    out = {"main thread": 0.0, "other threads": 0.0}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_bytes()
            rest = stat[stat.rindex(b")") + 2 :].split()
            cpu = (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
            out["main thread" if int(tid) == pid else "other threads"] += cpu
    return out


def _others_cpu(exclude: set[int]) -> dict[int, tuple[str, float]]:
    """CPU seconds of every other process on the machine: what competed for the cores."""
    out: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in exclude:
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            rest = stat[stat.rindex(b")") + 2 :].split()
            cpu = (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")
            cmd = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            name = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
            out[int(entry)] = (cmd.strip()[:90] or f"[{name}]", cpu)
    return out


def _cpu(pid: int | None) -> float | None:
    if pid is None:
        return None
    try:
        return ProcSample.read(pid).cpu_seconds
    except OSError:
        return None


# ---------------------------------------------------------------------------------------------
# reading audit.siem


class SiemReader:
    """Follows the SIEM topic from its start: counts records and times the joined ones.

    Arrival time is taken when ``getmany`` returns; this script keeps up with the worker as long
    as the consumer's position stays near the end offsets (``lag`` shows it).
    """

    def __init__(self, bootstrap: str, topic: str, fmt: str, inputs: list[str]) -> None:
        self._bootstrap, self._topic, self._fmt, self._input_names = bootstrap, topic, fmt, inputs
        self.consumed = 0
        self.by_correlation: dict[str, int] = {}
        # (log time ns, latency at this consumer ms, latency at the record's Kafka timestamp ms)
        self.joined: list[tuple[int, float, float]] = []
        self.max_lag = 0
        self._consumer: Any = None
        self._parts: list[Any] = []
        self._inputs: list[Any] = []

    async def start(self) -> None:
        from aiokafka import AIOKafkaConsumer, TopicPartition

        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=4 << 20,
        )
        await self._consumer.start()
        parts: dict[str, list[Any]] = {}
        for name in (self._topic, *self._input_names):
            for _ in range(100):
                found = self._consumer.partitions_for_topic(name)
                if found:
                    break
                await self._consumer._client.force_metadata_update()
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"topic {name} has no partitions")
            parts[name] = [TopicPartition(name, p) for p in sorted(found)]
        self._parts = parts.pop(self._topic)
        self._inputs = [tp for tps in parts.values() for tp in tps]
        self._consumer.assign(self._parts)
        await self._consumer.seek_to_beginning(*self._parts)

    async def end_offsets(self) -> tuple[int, int]:
        """(records on the SIEM topic, messages on the input topics)."""
        ends = await self._consumer.end_offsets(self._parts + self._inputs)
        siem = sum(ends[tp] for tp in self._parts)
        return int(siem), int(sum(ends.values()) - siem)

    async def run(self, stop: asyncio.Event, timing: bool) -> None:
        import orjson

        loads, joined, counts = orjson.loads, self.joined, self.by_correlation
        native = self._fmt == "native"
        while not stop.is_set():
            batch = await self._consumer.getmany(timeout_ms=100, max_records=20_000)
            now = time.time_ns()
            for msgs in batch.values():
                self.consumed += len(msgs)
                if not timing:
                    continue
                for m in msgs:
                    doc = loads(m.value)
                    corr = doc["correlation"] if native else doc["unmapped"]["correlation"]
                    counts[corr] = counts.get(corr, 0) + 1
                    if corr == "joined":
                        t = doc["time_unix_nano"] if native else doc["time"] * 1_000_000
                        # CreateTime: set by the worker's producer when it batched the record
                        joined.append((t, (now - t) / 1e6, m.timestamp - t / 1e6))

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()


# ---------------------------------------------------------------------------------------------
# the run


class Run:
    """One benchmark run: topics, processes, load, samples; :meth:`execute` returns the summary."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.prefix = f"bench-{uuid.uuid4().hex[:8]}"
        self.env = topic_env(args.bootstrap, self.prefix, args.partitions)
        self.pin = (
            not args.no_pin and shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
        )
        self.core = args.worker_core  # the worker's core; everything else runs on `self.other`
        self.other = 1 - args.worker_core
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{self.prefix}-"))
        self.web = ""
        self.receiver: subprocess.Popen[bytes] | None = None
        self.worker: subprocess.Popen[bytes] | None = None
        self.samples: list[dict[str, Any]] = []

    # -- setup -----------------------------------------------------------------------------------

    def worker_env(self) -> dict[str, str]:
        a = self.args
        port = free_port()
        self.web = f"http://127.0.0.1:{port}"
        env = {
            **self.env,
            "AUDIT_STREAM_APP_ID": f"{self.prefix}-worker",
            "AUDIT_STREAM_DATA_DIR": str(self.tmp / "worker"),
            "AUDIT_STREAM_WEB_PORT": str(port),
            "AUDIT_STREAM_SIEM_FORMAT": a.siem_format,
        }
        if a.retention_policy:
            env["AUDIT_STREAM_RETENTION_POLICY"] = a.retention_policy
        if a.join_window is not None:
            env["AUDIT_STREAM_JOIN_WINDOW_SECONDS"] = str(a.join_window)
        for kv in a.worker_env:
            k, _, v = kv.partition("=")
            env[k] = v
        return env

    def start_loader(
        self, target: str, templates: list[Template], spec: dict[str, Any], core: int | None
    ) -> tuple[Any, Any]:
        ctx = mp.get_context("spawn")  # no fork after grpc was imported
        parent, child = ctx.Pipe(duplex=False)
        p = ctx.Process(
            target=loader_main, args=(child, core, target, templates, spec), daemon=True
        )
        p.start()
        child.close()
        return p, parent

    @staticmethod
    def loader_result(proc: Any, conn: Any, timeout: float) -> dict[str, Any]:
        if not conn.poll(timeout):
            raise SystemExit("the load generator did not report back")
        got = conn.recv()
        proc.join(10)
        if isinstance(got, BaseException):
            raise SystemExit(f"load generator failed: {got!r}")
        return dict(got)

    def reader(self) -> SiemReader:
        inputs = [self.env["AUDIT_STREAM_TOPIC_LOGS"], self.env["AUDIT_STREAM_TOPIC_SPANS"]]
        fmt = self.args.siem_format
        return SiemReader(self.args.bootstrap, self.env["AUDIT_STREAM_TOPIC_SIEM"], fmt, inputs)

    # -- sampling --------------------------------------------------------------------------------

    async def sample(self, reader: SiemReader, t0: float, loader_pid: int | None) -> dict[str, Any]:
        assert self.worker is not None
        consumed = reader.consumed  # before the end offsets: the lag is then never negative
        siem, inputs = await reader.end_offsets()
        w = ProcSample.read(self.worker.pid)
        try:
            stats = await asyncio.to_thread(_worker_stats, self.web)
        except OSError:  # busy or rebalancing: keep the last answer, marked stale
            last = self.samples[-1] if self.samples else {}
            stats = {"pending": None, "counters": last.get("counters", {})}
        s = {
            "t": round(w.at - t0, 2),
            "at": w.at,
            "siem": siem,
            "input_messages": inputs,
            "worker_messages": sum(
                v for k, v in stats.get("counters", {}).items() if k.startswith("messages_total")
            ),
            "worker_runq_wait": _runq_wait(self.worker.pid),
            "worker_threads": _main_and_other_threads(self.worker.pid),
            "consumed": consumed,
            "worker_cpu": w.cpu_seconds,
            "worker_faults": w.page_faults,
            "rss": w.rss_bytes,
            "hwm": w.peak_rss_bytes,
            "pending": stats.get("pending"),
            "counters": stats.get("counters", {}),
            "receiver_cpu": _cpu(self.receiver.pid if self.receiver else None),
            "loader_cpu": _cpu(loader_pid),
            "broker_cpu": _cpu(broker_pid(self.args.bootstrap)),
            "self_cpu": _cpu(os.getpid()),
            "machine": machine_busy_seconds(),
            "others": _others_cpu(self._ours(loader_pid)),
        }
        self.samples.append(s)
        return s

    def _ours(self, loader_pid: int | None) -> set[int]:
        pids = {os.getpid(), self.worker.pid if self.worker else 0, loader_pid or 0}
        pids |= {self.receiver.pid if self.receiver else 0, broker_pid(self.args.bootstrap) or 0}
        return pids

    def print_row(self, prev: dict[str, Any] | None, s: dict[str, Any]) -> None:
        if prev is None:
            print(
                f"{'t s':>6} {'events/s':>9} {'worker CPU':>10} {'run-queue':>9} {'RSS MiB':>8} "
                f"{'waiting':>8} {'SIEM total':>11} {'input lag':>9} {'reader lag':>10}"
            )
            return
        dt = s["at"] - prev["at"]
        rate = (s["siem"] - prev["siem"]) / dt
        cpu = 100 * (s["worker_cpu"] - prev["worker_cpu"]) / dt
        wait = 100 * (s["worker_runq_wait"] - prev["worker_runq_wait"]) / dt
        print(
            f"{s['t']:6.0f} {rate:9,.0f} {cpu:9.0f}% {wait:8.0f}% {s['rss'] / _MiB:8.1f} "
            f"{s['pending'] if s['pending'] is not None else '?':>8} {s['siem']:11,} "
            f"{s['input_messages'] - s['worker_messages']:9,.0f} "
            f"{s['siem'] - s['consumed']:10,}"
        )

    async def follow(
        self,
        reader: SiemReader,
        t0: float,
        until: float,
        loader_pid: int | None,
        done: Any = None,
    ) -> None:
        """Sample every ``--sample-every`` s until ``until`` (monotonic) or ``done(sample)``."""
        prev = self.samples[-1] if self.samples else None
        if prev is None:
            self.print_row(None, {})
            prev = await self.sample(reader, t0, loader_pid)
        every = self.args.sample_every
        while time.monotonic() < until:
            await asyncio.sleep(
                max(0.0, min(every - (time.monotonic() - prev["at"]), until - time.monotonic()))
            )
            s = await self.sample(reader, t0, loader_pid)
            self.print_row(prev, s)
            reader.max_lag = max(reader.max_lag, s["siem"] - s["consumed"])
            prev = s
            if done is not None and done(s):
                return

    # -- modes -----------------------------------------------------------------------------------

    async def live(self, templates: list[Template], target: str) -> dict[str, Any]:
        a = self.args
        reader = self.reader()
        await reader.start()
        stop = asyncio.Event()
        consume = asyncio.create_task(reader.run(stop, timing=True))
        t_start = time.monotonic() + 2.0  # the loader process needs ~1 s to start
        t_measure = t_start + a.warmup
        t_end = t_measure + a.duration
        wall_offset = time.time_ns() - time.monotonic_ns()
        spec = {
            "mode": "live",
            "rate": a.rate,
            "concurrency": a.concurrency,
            "span_delay": a.span_delay,
            "t_start": t_start,
            "t_measure": t_measure,
            "t_end": t_end,
            "timeout": a.timeout,
        }
        lproc, conn = self.start_loader(target, templates, spec, self.other if self.pin else None)
        try:
            await asyncio.sleep(max(0.0, t_start - time.monotonic()))
            await self.follow(reader, t_start, t_measure, lproc.pid)
            self._profile_signal(start=True)
            first = len(self.samples)
            await self.follow(reader, t_start, t_end, lproc.pid)
            # The window's last sample is taken at t_end, not after it.
            s_end = self.samples[-1]
            self._profile_signal(start=False)
            load = await asyncio.to_thread(self.loader_result, lproc, conn, a.timeout + 60)
            want = load["events_lower"]

            def drained(s: dict[str, Any]) -> bool:
                return bool(s["siem"] >= want and s["pending"] == 0)

            print(f"-- load stopped; draining (up to {a.drain_timeout:g} s) --")
            t_drain = time.monotonic()
            await self.follow(
                reader, t_start, time.monotonic() + a.drain_timeout, None, done=drained
            )
            drain_s = time.monotonic() - t_drain
            end = self.samples[-1]
            # Let the reader catch up with the end offsets before it stops.
            catch_up = time.monotonic() + 30
            while reader.consumed < end["siem"] and time.monotonic() < catch_up:  # noqa: ASYNC110
                await asyncio.sleep(0.2)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await consume
            await reader.stop()
        window = self.samples[first - 1 : self.samples.index(s_end) + 1]
        lo = t_measure * 1e9 + wall_offset
        hi = t_end * 1e9 + wall_offset
        picked = [(ms, ts) for t, ms, ts in reader.joined if lo <= t <= hi]
        lat = sorted(ms for ms, _ in picked)
        out = self.summary(window, end, load, reader, lat, drain_s, drained(end))
        produced = sorted(ts for _, ts in picked)
        out["latency_ms"]["produce_p50"] = round(percentile(produced, 50), 1)
        out["latency_ms"]["produce_p99"] = round(percentile(produced, 99), 1)
        return out

    async def preload(self, templates: list[Template], target: str) -> dict[str, Any]:
        a = self.args
        spec = {
            "mode": "preload",
            "events": a.preload_events,
            "concurrency": a.preload_concurrency,
            "timeout": a.timeout,
        }
        t_fill = time.monotonic()
        lproc, conn = self.start_loader(target, templates, spec, None)
        load = await asyncio.to_thread(self.loader_result, lproc, conn, 3600)
        fill_s = time.monotonic() - t_fill
        print(
            f"preloaded {load['events_lower']:,} events ({load['records_acked']:,} records) "
            f"through the receiver in {fill_s:.1f} s"
        )
        _stop(self.receiver)  # measure the worker alone
        self.receiver = None
        reader = self.reader()
        await reader.start()
        stop = asyncio.Event()
        consume = asyncio.create_task(reader.run(stop, timing=False))
        want = load["events_lower"]
        t_launch = time.monotonic()
        self.worker = await asyncio.to_thread(
            _start_worker,
            self.worker_env(),
            self.core if self.pin else None,
            Path(a.log_dir) / f"{self.prefix}-worker.log",
            a.profile,
        )
        t_ready = time.monotonic()
        print(f"worker ready in {t_ready - t_launch:.1f} s; draining {want:,} events")
        self._profile_signal(start=True)
        try:
            await self.follow(
                reader,
                t_ready,
                t_ready + a.drain_timeout + a.duration,
                None,
                done=lambda s: s["siem"] >= want and s["pending"] == 0,
            )
            self._profile_signal(start=False)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await consume
            await reader.stop()
        end = self.samples[-1]
        # The window: from `--warmup` s after the first output, to `--duration` s later or the
        # last sample before the output stopped growing (whichever is first).
        first_out = next((s for s in self.samples if s["siem"] > 0), end)
        start_at = first_out["at"] + a.warmup
        start = next((s for s in self.samples if s["at"] >= start_at), end)
        # The drain proper ends when every input message has been consumed; what remains then
        # are halves waiting for a partner that never comes, released by the wall-clock hold.
        caught_up = next(
            (
                s
                for s in self.samples
                if s["at"] > start["at"] and s["input_messages"] <= s["worker_messages"]
            ),
            end,
        )
        stop_at = min(caught_up["at"], start["at"] + a.duration)
        stop_s = min(
            (s for s in self.samples if s["at"] > start["at"]),
            key=lambda s: abs(s["at"] - stop_at),
            default=end,
        )
        i, j = self.samples.index(start), self.samples.index(stop_s)
        window = self.samples[i : j + 1] if j > i else self.samples[max(0, j - 1) : j + 1]
        done_s = next((s for s in self.samples if s["siem"] >= want), end)
        drain_s = (done_s["at"] - t_ready) if end["siem"] >= want else float("nan")
        out = self.summary(window, end, load, reader, [], drain_s, end["siem"] >= want)
        out["preload_fill_s"] = round(fill_s, 1)
        out["worker_start_s"] = round(t_ready - t_launch, 1)
        out["drain_overall_per_s"] = round(caught_up["siem"] / (caught_up["at"] - t_ready), 1)
        return out

    def _profile_signal(self, start: bool) -> None:
        if self.args.profile and self.worker is not None and self.worker.poll() is None:
            sig = signal.SIGRTMIN if start else signal.SIGRTMIN + 1
            self.worker.send_signal(sig)

    # -- results ---------------------------------------------------------------------------------

    def summary(
        self,
        window: list[dict[str, Any]],
        end: dict[str, Any],
        load: dict[str, Any],
        reader: SiemReader,
        lat: list[float],
        drain_s: float,
        drained: bool,
    ) -> dict[str, Any]:
        a = self.args
        s0, s1 = window[0], window[-1]
        wall = s1["at"] - s0["at"]
        events = s1["siem"] - s0["siem"]
        cpu = s1["worker_cpu"] - s0["worker_cpu"]

        def counter(s: dict[str, Any], name: str) -> float:
            return float(s["counters"].get(name, 0.0))

        def per_core(key: str) -> float | None:
            x, y = s0.get(key), s1.get(key)
            return None if x is None or y is None else round(100 * (y - x) / wall, 1)

        joined_key = 'events_total{correlation="joined"}'
        counted = sum(
            counter(s1, f'events_total{{correlation="{c}"}}')
            - counter(s0, f'events_total{{correlation="{c}"}}')
            for c in ("joined", "log_only", "span_only")
        )
        rss = [(s["at"] - s0["at"], s["rss"]) for s in window]
        slope = _slope(rss) * 60 / _MiB if len(rss) >= 3 else float("nan")
        mid = window[len(window) // 2]
        # Judged on the second half: the first includes state filling up to its bounds.
        growth = (s1["rss"] - mid["rss"]) / _MiB
        flat = growth <= max(8.0, 0.03 * mid["rss"] / _MiB)
        c = end["counters"]
        logs = c.get('records_total{signal="log"}', 0.0)
        spans = c.get('records_total{signal="span"}', 0.0)
        joined = c.get(joined_key, 0.0)
        log_only = c.get('events_total{correlation="log_only"}', 0.0)
        span_only = c.get('events_total{correlation="span_only"}', 0.0)
        dead = sum(v for k, v in c.items() if k.startswith("deadlettered_total"))
        lo, hi = load["events_lower"], load["events_upper"]
        check = lo <= end["siem"] <= hi
        return {
            "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "mode": "preload" if a.preload else "live",
            "rate_target": a.rate,
            "span_delay_s": a.span_delay,
            "records_per_request": a.records_per_request,
            "partitions": a.partitions,
            "siem_format": a.siem_format,
            "pinned": self.pin,
            "worker_core": self.core,
            "profiled": bool(a.profile),
            "window_s": round(wall, 1),
            "events_per_s": round(events / wall, 1) if wall > 0 else None,
            "counter_events_per_s": round(counted / wall, 1) if wall > 0 else None,
            "offered_events_per_s": load.get("offered_events_per_s"),
            "target_events_per_s": a.target,
            "worker_build": build_name(s1["counters"].get("native_modules")),
            "worker_cpu_s_per_100k": round(cpu / events * 100_000, 3) if events else None,
            "worker_cpu_percent": round(100 * cpu / wall, 1) if wall > 0 else None,
            "worker_page_faults_per_1k": (
                round((s1["worker_faults"] - s0["worker_faults"]) / events * 1000, 1)
                if events
                else None
            ),
            "worker_cpu_by_thread_percent": {
                name: round(100 * (t - s0["worker_threads"].get(name, 0.0)) / max(cpu, 1e-9), 1)
                for name, t in sorted(s1["worker_threads"].items(), key=lambda kv: -kv[1])
                if t - s0["worker_threads"].get(name, 0.0) > 0.005 * max(cpu, 1e-9)
            },
            "rss_mib": {
                "start": round(s0["rss"] / _MiB, 1),
                "middle": round(mid["rss"] / _MiB, 1),
                "end": round(s1["rss"] / _MiB, 1),
                "peak": round(end["hwm"] / _MiB, 1),
                "slope_mib_per_min": round(slope, 2),
                "flat": flat,
            },
            "latency_ms": {
                "p50": round(percentile(lat, 50), 1),
                "p99": round(percentile(lat, 99), 1),
                "max": round(lat[-1], 1) if lat else None,
                "joined_events": len(lat),
            },
            "reader": {
                "consumed": reader.consumed,
                "max_lag": reader.max_lag,
                "by_correlation": reader.by_correlation,
            },
            "counters": {
                "joined": joined,
                "log_only": log_only,
                "span_only": span_only,
                "log_records": logs,
                "span_records": spans,
                "not_in_an_event": logs + spans - 2 * joined - log_only - span_only,
                "dead_lettered": dead,
                "redacted": c.get("redacted_total", 0.0),
                "pending_at_end": end["pending"],
            },
            "expected": {
                "events_lower": lo,
                "events_upper": hi,
                "joined": load["joined_expected"],
                "requests": load["requests"],
                "failed_requests": load["failed_requests"],
            },
            "siem_records": end["siem"],
            "drained": drained,
            "drain_s": round(drain_s, 1),
            "check_ok": check,
            "receiver_cpu_percent": per_core("receiver_cpu"),
            "loader_cpu_percent": per_core("loader_cpu"),
            "bench_cpu_percent": per_core("self_cpu"),
            "broker_cpu_percent": per_core("broker_cpu"),
            "machine_busy_percent": per_core("machine"),
            "worker_runq_wait_percent": per_core("worker_runq_wait"),
            "other_processes_percent": _top_others(window, wall),
            "cores": os.cpu_count(),
            "client_latency_ms": load.get("call_latency_ms"),
        }

    # -- orchestration ---------------------------------------------------------------------------

    def execute(self) -> tuple[dict[str, Any], int]:
        a = self.args
        print(ensure_kafka(a.bootstrap))
        for _ in range(5):
            made = _audit_stream(["topics", "create"], self.env)
            # `topics create` checks the partition counts right after creating: on a busy broker
            # the new topics' metadata may not be visible yet ("do not exist"). Creating again
            # finds them existing and checks again.
            if made.returncode == 0 or "do not exist" not in made.stderr:
                break
            time.sleep(1.0)
        if made.returncode != 0:
            raise SystemExit(f"creating topics failed:\n{made.stdout}{made.stderr}")
        topics = [v for k, v in self.env.items() if k.startswith("AUDIT_STREAM_TOPIC_")]
        t_build = time.monotonic()
        templates = build_templates(a.variety, a.records_per_request, a.seed)
        t = templates[0]
        print(
            f"payloads: {a.variety} pairs of {t.events} requests ({t.logs.records} logs "
            f"{len(t.logs.body) / 1024:.0f} KiB, {t.spans.records} spans "
            f"{len(t.spans.body) / 1024:.0f} KiB; built in {time.monotonic() - t_build:.1f} s)"
        )
        if self.pin:
            os.sched_setaffinity(0, {self.other})
        try:
            self.receiver, target, _ = _start_receiver(
                self.env,
                self.other if (self.pin and not a.preload) else None,
                Path(a.log_dir) / f"{self.prefix}-receiver.log",
            )
            if a.preload:
                summary = asyncio.run(self.preload(templates, target))
            else:
                self.worker = _start_worker(
                    self.worker_env(),
                    self.core if self.pin else None,
                    Path(a.log_dir) / f"{self.prefix}-worker.log",
                    a.profile,
                )
                summary = asyncio.run(self.live(templates, target))
        finally:
            _stop(self.worker)
            _stop(self.receiver)
            if not a.keep_topics:
                with contextlib.suppress(Exception):
                    asyncio.run(delete_topics(a.bootstrap, topics))
            shutil.rmtree(self.tmp, ignore_errors=True)
        _report(summary)
        if a.json:
            Path(a.json).write_text(json.dumps(summary, indent=2) + "\n")
        if a.profile:
            if Path(a.profile).exists():
                print_profile(a.profile, a.profile_top)
            else:
                print(f"no profile written to {a.profile}")
        print(
            f"logs: {a.log_dir}/{self.prefix}-{{receiver,worker}}.log"
            + ("" if a.keep_topics else "; topics deleted")
        )
        return summary, 0 if summary["check_ok"] else 1


def _top_others(window: list[dict[str, Any]], wall: float, top: int = 4) -> list[tuple[str, float]]:
    """The busiest other processes over the window, by command line. Processes that started
    after its first sample count from zero; those that ended between samples are lost."""
    first: dict[int, float] = {pid: cpu for pid, (_, cpu) in window[0]["others"].items()}
    used: dict[int, tuple[str, float]] = {}
    for s in window[1:]:
        for pid, (name, cpu) in s["others"].items():
            used[pid] = (name, cpu - first.get(pid, 0.0))
    by_name: dict[str, float] = {}
    for name, cpu in used.values():
        by_name[name] = by_name.get(name, 0.0) + cpu
    ranked = sorted(by_name.items(), key=lambda kv: -kv[1])[:top]
    return [(name, round(100 * cpu / wall, 1)) for name, cpu in ranked if cpu / wall >= 0.01]


def _slope(points: list[tuple[float, int]]) -> float:
    """Least-squares slope of y over x (bytes per second)."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else float("nan")


def _report(s: dict[str, Any]) -> None:
    lat, rss, c, e = s["latency_ms"], s["rss_mib"], s["counters"], s["expected"]
    rate = f"{s['rate_target']:,} events/s" if s["rate_target"] else "as fast as possible"
    mode = (
        "preload (worker alone, draining)"
        if s["mode"] == "preload"
        else f"live, {rate}, spans {s['span_delay_s']:g} s after their logs"
    )
    print(
        f"\n== pipeline bench: {mode}; {s['records_per_request']} requests per export, "
        f"{s['partitions']} partitions, {s['siem_format']}, pinned="
        + (
            f"worker core {s['worker_core']}, the rest core {1 - s['worker_core']}"
            if s["pinned"]
            else "no"
        )
        + (", worker under cProfile" if s["profiled"] else "")
    )
    threads = ", ".join(f"{n} {p:.0f}%" for n, p in s["worker_cpu_by_thread_percent"].items())
    meets = s["events_per_s"] is not None and s["events_per_s"] >= s["target_events_per_s"]
    rows = [
        ("measured window", f"{s['window_s']} s"),
        (
            "audit events/s",
            f"{s['events_per_s']:,.0f} (SIEM end offsets; worker's events_total "
            f"{s['counter_events_per_s']:,.0f}/s"
            + (
                f"; offered {s['offered_events_per_s']:,.0f}/s)"
                if s["offered_events_per_s"]
                else ")"
            ),
        ),
        ("target", f"{s['target_events_per_s']:,} events/s: {'meets' if meets else 'BELOW'}"),
        ("worker build", s["worker_build"]),
        (
            "worker CPU",
            f"{s['worker_cpu_s_per_100k']} s per 100k events, "
            f"{s['worker_cpu_percent']}% of one core; "
            f"{s['worker_page_faults_per_1k']} page faults per 1000 events",
        ),
        ("  by thread", threads),
        (
            "worker RSS",
            f"start {rss['start']} MiB, middle {rss['middle']}, end {rss['end']} (peak "
            f"{rss['peak']}); slope {rss['slope_mib_per_min']:+} MiB/min; second half: "
            + ("flat" if rss["flat"] else "GROWING"),
        ),
    ]
    if s["mode"] == "live":
        rows.append(
            (
                "joined latency",
                f"p50 {lat['p50']:,} ms, p99 {lat['p99']:,} ms, max {lat['max']} ms "
                f"({lat['joined_events']:,} joined events of requests sent in the window)",
            )
        )
        rows.append(
            (
                "  by record time",
                f"p50 {lat['produce_p50']:,} ms, p99 {lat['produce_p99']:,} ms (the SIEM record's "
                "Kafka timestamp, set by the worker's producer: free of this reader's delays)",
            )
        )
        rows.append(
            (
                "SIEM reader",
                f"max lag {s['reader']['max_lag']:,} records; seen {s['reader']['by_correlation']}",
            )
        )
        cl = s["client_latency_ms"] or {}
        rows.append(
            ("export calls", f"p50 {cl.get('p50')} ms, p99 {cl.get('p99')} ms (client side)")
        )
    else:
        rows.append(
            (
                "drain",
                f"{s['siem_records']:,} events in {s['drain_s']} s after ready; input consumed "
                f"at {s['drain_overall_per_s']:,.0f} events/s overall (start-up "
                f"{s['worker_start_s']} s, fill {s['preload_fill_s']} s)",
            )
        )
    rows += [
        (
            "counters",
            f"joined {c['joined']:,.0f}, log_only {c['log_only']:,.0f}, span_only "
            f"{c['span_only']:,.0f}, dead-lettered {c['dead_lettered']:,.0f}, redacted "
            f"{c['redacted']:,.0f}, waiting at end {c['pending_at_end']}",
        ),
        (
            "  records",
            f"{c['log_records']:,.0f} logs + {c['span_records']:,.0f} spans consumed; "
            f"{c['not_in_an_event']:,.0f} in no event (deduplicated, late or non-request; "
            f"derived: the worker does not export these counters)",
        ),
        (
            "expected",
            f"{e['events_lower']:,} events ({e['joined']:,} joined) from {e['requests']:,} "
            f"export calls, {e['failed_requests']} failed"
            + (f" (up to {e['events_upper']:,})" if e["events_upper"] != e["events_lower"] else ""),
        ),
        (
            "check",
            f"{s['siem_records']:,} SIEM records: "
            + ("OK" if s["check_ok"] else "MISMATCH")
            + ("" if s["drained"] else " (not drained)")
            + f"; joined {c['joined'] / max(e['joined'], 1):.2%} of expected",
        ),
        ("receiver CPU", f"{s['receiver_cpu_percent']}% of one core"),
        (
            "load generator CPU",
            f"{s['loader_cpu_percent']}%; this script {s['bench_cpu_percent']}%",
        ),
        ("Kafka broker CPU", f"{s['broker_cpu_percent']}% of one core"),
        ("machine busy", f"{s['machine_busy_percent']}% of {s['cores']} cores"),
        (
            "worker waited",
            f"{s['worker_runq_wait_percent']}% of the window runnable but without a core "
            "(summed over its threads; from /proc/<pid>/task/*/schedstat)",
        ),
    ]
    rows += [("  other process", f"{p:5.1f}%  {name}") for name, p in s["other_processes_percent"]]
    for name, value in rows:
        print(f"{name:<20} {value}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description="Receiver + worker on real Kafka: audit events/s, latency, memory, CPU."
    )
    ap.add_argument("--duration", type=float, default=60.0, help="measured seconds (60)")
    ap.add_argument("--warmup", type=float, default=10.0, help="seconds before measuring (10)")
    ap.add_argument("--rate", type=int, default=0, help="audit events/s to offer; 0 = max (0)")
    ap.add_argument("--span-delay", type=float, default=1.0, help="spans after logs, s (1)")
    ap.add_argument("--concurrency", type=int, default=4, help="export calls in flight (4)")
    ap.add_argument("--records-per-request", type=int, default=1000)
    ap.add_argument("--variety", type=int, default=8, help="distinct pre-built pairs (8)")
    ap.add_argument("--preload", action="store_true", help="fill the topics, then time the drain")
    ap.add_argument("--preload-events", type=int, default=600_000)
    ap.add_argument("--preload-concurrency", type=int, default=8)
    ap.add_argument("--drain-timeout", type=float, default=120.0, help="seconds (120)")
    ap.add_argument("--bootstrap", default="127.0.0.1:9092")
    ap.add_argument("--partitions", type=int, default=6)
    ap.add_argument("--siem-format", choices=["ocsf", "native"], default="ocsf")
    ap.add_argument(
        "--retention-policy",
        default=str(ROOT / "config" / "retention-policy.example.yaml"),
        help="worker policy file ('' for the built-in default)",
    )
    ap.add_argument("--join-window", type=float, help="worker join window, s (worker default 10)")
    ap.add_argument("--worker-env", action="append", default=[], metavar="NAME=VALUE")
    ap.add_argument("--no-pin", action="store_true")
    ap.add_argument(
        "--worker-core", type=int, choices=[0, 1], default=0, help="core for the worker (0)"
    )
    ap.add_argument("--timeout", type=float, default=30.0, help="per export call, s (30)")
    ap.add_argument("--sample-every", type=float, default=5.0, help="seconds between rows (5)")
    ap.add_argument("--target", type=int, default=20_000, help="events/s to compare against")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--keep-topics", action="store_true")
    ap.add_argument("--profile", metavar="FILE", help="run the worker under cProfile")
    ap.add_argument("--profile-top", type=int, default=30)
    ap.add_argument("--log-dir", default="/tmp")
    ap.add_argument("--json", metavar="FILE")
    args = ap.parse_args(argv)
    if any("=" not in kv for kv in args.worker_env):
        ap.error("--worker-env takes NAME=VALUE")
    _, status = Run(args).execute()
    return status


if __name__ == "__main__":
    sys.exit(main())
