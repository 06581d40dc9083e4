"""Micro-benchmark: OTLP logs request bytes -> MeshLog records -> JSON bytes, on one core.

Builds one ExportLogsServiceRequest of 1,000 records whose bodies are Istio default access-log
lines with varying values (methods, paths, status codes, flags, clusters, addresses, ids), like
the records Istio's ``envoyOtelAls`` provider sends, and a quarter of them carrying operator
labels. Then times ``parse_logs_request`` + ``decode_logs`` + ``orjson.dumps`` of every record,
which is the receiver's per-request work short of Kafka, and prints records per second (best of
several rounds, so noise from other processes counts less).

Usage: ``python bench/decode_micro.py [--records 1000] [--rounds 30] [--json]``
(``--json`` sends the same request as OTLP/JSON instead of protobuf.)
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import orjson
from google.protobuf import json_format
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from audit_stream.receiver.decode import decode_logs, parse_logs_request

_SERVICES = [
    ("reviews", "bookinfo"),
    ("ratings", "bookinfo"),
    ("httpbin", "foo"),
    ("orders", "shop"),
]
_METHODS = ["GET", "GET", "GET", "POST", "PUT", "DELETE"]
_CODES = [
    (200, "-", "via_upstream"),
    (201, "-", "via_upstream"),
    (404, "NR", "route_not_found"),
    (403, "-", "rbac_access_denied_matched_policy[none]"),
    (503, "UF", "upstream_reset_before_response_started{connection_failure}"),
]


def istio_line(rng: random.Random, i: int) -> tuple[str, bool]:
    svc, ns = rng.choice(_SERVICES)
    method = rng.choice(_METHODS)
    code, flags, details = rng.choice(_CODES)
    inbound = rng.random() < 0.5
    port = rng.choice((8000, 9080, 8080))
    cluster = f"inbound|{port}||" if inbound else f"outbound|{port}||{svc}.{ns}.svc.cluster.local"
    sni = f"outbound_.{port}_._.{svc}.{ns}.svc.cluster.local" if inbound else "-"
    ust = "-" if code >= 400 else str(rng.randint(0, 40))
    rid = f"{rng.getrandbits(32):08x}-{rng.getrandbits(16):04x}-{rng.getrandbits(16):04x}-{rng.getrandbits(16):04x}-{rng.getrandbits(48):012x}"  # noqa: E501
    ip = f"10.44.{rng.randint(0, 9)}.{rng.randint(2, 250)}"
    line = (
        f"[2025-04-21T07:{i % 60:02d}:{rng.randint(0, 59):02d}.{rng.randint(0, 999):03d}Z] "
        f'"{method} /api/v1/{svc}/{rng.randint(1, 99999)}?page={rng.randint(1, 9)} HTTP/1.1" '
        f'{code} {flags} {details} - "-" {rng.randint(0, 2000)} {rng.randint(0, 90000)} '
        f'{rng.randint(0, 900)} {ust} "-" "curl/8.{rng.randint(0, 11)}.1" "{rid}" "{svc}:{port}" '
        f'"{ip}:{port}" {cluster} {ip}:{rng.randint(30000, 60000)} 10.44.1.27:{port} '
        f"10.44.1.23:{rng.randint(30000, 60000)} {sni} default\n"
    )
    return line, inbound


def build_request(n: int, seed: int = 7) -> ExportLogsServiceRequest:
    rng = random.Random(seed)
    req = ExportLogsServiceRequest()
    rl = req.resource_logs.add()
    rl.resource.attributes.add(key="k8s.pod.name").value.string_value = "reviews-v1-7d9c6b5f4-abcde"
    rl.resource.attributes.add(key="k8s.namespace.name").value.string_value = "bookinfo"
    sl = rl.scope_logs.add()
    base = 1_745_220_839_000_000_000
    for i in range(n):
        rec = sl.log_records.add()
        rec.time_unix_nano = base + i * 1_000_000 + rng.randint(0, 999_999)
        rec.observed_time_unix_nano = rec.time_unix_nano + 5_000_000
        if rng.random() < 0.9:
            rec.trace_id = rng.randbytes(16)
            rec.span_id = rng.randbytes(8)
        line, _ = istio_line(rng, i)
        rec.body.string_value = line
        if i % 4 == 0:
            for key, value in (
                ("peer_principal", "spiffe://cluster.local/ns/bookinfo/sa/productpage"),
                ("namespace", "bookinfo"),
            ):
                rec.attributes.add(key=key).value.string_value = value
    return req


def run(records: int, rounds: int, as_json: bool) -> float:
    req = build_request(records)
    if as_json:
        payload = orjson.dumps(json_format.MessageToDict(req))
        ctype = "application/json"
    else:
        payload = req.SerializeToString()
        ctype = "application/x-protobuf"
    now = 1_745_220_900_000_000_000
    dumps = orjson.dumps
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        batch = decode_logs(parse_logs_request(payload, ctype), now)
        encoded = [dumps(r) for r in batch.records]
        best = min(best, time.perf_counter() - t0)
        assert len(encoded) == records and batch.rejected == 0
    return records / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--records", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--json", action="store_true", help="send OTLP/JSON instead of protobuf")
    args = ap.parse_args()
    rate = run(args.records, args.rounds, args.json)
    enc = "json" if args.json else "protobuf"
    print(f"decode_micro: {args.records} istio_text records ({enc}): {rate:,.0f} records/s")


if __name__ == "__main__":
    main()
