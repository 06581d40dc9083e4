"""Micro-benchmark of the join: add_log / add_span per second, pure Python, one partition.

Workload: N requests, each an access log and a request span with the same (trace id, span id),
shaped like Istio sidecar records (about 25 log fields, 12 span fields). Spans trail their logs
by ``--lag`` records, so that many logs wait at any time, as in a live stream; every pair joins
and builds a full audit event. A second run measures the correlator alone (a no-op event
builder), to separate join bookkeeping from event building.

Run: ``python bench/join_micro.py [--requests 200000] [--lag 500]``; prints ops/s.
"""

from __future__ import annotations

import argparse
import gc
import random
import time

from audit_stream.join.correlator import Correlator, JoinConfig
from audit_stream.join.event import build_event
from audit_stream.models.records import AuditEvent, Correlation, MeshLog, MeshSpan

_BASE_NS = 1_791_532_493_132_000_000


def make_pair(i: int, rng: random.Random) -> tuple[MeshLog, MeshSpan]:
    trace_id = f"{rng.getrandbits(128):032x}"
    span_id = f"{rng.getrandbits(64):016x}"
    start = _BASE_NS + i * 100_000  # 10k requests per second of stream time
    request_id = f"{rng.getrandbits(128):032x}"
    log: MeshLog = {
        "id": f"{rng.getrandbits(128):032x}",
        "time_unix_nano": start,
        "trace_id": trace_id,
        "span_id": span_id,
        "correlatable": True,
        "format": "istio_text",
        "fields": {
            "start_time": "2026-10-09T07:54:53.132Z",
            "method": "GET",
            "path": f"/reviews/{i % 100}",
            "protocol": "HTTP/1.1",
            "response_code": 200 if i % 10 else 403,
            "response_code_details": (
                "via_upstream" if i % 10 else "rbac_access_denied_matched_policy[none]"
            ),
            "bytes_received": 0,
            "bytes_sent": 295,
            "duration_ms": 3,
            "upstream_service_time_ms": 2,
            "user_agent": "curl/8.11.1",
            "request_id": request_id,
            "authority": "reviews:9080",
            "upstream_host": "10.244.0.10:9080",
            "upstream_cluster": "inbound|9080||",
            "upstream_local_address": "127.0.0.6:41854",
            "downstream_local_address": "10.244.0.10:9080",
            "downstream_remote_address": "10.244.0.11:37238",
            "requested_server_name": "outbound_.9080_._.reviews.bookinfo.svc.cluster.local",
            "route_name": "default",
            "source_principal": "spiffe://cluster.local/ns/bookinfo/sa/productpage",
        },
        "attributes": {},
        "resource": {},
    }
    span: MeshSpan = {
        "id": f"{rng.getrandbits(128):032x}",
        "trace_id": trace_id,
        "span_id": span_id,
        "parent_span_id": None,
        "name": "reviews.bookinfo.svc.cluster.local:9080/*",
        "kind": "server",
        "start_time_unix_nano": start,
        "end_time_unix_nano": start + 3_000_000,
        "status_code": "unset",
        "request": True,
        "fields": {
            "method": "GET",
            "path": f"/reviews/{i % 100}",
            "protocol": "HTTP/1.1",
            "response_code": 200,
            "request_id": request_id,
            "upstream_cluster": "inbound|9080||",
            "downstream_remote_address": "10.244.0.11",
            "destination_service": "reviews",
            "destination_namespace": "bookinfo",
        },
        "attributes": {"node_id": "sidecar~10.244.0.10~reviews-v1-abc.bookinfo~bookinfo.svc"},
        "resource": {"telemetry.sdk.name": "envoy"},
    }
    return log, span


def _no_event(log: MeshLog | None, span: MeshSpan | None, correlation: Correlation) -> AuditEvent:
    return None  # type: ignore[return-value]


def run(pairs: list[tuple[MeshLog, MeshSpan]], lag: int, build: bool) -> tuple[float, float]:
    """Feed all pairs through one correlator; return (wall, CPU) seconds."""
    requests = len(pairs)
    corr = Correlator(JoinConfig(), build=build_event if build else _no_event)
    add_log, add_span = corr.add_log, corr.add_span
    # The pre-built inputs stand for records that, live, arrive and leave with each message:
    # keep them out of the collector's generations so it does not rescan them.
    gc.collect()
    gc.freeze()
    began, began_cpu = time.perf_counter(), time.process_time()
    resolved = 0
    for i in range(requests + lag):
        if i < requests:
            resolved += len(add_log(pairs[i][0], i))
        if i >= lag:
            resolved += len(add_span(pairs[i - lag][1], i))
    elapsed, elapsed_cpu = time.perf_counter() - began, time.process_time() - began_cpu
    gc.unfreeze()
    if corr.counters.joined != requests or corr.pending_count or resolved != requests:
        raise AssertionError(f"join incomplete: {corr.counters}, {corr.pending_count} waiting")
    return elapsed, elapsed_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--lag", type=int, default=500)
    parser.add_argument("--repeat", type=int, default=3, help="runs per case; the best is shown")
    args = parser.parse_args()
    rng = random.Random(7)
    pairs = [make_pair(i, rng) for i in range(args.requests)]
    ops = 2 * args.requests
    print(f"{ops:,} adds ({args.requests:,} joined pairs, spans {args.lag} records behind)")
    for build, label in ((True, "join + build_event"), (False, "join only (no-op builder)")):
        runs = [run(pairs, args.lag, build) for _ in range(args.repeat)]
        wall = min(r[0] for r in runs)
        cpu = min(r[1] for r in runs)
        print(f"{label:26s} {ops / wall:>10,.0f} ops/s wall   {ops / cpu:>10,.0f} ops/s CPU")


if __name__ == "__main__":
    main()
