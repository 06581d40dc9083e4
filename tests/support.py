"""Test helpers that run real processes and read real topics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from audit_stream.config import TopicSettings
from audit_stream.kafka.codec import decode_packed
from tests.conftest import ROOT, unique


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def topic_env(bootstrap: str, t: TopicSettings) -> dict[str, str]:
    return {
        "AUDIT_STREAM_KAFKA_BOOTSTRAP": bootstrap,
        "AUDIT_STREAM_TOPIC_SPANS": t.spans,
        "AUDIT_STREAM_TOPIC_LOGS": t.logs,
        "AUDIT_STREAM_TOPIC_EVENTS": t.events,
        "AUDIT_STREAM_TOPIC_SIEM": t.siem,
        "AUDIT_STREAM_TOPIC_DEADLETTER": t.deadletter,
        "AUDIT_STREAM_PARTITIONS": str(t.partitions),
    }


def base_env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUDIT_STREAM_")}
    env["PYTHONPATH"] = str(ROOT)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def cli(
    env: Mapping[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "audit_stream.cli", *args],
        env=base_env(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@dataclass
class Receiver:
    proc: subprocess.Popen[bytes]
    grpc: str
    http: str
    log: Path

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=5) as r:
            text = r.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name.removeprefix("audit_stream_")] = float(value)
        return out

    def terminate(self, timeout: float = 40) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)


def wait_http(url: str, timeout: float, want: int = 200) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == want:
                    return
        except Exception as exc:  # still starting
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} not {want} within {timeout}s: {last}")


@contextmanager
def run_receiver(
    env: Mapping[str, str], tmp: Path, wait_ready: bool = True, extra_args: tuple[str, ...] = ()
) -> Iterator[Receiver]:
    gport, hport = free_port(), free_port()
    log = tmp / f"receiver-{gport}.log"
    with open(log, "wb") as fh:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "audit_stream.cli",
                "receiver",
                "--grpc-listen",
                f"127.0.0.1:{gport}",
                "--http-listen",
                f"127.0.0.1:{hport}",
                *extra_args,
            ],
            env=base_env(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    rcv = Receiver(proc, f"127.0.0.1:{gport}", f"http://127.0.0.1:{hport}", log)
    try:
        if wait_ready:
            wait_http(f"{rcv.http}/healthz", 30)
        else:
            wait_http(f"{rcv.http}/livez", 30)
        yield rcv
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


@dataclass
class Consumed:
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, bytes]
    signal: str
    records: list[dict[str, Any]]


async def read_packed(
    bootstrap: str, topic: str, want_records: int, timeout: float = 20
) -> list[Consumed]:
    """Read packed messages from the start of ``topic`` until ``want_records`` records arrived."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=unique("reader"),
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Consumed] = []
    n = 0
    deadline = time.monotonic() + timeout
    try:
        while n < want_records and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for msgs in batch.values():
                for m in msgs:
                    signal_, records = decode_packed(m.value)
                    out.append(
                        Consumed(m.partition, m.offset, m.key, dict(m.headers), signal_, records)
                    )
                    n += len(records)
        # Anything extra (duplicates) would show up right after; give it a moment.
        extra = await consumer.getmany(timeout_ms=300)
        for msgs in extra.values():
            for m in msgs:
                signal_, records = decode_packed(m.value)
                out.append(
                    Consumed(m.partition, m.offset, m.key, dict(m.headers), signal_, records)
                )
    finally:
        await consumer.stop()
    return out


def records_of(consumed: list[Consumed]) -> list[dict[str, Any]]:
    return [r for c in consumed for r in c.records]
