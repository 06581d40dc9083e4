"""Test helpers that run real processes and read real topics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from audit_stream.config import TopicSettings
from audit_stream.kafka.codec import decode_packed
from tests.conftest import ROOT, unique

# Every process a test starts, so the reaper fixture can make sure none outlives its test.
STARTED: list[subprocess.Popen[bytes]] = []


def reap() -> None:
    while STARTED:
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


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


def wait_http(url: str, timeout: float, want: int = 200, context: Any = None) -> None:
    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=context) as r:
                if r.status == want:
                    return
        except Exception as exc:  # still starting
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"{url} not {want} within {timeout}s: {last}")


@contextmanager
def run_receiver(
    env: Mapping[str, str],
    tmp: Path,
    wait_ready: bool = True,
    extra_args: tuple[str, ...] = (),
    scheme: str = "http",
    ca: str | None = None,
    client_cert: tuple[str, str] | None = None,
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
    STARTED.append(proc)
    host = "localhost" if scheme == "https" else "127.0.0.1"  # certificates name localhost
    rcv = Receiver(proc, f"127.0.0.1:{gport}", f"{scheme}://{host}:{hport}", log)
    context = None
    if scheme == "https":
        import ssl

        context = ssl.create_default_context(cafile=ca)
        if client_cert:
            context.load_cert_chain(*client_cert)
    try:
        wait_http(f"{rcv.http}/{'healthz' if wait_ready else 'livez'}", 30, context=context)
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


@dataclass
class Worker:
    proc: subprocess.Popen[bytes]
    web: str
    log: Path

    def stats(self) -> dict[str, Any]:
        import json

        with urllib.request.urlopen(f"{self.web}/audit/stats", timeout=5) as r:
            return dict(json.loads(r.read()))


def worker_env(env: Mapping[str, str], tmp: Path, **extra: str) -> dict[str, str]:
    app_id = unique("w")
    return {
        **env,
        "AUDIT_STREAM_APP_ID": app_id,
        "AUDIT_STREAM_DATA_DIR": str(tmp / app_id),
        "AUDIT_STREAM_WEB_PORT": str(free_port()),
        **extra,
    }


def start_worker(env: Mapping[str, str], tmp: Path, name: str = "worker") -> Worker:
    log = tmp / f"{name}.log"
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "audit_stream.cli", "worker", "-l", "info"],
            env=base_env(env),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    STARTED.append(proc)
    w = Worker(proc, f"http://127.0.0.1:{env['AUDIT_STREAM_WEB_PORT']}", log)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"worker exited {proc.returncode}:\n{log.read_text()[-3000:]}")
        # Ready means partitions are assigned and the agent is consuming.
        if b"Worker ready" in log.read_bytes():
            return w
        time.sleep(0.2)
    proc.kill()  # never leave a stray worker consuming CPU after a failed start
    proc.wait(10)
    raise AssertionError(f"worker not ready:\n{log.read_text()[-3000:]}")


async def read_messages(
    bootstrap: str,
    topic: str,
    want: int,
    timeout: float = 60,
    settle: float = 2.0,
    done: Callable[[list[Any]], bool] | None = None,
) -> list[Any]:
    """Raw messages from the start of ``topic``: until ``want`` arrived (or ``done`` says so),
    then ``settle`` more seconds so that extra (duplicate) messages would be seen too."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=unique("reader"),
        enable_auto_commit=False,
    )
    await consumer.start()
    out: list[Any] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if done(out) if done else len(out) >= want:
                break
            for msgs in (await consumer.getmany(timeout_ms=500)).values():
                out.extend(msgs)
        settle_until = time.monotonic() + settle
        while time.monotonic() < settle_until:
            for msgs in (await consumer.getmany(timeout_ms=300)).values():
                out.extend(msgs)
    finally:
        await consumer.stop()
    return out
