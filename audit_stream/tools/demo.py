"""``audit-stream demo``: the whole pipeline on one machine, with sample traffic and a summary.

Requirements
    * Creates the topics (idempotent), starts the receiver and the worker as child processes
      (:mod:`audit_stream.tools.procs`, logs in ``<run dir>/receiver.log`` and ``worker.log``)
      and waits until both are ready: the receiver's ``/healthz`` answers 200, the worker has its
      partitions ("Worker ready").
    * Plays mesh traffic through :func:`audit_stream.tools.generate.generate` (allowed calls, RBAC
      denials, end users, untraced calls, tokens in query strings) with a progress display: one
      updating line on a terminal, a line every few seconds otherwise.
    * Waits until the SIEM topic holds an event for every request the receiver acknowledged (or
      a timeout), then prints a summary counted *from the SIEM topic*: events, denials, retention
      classes, correlations, redactions, and whether any token that was sent is readable there.
    * Only this run's events count: the SIEM topic's end offsets are taken before the traffic and
      events are matched to the request ids this run sent, so a second run (same topics, same
      consumer group: the worker resumes where the last one stopped) reports only its own.
    * Ctrl-C at any point stops receiver then worker (SIGTERM, bounded wait) and leaves no process
      behind; Kafka is not the demo's and keeps running.

Children get the demo's environment plus the settings the demo resolved (flags included), so
they run exactly the configuration shown. Unless ``AUDIT_STREAM_JOIN_MAX_HOLD_SECONDS`` is set,
the demo's worker holds an unmatched half at most for the join window, so the last span-only
events of the run come out within seconds rather than after the 30 s default.

Example::

    $ audit-stream demo --requests 500 --duration 5
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import orjson
from aiokafka.errors import KafkaError

from audit_stream.config import Settings
from audit_stream.kafka.admin import create_topics
from audit_stream.tools.generate import GenerateConfig, GenerateReport, generate
from audit_stream.tools.procs import Child, DemoError, port_free, spawn, stop_all, wait_until
from audit_stream.tools.summary import Tally, format_summary, next_steps
from audit_stream.tools.tail import Start, end_offsets, read_topic
from audit_stream.topics import check_copartitioned, topic_specs
from audit_stream.traffic import Mix

__all__ = ["DemoOptions", "run_demo"]

_P = "AUDIT_STREAM_"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    requests: int = 2000
    duration: float = 20.0
    traffic: bool = True  # False: run the pipeline until Ctrl-C
    keep_running: bool = False
    seed: int | None = None
    run_dir: str = ".run/demo"
    as_json: bool = False  # the summary as JSON on stdout (everything else goes to stderr)
    wait_timeout: float | None = None  # for the last events; None: join hold + 30 s
    kafka_hint: str | None = None  # how to stop the broker, when the caller started it
    prog: str = "audit-stream"  # how the user invoked us, for the "next" hints
    mix: Mix = field(default_factory=Mix)
    # Used when no AUDIT_STREAM_RETENTION_POLICY is set, so the demo shows several classes.
    example_policy: str = "config/retention-policy.example.yaml"


def _connect_host(listen: str) -> tuple[str, int]:
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")
    return ("127.0.0.1" if host in ("0.0.0.0", "::", "") else host), int(port)  # noqa: S104


class _Display:
    """Progress: one rewritten line on a terminal, a plain line every few seconds otherwise."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()
        self._last = 0.0
        self._dirty = False

    def say(self, text: str) -> None:
        if self._dirty:
            self.stream.write("\r\x1b[K")
            self._dirty = False
        self.stream.write(text + "\n")
        self.stream.flush()

    def progress(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if self.tty:
            self.stream.write("\r\x1b[K" + text)
            self._dirty = True
            self.stream.flush()
        elif force or now - self._last >= 5.0:
            self._last = now
            self.say(text)


class _Demo:
    def __init__(
        self, settings: Settings, opts: DemoOptions, env: Mapping[str, str], show: _Display
    ) -> None:
        self.s, self.opts, self.show = settings, opts, show
        self.run_dir = Path(opts.run_dir)
        self.children: list[Child] = []  # in stop order
        self.code_on_stop = 130  # what Ctrl-C returns at this point of the run
        join = settings.worker.join
        self.hold = join.max_hold_seconds
        self.env = self._child_env(env)

    def _child_env(self, env: Mapping[str, str]) -> dict[str, str]:
        s, t = self.s, self.s.topics
        out = dict(env)
        out.update(
            {
                _P + "KAFKA_BOOTSTRAP": s.kafka.bootstrap,
                _P + "TOPIC_SPANS": t.spans,
                _P + "TOPIC_LOGS": t.logs,
                _P + "TOPIC_EVENTS": t.events,
                _P + "TOPIC_SIEM": t.siem,
                _P + "TOPIC_DEADLETTER": t.deadletter,
                _P + "PARTITIONS": str(t.partitions),
                _P + "REPLICATION_FACTOR": str(t.replication_factor),
                _P + "GRPC_LISTEN": s.receiver.grpc_listen,
                _P + "HTTP_LISTEN": s.receiver.http_listen,
                _P + "SIEM_FORMAT": s.worker.siem_format,
                _P + "APP_ID": s.worker.app_id,
                _P + "WEB_PORT": str(s.worker.web_port),
                "PYTHONUNBUFFERED": "1",
            }
        )
        if _P + "DATA_DIR" not in env:
            out[_P + "DATA_DIR"] = str(self.run_dir / "worker")
        self.policy = s.worker.retention_policy
        if self.policy is None and Path(self.opts.example_policy).is_file():
            self.policy = self.opts.example_policy
            out[_P + "RETENTION_POLICY"] = str(Path(self.policy).resolve())
        if _P + "JOIN_MAX_HOLD_SECONDS" not in env:
            self.hold = s.worker.join.window_seconds
            out[_P + "JOIN_MAX_HOLD_SECONDS"] = str(self.hold)
        return out

    # -- start-up ----------------------------------------------------------------------------

    async def create_topics(self) -> None:
        s = self.s
        try:
            results = await asyncio.wait_for(
                create_topics(s.kafka, topic_specs(s.topics)), s.kafka.request_timeout_ms / 1000
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise DemoError(
                f"cannot reach Kafka at {s.kafka.bootstrap} ({exc.__class__.__name__}: {exc}); "
                "start a local broker with `scripts/kafka-local start` (scripts/run-local does "
                "this), or point AUDIT_STREAM_KAFKA_BOOTSTRAP at yours"
            ) from None
        check_copartitioned({r.name: r.partitions for r in results}, s.topics)
        created = [r.name for r in results if r.created]
        self.show.say(
            f"topics    {', '.join(r.name for r in results)} "
            f"({f'created {len(created)}' if created else 'all existed'}; "
            f"{s.topics.partitions} partitions) on Kafka {s.kafka.bootstrap}"
        )

    def _check_ports(self) -> None:
        rs = self.s.receiver
        for what, listen, var in (
            ("OTLP/gRPC", rs.grpc_listen, "GRPC_LISTEN"),
            ("OTLP/HTTP", rs.http_listen, "HTTP_LISTEN"),
            ("worker web", f"127.0.0.1:{self.s.worker.web_port}", "WEB_PORT"),
        ):
            host, port = _connect_host(listen)
            if not port_free(host, port):
                raise DemoError(
                    f"port {port} ({what}) is in use - is another receiver or worker running? "
                    f"Stop it, or choose another with AUDIT_STREAM_{var}"
                )

    async def start_pipeline(self) -> None:
        self._check_ports()
        cli = [sys.executable, "-m", "audit_stream.cli"]
        worker = spawn(
            "worker", [*cli, "worker", "-l", "info"], self.env, self.run_dir / "worker.log"
        )
        self.children.append(worker)
        receiver = spawn("receiver", [*cli, "receiver"], self.env, self.run_dir / "receiver.log")
        self.children.insert(0, receiver)  # stopped first: it drains into Kafka
        host, port = _connect_host(self.s.receiver.http_listen)
        health = f"http://{host}:{port}/healthz"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as http:

            async def receiver_ready() -> bool:
                try:
                    async with http.get(health) as resp:
                        return resp.status == 200
                except (aiohttp.ClientError, OSError, TimeoutError):
                    return False

            async def worker_ready() -> bool:
                return worker.log_contains(b"Worker ready")

            self.show.progress("starting receiver and worker ...", force=True)
            await asyncio.gather(
                wait_until(receiver, receiver_ready, 60, "ready (GET /healthz)"),
                wait_until(worker, worker_ready, 120, "ready (no partitions assigned)"),
            )
        g_host, g_port = _connect_host(self.s.receiver.grpc_listen)
        self.show.say(
            f"receiver  OTLP/gRPC {g_host}:{g_port}, OTLP/HTTP {host}:{port}  (log {receiver.log})"
        )
        self.show.say(
            f"worker    app {self.s.worker.app_id}, SIEM format {self.s.worker.siem_format}, "
            f"retention policy {self.policy or 'built-in'}, "
            f"stats http://127.0.0.1:{self.s.worker.web_port}/audit/stats  (log {worker.log})"
        )

    async def watch(self) -> None:
        """Return as soon as a child exits; the caller turns that into an error."""
        while all(c.running for c in self.children):  # noqa: ASYNC110 - polls Popen, see procs
            await asyncio.sleep(0.5)

    def died(self) -> DemoError:
        dead = next(c for c in self.children if not c.running)
        return DemoError(
            f"the {dead.name} exited unexpectedly (code {dead.proc.returncode}); "
            f"last lines of {dead.log}:\n{dead.log_tail()}"
        )

    # -- traffic -----------------------------------------------------------------------------

    async def play(self) -> tuple[GenerateReport, Tally, float]:
        s, opts = self.s, self.opts
        snapshot = await end_offsets(s.kafka, s.topics.siem)
        tally = Tally()
        done_reading = asyncio.Event()

        async def read() -> None:
            async for msg in read_topic(
                s.kafka, s.topics.siem, Start.at_offsets(snapshot), done_reading
            ):
                tally.seen(msg.value, msg.views)

        reader = asyncio.create_task(read())
        host, port = _connect_host(s.receiver.grpc_listen)
        cfg = GenerateConfig(
            target=f"{host}:{port}",
            rate=opts.requests / opts.duration,
            requests=opts.requests,
            mix=opts.mix,
            seed=opts.seed,
            token=min(s.receiver.auth_tokens) if s.receiver.auth_tokens else None,
        )

        def progress(r: GenerateReport) -> None:
            self.show.progress(
                f"traffic   {r.requests}/{r.planned} requests sent, "
                f"{tally.audited_count()} audited so far"
            )

        self.show.say(
            f"traffic   {opts.requests} requests over ~{opts.duration:g}s to OTLP/gRPC {cfg.target}"
        )
        try:
            report = await generate(cfg, on_batch=tally.sent, progress=progress)
            self.show.say(
                f"traffic   sent {report.requests} requests in {report.elapsed_seconds:.1f}s "
                f"(seed {report.seed}; {report.log_records} access logs, {report.spans} spans)"
            )
            t0 = time.monotonic()
            timeout = opts.wait_timeout if opts.wait_timeout is not None else self.hold + 30
            while not tally.complete() and time.monotonic() - t0 < timeout:
                if reader.done():
                    reader.result()  # surfaces a consumer error
                    break
                self.show.progress(
                    f"waiting   {tally.audited_count()}/{len(tally.expected)} requests audited "
                    f"(unmatched halves wait up to {self.hold:g}s for their partner)"
                )
                await asyncio.sleep(0.25)
            waited = time.monotonic() - t0
            # Anything repeated right after the last event (a replay) would show up now.
            await asyncio.sleep(1.0)
        finally:
            done_reading.set()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        return report, tally, waited

    # -- shutdown ----------------------------------------------------------------------------

    async def stop(self) -> None:
        if any(c.running for c in self.children):
            self.show.say("stopping  receiver, then worker ...")
            await stop_all(self.children)
            self.show.say("stopped   receiver and worker")


async def _body(demo: _Demo, out: TextIO) -> int:
    opts = demo.opts
    await demo.create_topics()
    await demo.start_pipeline()
    hints = next_steps(demo.s, opts.prog, demo.run_dir)
    if not opts.traffic:
        demo.code_on_stop = 0
        g_host, g_port = _connect_host(demo.s.receiver.grpc_listen)
        demo.show.say(
            f"\nThe pipeline runs until Ctrl-C. Send traffic with:\n"
            f"  {hints.command} generate --target {g_host}:{g_port} --rate 100 --duration 30\n"
            + hints.text
        )
        await asyncio.Future()  # until Ctrl-C
    report, tally, waited = await demo.play()
    summary = tally.summary(report, waited)
    code = 0 if summary["complete"] and not summary["secrets_leaked"] else 1
    if opts.as_json:
        out.write(orjson.dumps(summary).decode() + "\n")
        out.flush()
    demo.show.say(format_summary(summary, demo.s.topics.siem, demo.s.worker.siem_format))
    demo.show.say(hints.text)
    if not opts.keep_running:
        demo.show.say("  (--keep-running keeps receiver and worker up after the summary)")
        return code
    demo.code_on_stop = code
    g_host, g_port = _connect_host(demo.s.receiver.grpc_listen)
    demo.show.say(
        f"\nThe pipeline keeps running (OTLP/gRPC {g_host}:{g_port}); more traffic: "
        f"{hints.command} generate --target {g_host}:{g_port}. Ctrl-C stops receiver and worker."
    )
    await asyncio.Future()
    return code  # not reached: Ctrl-C ends the run


async def run_demo(
    settings: Settings,
    opts: DemoOptions,
    env: Mapping[str, str],
    stop: asyncio.Event,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """Run the demo until done or ``stop``; returns the exit code (0: every request audited and
    no secret readable; 1: not; 130: interrupted before the summary)."""
    if opts.requests < 1 or opts.duration <= 0:
        raise DemoError("--requests must be >= 1 and --duration > 0")
    if settings.receiver.tls:
        raise DemoError(
            "the demo's traffic is plaintext OTLP/gRPC; unset AUDIT_STREAM_TLS_CERTFILE and "
            "AUDIT_STREAM_TLS_KEYFILE for the demo (`audit-stream generate --tls-ca` speaks TLS)"
        )
    if settings.worker.topic_per_class:
        raise DemoError(
            "the demo counts audit events on one SIEM topic; unset AUDIT_STREAM_TOPIC_PER_CLASS"
        )
    show = _Display(err if opts.as_json else out)
    demo = _Demo(settings, opts, env, show)
    body = asyncio.create_task(_body(demo, out))
    stopped = asyncio.create_task(stop.wait())
    watcher: asyncio.Task[None] | None = None
    try:
        pending: set[asyncio.Future[Any]] = {body, stopped}
        while True:
            if watcher is None and demo.children:
                watcher = asyncio.create_task(demo.watch())
                pending.add(watcher)
            done, pending = await asyncio.wait(
                pending, timeout=0.5, return_when=asyncio.FIRST_COMPLETED
            )
            if body in done:
                return body.result()
            if stopped in done:
                if demo.code_on_stop == 130:
                    show.say("interrupted")
                return demo.code_on_stop
            if watcher is not None and watcher in done:
                raise demo.died()
    finally:
        for task in (body, stopped, watcher):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await demo.stop()
        if opts.kafka_hint:
            show.say(f"Kafka keeps running; stop it with: {opts.kafka_hint}")
