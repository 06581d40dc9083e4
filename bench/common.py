"""Helpers shared by the benchmarks: mesh-shaped OTLP payloads, /proc sampling, local Kafka.

Payloads
    :func:`istio_logs_request` builds an ``ExportLogsServiceRequest`` shaped like what Istio's
    ``envoyOtelAls`` provider sends through an OpenTelemetry collector: text bodies in Istio's
    default access-log format with varying methods, paths, codes, flags, request ids and
    addresses; random trace/span ids, about 10% of records without them (tracing off or not
    sampled); records of several pods per request (resource attributes as a collector's k8s
    processor adds them) and, on half the pods, ``logFormat.labels`` as string attributes
    (``peer_principal`` ...). :func:`envoy_spans_request` builds Envoy sidecar spans (all tag
    values strings, as Envoy's tracer sends them). Times are "now", so the receiver's time checks
    pass.

Process sampling (Linux ``/proc``)
    :class:`ProcSample` reads a process's CPU time (``utime + stime`` of all threads, from
    ``/proc/<pid>/stat``), page faults (``minflt + majflt``: on a VM a fault can cost several
    microseconds, so memory that is returned to the kernel and touched again is CPU time), RSS
    and peak RSS (``VmRSS`` / ``VmHWM``); :func:`thread_cpu` splits
    CPU time by thread name, which shows whether time goes to the Python thread or to the gRPC
    core's own threads.

Example::

    >>> req = istio_logs_request(1000, random.Random(1), time.time_ns())   # doctest: +SKIP
    >>> before = ProcSample.read(pid); ...; after = ProcSample.read(pid)    # doctest: +SKIP
    >>> after.cpu_seconds - before.cpu_seconds                              # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pstats
import random
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Span

ROOT = Path(__file__).resolve().parents[1]
_TICKS = os.sysconf("SC_CLK_TCK")

__all__ = [
    "ROOT",
    "ProcSample",
    "broker_pid",
    "count_on_topic",
    "delete_topics",
    "ensure_kafka",
    "envoy_spans_request",
    "free_port",
    "istio_line",
    "istio_logs_request",
    "machine_busy_seconds",
    "percentile",
    "port_open",
    "print_profile",
    "scrape_metrics",
    "thread_cpu",
    "topic_env",
    "wait_ready",
]

# ---------------------------------------------------------------------------------------------
# payloads

_SERVICES = [
    ("productpage", "bookinfo", 9080),
    ("reviews", "bookinfo", 9080),
    ("ratings", "bookinfo", 9080),
    ("details", "bookinfo", 9080),
    ("httpbin", "foo", 8000),
    ("orders", "shop", 8080),
    ("payments", "shop", 8443),
    ("catalog", "shop", 8080),
]
_METHODS = ["GET"] * 12 + ["POST"] * 4 + ["PUT", "DELETE", "PATCH", "HEAD"]
_PATHS = [
    "/api/v1/{svc}/{n}",
    "/api/v1/{svc}/{n}/items?page={p}&limit=50",
    "/{svc}/{n}",
    "/healthz/ready",
    "/v2/{svc}/search?q=item{n}&sort=price",
    "/api/v1/{svc}/{n}?token=tok{n}x{p}",  # a secret in the query: what redaction is for
    "/static/js/app.{n}.js",
]
# (code, flags, details, weight): mostly 2xx, some denials and upstream failures
_CODES = [
    (200, "-", "via_upstream", 70),
    (201, "-", "via_upstream", 6),
    (204, "-", "via_upstream", 3),
    (302, "-", "via_upstream", 2),
    (401, "-", "via_upstream", 3),
    (403, "-", "rbac_access_denied_matched_policy[none]", 3),
    (404, "NR", "route_not_found", 4),
    (429, "RL", "request_rate_limited", 1),
    (500, "-", "via_upstream", 2),
    (503, "UF", "upstream_reset_before_response_started{connection_failure}", 3),
    (504, "UT", "response_timeout", 1),
    (0, "DC", "downstream_remote_disconnect", 2),
]
_CODE_WEIGHTS = [c[3] for c in _CODES]
_AGENTS = [
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36",
    "Go-http-client/1.1",
    "python-requests/2.32.3",
    "okhttp/4.12.0",
]


def _uuid(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _ip(rng: random.Random) -> str:
    return f"10.{rng.randint(40, 47)}.{rng.randint(0, 31)}.{rng.randint(2, 250)}"


def istio_line(rng: random.Random, start_ns: int) -> str:
    """One line in Istio's default access-log format (with the trailing newline Envoy writes)."""
    svc, ns, port = rng.choice(_SERVICES)
    method = rng.choice(_METHODS)
    code, flags, details, _ = rng.choices(_CODES, _CODE_WEIGHTS)[0]
    n, p = rng.randint(1, 99_999), rng.randint(1, 9)
    path = rng.choice(_PATHS).format(svc=svc, n=n, p=p)
    inbound = rng.random() < 0.5
    fqdn = f"{svc}.{ns}.svc.cluster.local"
    cluster = f"inbound|{port}||" if inbound else f"outbound|{port}||{fqdn}"
    sni = f"outbound_.{port}_._.{fqdn}" if inbound else "-"
    upstream_time = "-" if code == 0 or code >= 500 else str(rng.randint(0, 60))
    secs, ms = divmod(start_ns // 1_000_000, 1000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{ms:03d}Z"
    pod_ip, peer_ip, upstream_ip = _ip(rng), _ip(rng), _ip(rng)
    xff = "-" if rng.random() < 0.7 else f"203.0.113.{rng.randint(1, 254)}"
    fail = '"-"' if flags != "UF" else '"delayed connect error: 111"'
    return (
        f'[{stamp}] "{method} {path} HTTP/1.1" {code} {flags} {details} - {fail} '
        f"{rng.randint(0, 4000) if method != 'GET' else 0} {rng.randint(0, 90_000)} "
        f'{rng.randint(0, 900)} {upstream_time} "{xff}" "{rng.choice(_AGENTS)}" "{_uuid(rng)}" '
        f'"{svc}.{ns}:{port}" "{upstream_ip}:{port}" {cluster} {pod_ip}:{rng.randint(30000, 60999)} '
        f"{pod_ip}:{port} {peer_ip}:{rng.randint(30000, 60999)} {sni} default\n"
    )


def _pod(rng: random.Random, i: int) -> tuple[str, str, str]:
    svc, ns, _ = _SERVICES[i % len(_SERVICES)]
    suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    return svc, ns, f"{svc}-v{1 + i % 3}-7d9c6b5f4-{suffix}"


def istio_logs_request(
    n: int,
    rng: random.Random,
    now_ns: int,
    pods: int = 4,
    untraced: float = 0.1,
) -> ExportLogsServiceRequest:
    """``n`` access-log records from ``pods`` sidecars (see the module docstring)."""
    req = ExportLogsServiceRequest()
    per_pod = [n // pods + (1 if i < n % pods else 0) for i in range(pods)]
    for i, count in enumerate(per_pod):
        svc, ns, pod = _pod(rng, i)
        rl = req.resource_logs.add()
        for key, value in (
            ("k8s.namespace.name", ns),
            ("k8s.pod.name", pod),
            ("service.name", f"{svc}.{ns}"),
            ("cluster_name", "Kubernetes"),
        ):
            rl.resource.attributes.add(key=key).value.string_value = value
        sl = rl.scope_logs.add()
        labelled = i % 2 == 0
        for _ in range(count):
            start = now_ns - rng.randint(0, 2_000_000_000)
            rec = sl.log_records.add()
            rec.time_unix_nano = start
            rec.observed_time_unix_nano = start + rng.randint(1_000_000, 900_000_000)
            if rng.random() >= untraced:
                rec.trace_id = rng.randbytes(16)
                rec.span_id = rng.randbytes(8)
            rec.body.string_value = istio_line(rng, start)
            if labelled:
                caller, cns, _ = rng.choice(_SERVICES)
                for key, value in (
                    ("peer_principal", f"spiffe://cluster.local/ns/{cns}/sa/{caller}"),
                    ("source_workload", f"{caller}-v1"),
                    ("destination_workload", f"{svc}-v1"),
                ):
                    rec.attributes.add(key=key).value.string_value = value
    return req


def envoy_spans_request(
    n: int, rng: random.Random, now_ns: int, pods: int = 4
) -> ExportTraceServiceRequest:
    """``n`` Envoy sidecar spans (SERVER and CLIENT, string-valued tags) from ``pods`` sidecars."""
    req = ExportTraceServiceRequest()
    per_pod = [n // pods + (1 if i < n % pods else 0) for i in range(pods)]
    for i, count in enumerate(per_pod):
        svc, ns, pod = _pod(rng, i)
        rs = req.resource_spans.add()
        for key, value in (
            ("telemetry.sdk.language", "cpp"),
            ("telemetry.sdk.name", "envoy"),
            ("k8s.pod.ip", _ip(rng)),
            ("service.name", f"{svc}.{ns}"),
        ):
            rs.resource.attributes.add(key=key).value.string_value = value
        ss = rs.scope_spans.add()
        ss.scope.name = "envoy"
        node = f"sidecar~{_ip(rng)}~{pod}.{ns}~{ns}.svc.cluster.local"
        for _ in range(count):
            peer, pns, pport = rng.choice(_SERVICES)
            server = rng.random() < 0.5
            method = rng.choice(_METHODS)
            code = rng.choices(_CODES, _CODE_WEIGHTS)[0]
            path = rng.choice(_PATHS).format(svc=peer, n=rng.randint(1, 99_999), p=1)
            start = now_ns - rng.randint(0, 2_000_000_000)
            sp = ss.spans.add()
            sp.trace_id = rng.randbytes(16)
            sp.span_id = rng.randbytes(8)
            sp.parent_span_id = rng.randbytes(8)
            sp.name = f"{peer}.{pns}.svc.cluster.local:{pport}{path.split('?')[0]}"
            sp.kind = Span.SPAN_KIND_SERVER if server else Span.SPAN_KIND_CLIENT
            sp.start_time_unix_nano = start
            sp.end_time_unix_nano = start + rng.randint(200_000, 900_000_000)
            if code[0] == 0 or code[0] >= 500:
                sp.status.code = 2
            cluster = (
                f"inbound|{pport}||"
                if server
                else f"outbound|{pport}||{peer}.{pns}.svc.cluster.local"
            )
            tags = [
                ("node_id", node),
                ("zone", "us-east1-b"),
                ("guid:x-request-id", _uuid(rng)),
                ("http.url", f"http://{peer}.{pns}:{pport}{path}"),
                ("http.method", method),
                ("downstream_cluster", "-"),
                ("user_agent", rng.choice(_AGENTS)),
                ("http.protocol", "HTTP/1.1"),
                ("peer.address", _ip(rng)),
                ("request_size", str(rng.randint(0, 4000))),
                ("response_size", str(rng.randint(0, 90_000))),
                ("component", "proxy"),
                ("upstream_cluster", cluster),
                ("upstream_cluster.name", cluster),
                ("http.status_code", str(code[0])),
                ("response_flags", code[1]),
                ("istio.canonical_service", svc),
                ("istio.canonical_revision", "v1"),
                ("istio.mesh_id", "cluster.local"),
                ("istio.namespace", ns),
                ("istio.cluster_id", "Kubernetes"),
            ]
            for key, value in tags:
                sp.attributes.add(key=key).value.string_value = value
    return req


# ---------------------------------------------------------------------------------------------
# /proc sampling


@dataclass(frozen=True, slots=True)
class ProcSample:
    """CPU and memory of one process at one instant."""

    at: float  # time.monotonic()
    cpu_seconds: float  # utime + stime, all threads
    page_faults: int  # minflt + majflt, all threads
    rss_bytes: int
    peak_rss_bytes: int  # VmHWM: the high-water mark since the process started

    @classmethod
    def read(cls, pid: int) -> ProcSample:
        at = time.monotonic()
        with open(f"/proc/{pid}/stat", "rb") as fh:
            stat = fh.read()
        # comm (field 2) may contain spaces and parentheses: split after its closing paren.
        rest = stat[stat.rindex(b")") + 2 :].split()
        cpu = (int(rest[11]) + int(rest[12])) / _TICKS  # fields 14, 15: utime, stime
        faults = int(rest[7]) + int(rest[9])  # fields 10, 12: minflt, majflt
        rss = hwm = 0
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    rss = int(line.split()[1]) * 1024
                elif line.startswith(b"VmHWM:"):
                    hwm = int(line.split()[1]) * 1024
        return cls(at, cpu, faults, rss, hwm)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds per thread name (threads of one name summed), e.g. ``{"python": 12.1, ...}``."""
    out: dict[str, float] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat", "rb") as fh:
                stat = fh.read()
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        name = stat[stat.index(b"(") + 1 : stat.rindex(b")")].decode(errors="replace")
        rest = stat[stat.rindex(b")") + 2 :].split()
        out[name] = out.get(name, 0.0) + (int(rest[11]) + int(rest[12])) / _TICKS
    return out


def machine_busy_seconds() -> float:
    """Busy CPU seconds of the whole machine (all cores) since boot, from ``/proc/stat``."""
    with open("/proc/stat", "rb") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / _TICKS


# ---------------------------------------------------------------------------------------------
# misc


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile (``q`` in 0..100) of an ascending list; NaN when it is empty."""
    if not sorted_values:
        return float("nan")
    k = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[k]


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def ensure_kafka(bootstrap: str) -> str:
    """Make sure a broker answers on ``bootstrap`` (first server); start ``scripts/kafka-local``
    on that port when nothing listens and the host is loopback. Returns what was done."""
    host, _, port = bootstrap.split(",")[0].strip().rpartition(":")
    if port_open(host, int(port)):
        return f"Kafka already listening on {host}:{port}"
    if host not in ("127.0.0.1", "localhost", "::1", "[::1]"):
        raise SystemExit(f"nothing listens on {bootstrap} and it is not local: start Kafka first")
    done = subprocess.run(
        [str(ROOT / "scripts" / "kafka-local"), "start", "--port", port],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"scripts/kafka-local start failed:\n{done.stdout}{done.stderr}")
    return done.stdout.strip()


# ---------------------------------------------------------------------------------------------
# Kafka, the receiver process, profiles


def topic_env(bootstrap: str, prefix: str, partitions: int) -> dict[str, str]:
    """This process's environment for an ``audit-stream`` child: no inherited ``AUDIT_STREAM_*``,
    every topic named ``<prefix>.<default name>``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_STREAM_")}
    env.update(
        {
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "AUDIT_STREAM_KAFKA_BOOTSTRAP": bootstrap,
            "AUDIT_STREAM_TOPIC_LOGS": f"{prefix}.mesh.logs",
            "AUDIT_STREAM_TOPIC_SPANS": f"{prefix}.mesh.spans",
            "AUDIT_STREAM_TOPIC_EVENTS": f"{prefix}.audit.events",
            "AUDIT_STREAM_TOPIC_SIEM": f"{prefix}.audit.siem",
            "AUDIT_STREAM_TOPIC_DEADLETTER": f"{prefix}.audit.deadletter",
            "AUDIT_STREAM_PARTITIONS": str(partitions),
        }
    )
    return env


async def count_on_topic(bootstrap: str, topic: str, deadline_s: float) -> tuple[int, int]:
    """(messages, records) on ``topic``: every message's ``records`` header summed."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.seek_to_beginning(*parts)
        messages = records = 0
        remaining = {tp for tp in parts if ends[tp] > 0}
        stop_at = time.monotonic() + deadline_s
        while remaining:
            if time.monotonic() > stop_at:
                raise TimeoutError(f"reading {topic} took longer than {deadline_s:g}s")
            batch = await consumer.getmany(*remaining, timeout_ms=1000, max_records=10_000)
            for tp, msgs in batch.items():
                for m in msgs:
                    if m.offset >= ends[tp]:
                        continue
                    messages += 1
                    records += int(dict(m.headers or ())["records"])
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return messages, records
    finally:
        await consumer.stop()


async def _partitions(consumer: Any, topic: str) -> set[int]:
    for _ in range(50):
        parts = consumer.partitions_for_topic(topic)
        if parts:
            return set(parts)
        await consumer._client.force_metadata_update()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


async def delete_topics(bootstrap: str, names: list[str]) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics(names, timeout_ms=30_000)
    finally:
        await admin.close()


def broker_pid(bootstrap: str) -> int | None:
    """The pid of a broker started by ``scripts/kafka-local`` on this port, if there is one."""
    port = bootstrap.split(",")[0].rpartition(":")[2]
    pidfile = ROOT / ".run" / f"kafka-{port}" / "kafka.pid"
    with contextlib.suppress(OSError, ValueError):
        pid = int(pidfile.read_text().strip())
        if b"kafka.Kafka" in Path(f"/proc/{pid}/cmdline").read_bytes():
            return pid
    return None


def scrape_metrics(http: str) -> dict[str, float]:
    """The receiver's Prometheus text as ``{name{labels}: value}``, ``audit_stream_`` removed."""
    with urllib.request.urlopen(f"{http}/metrics", timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name.removeprefix("audit_stream_")] = float(value)
    return out


def wait_ready(http: str, proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Until ``/healthz`` answers 200 (Kafka reachable); exits if ``proc`` dies meanwhile."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"receiver exited with {proc.returncode} while starting")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(f"{http}/healthz", timeout=2) as r,
        ):
            if r.status == 200:
                return
        time.sleep(0.1)
    raise SystemExit(f"receiver not ready within {timeout:g}s")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def print_profile(path: str, top: int) -> None:
    """Top ``top`` functions of a cProfile dump by own and by cumulative time. cProfile measures
    wall time: ``select.epoll.poll`` is the event loop waiting, not CPU."""
    stats = pstats.Stats(path)
    total = stats.total_tt  # type: ignore[attr-defined]
    print(f"\nprofile {path}: {total:.2f} s in profiled Python calls (main thread)")
    for key, title in (("tottime", "own time"), ("cumulative", "cumulative")):
        print(f"-- top {top} by {title} --")
        entries = sorted(
            stats.stats.items(),  # type: ignore[attr-defined]
            key=lambda kv: kv[1][2] if key == "tottime" else kv[1][3],
            reverse=True,
        )[:top]
        for (file, line, func), (_cc, nc, tt, ct, _callers) in entries:
            where = f"{Path(file).name}:{line}" if line else file
            print(
                f"  {100 * tt / total:5.1f}% own {100 * ct / total:5.1f}% cum "
                f"{nc:>9} calls  {func}  ({where})"
            )


def rejected_records(signal_name: str, body: bytes) -> int:
    """Records an OTLP export response reports as rejected (partial_success)."""
    if not body:  # an empty response: no partial_success
        return 0
    if signal_name == "logs":
        from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
            ExportLogsServiceResponse,
        )

        return int(ExportLogsServiceResponse.FromString(body).partial_success.rejected_log_records)
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceResponse,
    )

    return int(ExportTraceServiceResponse.FromString(body).partial_success.rejected_spans)


def build_name(native_modules: float | None) -> str:
    """The ``native_modules`` gauge of a receiver or worker as words."""
    if native_modules is None:
        return "unknown (no native_modules gauge)"
    n = int(native_modules)
    return f"compiled ({n} modules, scripts/build-native)" if n else "pure Python"
