"""``audit-stream generate``: realistic Istio-shaped mesh traffic over OTLP/gRPC, paced and bounded.

Requirements
    * Sends ``requests`` mesh requests (:func:`audit_stream.traffic.make_requests`: allowed calls,
      RBAC denials, end users, untraced calls, tokens in query strings, span-only calls, in the
      shares of a :class:`~audit_stream.traffic.Mix`) at about ``rate`` per second, as the callee's
      sidecar would: one ``LogsService/Export`` and one ``TraceService/Export`` per batch.
    * Bounded: at most ``max_inflight`` batches in flight, each call has a deadline, and the run
      ends at ``2 x duration + 10 s`` even if the receiver is slow (the report says what was sent).
    * Retries what OTLP calls retryable (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``, and
      ``RESOURCE_EXHAUSTED`` when the server sent ``RetryInfo``; without it, it is permanent),
      honouring RetryInfo's delay, else backing off exponentially, ``retries`` times. Retrying is
      safe: the receiver derives record ids from content, so a repeated record is not audited twice.
    * Counts everything a user checks against the SIEM topic: requests, records per signal,
      accepted, rejected (``partial_success``), failed calls by status code, and the kinds of
      requests (denials, untraced, with a user, with a secret, span-only).

How it works: a scheduler starts batch *i* at ``t0 + i * batch / rate`` once a slot is free; each
batch serializes its two export requests once and sends them concurrently on one grpc.aio channel
with raw (pre-serialized) bytes.

Example::

    >>> cfg = GenerateConfig(target="127.0.0.1:4317", rate=100, requests=2000)
    >>> report = await generate(cfg)  # doctest: +SKIP
    >>> print(format_report(report))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import TextIO

import grpc
import orjson
from google.protobuf.message import DecodeError
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from audit_stream.errors import ConfigError
from audit_stream.traffic import MeshRequest, Mix, logs_request, make_requests, spans_request

__all__ = [
    "LOGS_METHOD",
    "TRACES_METHOD",
    "GenerateConfig",
    "GenerateReport",
    "format_report",
    "generate",
    "parse_mix",
    "retry_delay",
    "run_generate",
]

LOGS_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
TRACES_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
_BACKOFF_BASE = 0.25  # seconds; doubled per attempt, capped below
_BACKOFF_MAX = 5.0

BatchCallback = Callable[[Sequence[MeshRequest], bool, bool], None]


@dataclass(frozen=True, slots=True)
class GenerateConfig:
    """What to send where. ``batch`` 0 picks about a tenth of a second's worth per export."""

    target: str
    rate: float = 100.0  # requests per second
    requests: int = 1000
    batch: int = 0
    mix: Mix = field(default_factory=Mix)
    seed: int | None = None  # None: a fresh random seed (reported, so a run can be repeated)
    token: str | None = None  # sent as "authorization: Bearer <token>"
    tls: bool = False
    tls_ca: str | None = None  # PEM file with the CA that signed the receiver's certificate
    max_inflight: int = 8
    retries: int = 4
    call_timeout: float = 10.0

    def __post_init__(self) -> None:
        if not self.rate > 0:
            raise ConfigError(f"--rate must be positive, got {self.rate}")
        if self.requests < 0:
            raise ConfigError(f"the number of requests must be >= 0, got {self.requests}")
        if self.batch < 0 or self.max_inflight < 1 or self.retries < 0:
            raise ConfigError("--batch must be >= 0, max in-flight >= 1, retries >= 0")

    @property
    def batch_size(self) -> int:
        return self.batch or max(1, min(200, round(self.rate / 10)))

    @property
    def duration(self) -> float:
        return self.requests / self.rate


@dataclass(slots=True)
class GenerateReport:
    """What was sent and how the receiver answered. Record counts are per signal."""

    target: str
    seed: int
    planned: int
    requests: int = 0  # mesh requests sent (each is a log, a span, or both)
    exports: int = 0  # export calls made (two per batch, fewer when a batch has no logs/spans)
    log_records: int = 0
    spans: int = 0
    accepted_log_records: int = 0
    accepted_spans: int = 0
    rejected_log_records: int = 0  # partial_success.rejected_*: the receiver refused them
    rejected_spans: int = 0
    failed_log_records: int = 0  # in calls that failed after all retries
    failed_spans: int = 0
    failed_calls: dict[str, int] = field(default_factory=dict)  # gRPC status name -> calls
    retries: int = 0
    denials: int = 0
    untraced: int = 0
    with_user: int = 0  # an end user in the access log (a span does not carry it)
    with_secrets: int = 0
    span_only: int = 0
    elapsed_seconds: float = 0.0
    interrupted: bool = False  # stopped early (Ctrl-C or the run's time bound)

    @property
    def ok(self) -> bool:
        """Everything sent was accepted."""
        return not self.failed_calls and not self.rejected_log_records and not self.rejected_spans

    def as_dict(self) -> dict[str, object]:
        out = asdict(self)
        out["ok"] = self.ok
        out["elapsed_seconds"] = round(self.elapsed_seconds, 3)
        return out


def parse_mix(text: str | None) -> Mix:
    """``"denied=0.2,no_trace=0"`` -> a :class:`Mix` with those shares (others keep defaults)."""
    if not text:
        return Mix()
    names = {f.name for f in fields(Mix)}
    values: dict[str, float] = {}
    for part in text.split(","):
        key, sep, raw = part.partition("=")
        key = key.strip().replace("-", "_")
        if not sep or key not in names:
            raise ConfigError(
                f"--mix: expected NAME=SHARE with NAME in {sorted(names)}, got {part!r}"
            )
        try:
            share = float(raw)
        except ValueError:
            raise ConfigError(f"--mix: {key} needs a number between 0 and 1, got {raw!r}") from None
        if not 0.0 <= share <= 1.0:
            raise ConfigError(f"--mix: {key} needs a number between 0 and 1, got {raw!r}")
        values[key] = share
    return Mix(**values)


def retry_delay(code: grpc.StatusCode, server_delay: float | None, attempt: int) -> float | None:
    """Seconds to wait before retry ``attempt`` (1-based), or ``None`` when ``code`` is final.

    ``server_delay`` is RetryInfo's delay when the server sent one; RESOURCE_EXHAUSTED without it
    means the payload can never fit (OTLP spec), so it is not retried.
    """
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED and server_delay is None:
        return None
    if code not in (
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
    ):
        return None
    if server_delay is not None:
        return min(server_delay, _BACKOFF_MAX)
    return min(_BACKOFF_BASE * (1 << min(max(attempt - 1, 0), 16)), _BACKOFF_MAX)


def _server_delay(exc: grpc.aio.AioRpcError) -> float | None:
    for key, value in exc.trailing_metadata() or ():
        if key != "grpc-status-details-bin" or not isinstance(value, bytes):
            continue
        try:
            status = status_pb2.Status.FromString(value)
        except DecodeError:
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.seconds + info.retry_delay.nanos / 1e9)
    return None


def _count_kinds(report: GenerateReport, reqs: Sequence[MeshRequest]) -> None:
    for r in reqs:
        report.denials += r.denied
        report.untraced += not r.trace_id
        report.with_user += r.user is not None and r.log  # only the access log names the user
        report.with_secrets += "access_token=" in r.path
        report.span_only += not r.log


class _Sender:
    """One channel; sends one export with retries and books the outcome into the report."""

    def __init__(self, cfg: GenerateConfig, report: GenerateReport, rng: random.Random) -> None:
        self._cfg, self._report, self._rng = cfg, report, rng
        if cfg.tls or cfg.tls_ca:
            ca = None
            if cfg.tls_ca:
                with open(cfg.tls_ca, "rb") as fh:
                    ca = fh.read()
            self.channel = grpc.aio.secure_channel(
                cfg.target, grpc.ssl_channel_credentials(root_certificates=ca)
            )
        else:
            self.channel = grpc.aio.insecure_channel(cfg.target)
        self._metadata = (("authorization", f"Bearer {cfg.token}"),) if cfg.token else None
        self._logs = self.channel.unary_unary(LOGS_METHOD)
        self._traces = self.channel.unary_unary(TRACES_METHOD)

    async def export(self, logs: bool, body: bytes, count: int) -> bool:
        """Send one export; True when the receiver answered OK (possibly with rejections)."""
        report = self._report
        report.exports += 1
        call = self._logs if logs else self._traces
        attempt = 0
        while True:
            try:
                raw = await call(body, timeout=self._cfg.call_timeout, metadata=self._metadata)
            except grpc.aio.AioRpcError as exc:
                attempt += 1
                delay = retry_delay(exc.code(), _server_delay(exc), attempt)
                if delay is None or attempt > self._cfg.retries:
                    name = exc.code().name
                    report.failed_calls[name] = report.failed_calls.get(name, 0) + 1
                    if logs:
                        report.failed_log_records += count
                    else:
                        report.failed_spans += count
                    return False
                report.retries += 1
                await asyncio.sleep(delay * (0.8 + 0.4 * self._rng.random()))  # jitter
                continue
            break
        if logs:
            rejected = ExportLogsServiceResponse.FromString(
                raw
            ).partial_success.rejected_log_records
            report.rejected_log_records += rejected
            report.accepted_log_records += count - rejected
        else:
            rejected = ExportTraceServiceResponse.FromString(raw).partial_success.rejected_spans
            report.rejected_spans += rejected
            report.accepted_spans += count - rejected
        return True


async def _send_batch(
    sender: _Sender, reqs: Sequence[MeshRequest], on_batch: BatchCallback | None
) -> None:
    n_logs = sum(r.log for r in reqs)
    n_spans = sum(1 for r in reqs if r.trace_id)
    calls = []
    if n_logs:
        calls.append(sender.export(True, logs_request(reqs).SerializeToString(), n_logs))
    if n_spans:
        calls.append(sender.export(False, spans_request(reqs).SerializeToString(), n_spans))
    results = await asyncio.gather(*calls)
    logs_ok = bool(n_logs) and results[0]
    spans_ok = bool(n_spans) and results[-1]
    if on_batch is not None:
        on_batch(reqs, logs_ok, spans_ok)


async def _sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep; True when ``stop`` was set meanwhile."""
    if seconds <= 0:
        return stop.is_set()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
    return stop.is_set()


async def generate(
    cfg: GenerateConfig,
    stop: asyncio.Event | None = None,
    on_batch: BatchCallback | None = None,
    progress: Callable[[GenerateReport], None] | None = None,
) -> GenerateReport:
    """Send the traffic of ``cfg``; returns when every call finished (or the time bound hit).

    ``on_batch(requests, logs_ok, spans_ok)`` runs after each batch's calls finished (a half is
    ``ok`` when the receiver acknowledged it, so its records are in Kafka); ``progress(report)``
    after each batch. ``stop`` ends the run early: no new batch starts, running calls finish.
    """
    stop = stop or asyncio.Event()
    seed = cfg.seed if cfg.seed is not None else random.SystemRandom().randrange(2**32)
    rng = random.Random(seed)  # noqa: S311 - reproducible test traffic, not secrets
    report = GenerateReport(target=cfg.target, seed=seed, planned=cfg.requests)
    sender = _Sender(cfg, report, random.Random(seed ^ 0x5EED))  # noqa: S311 - retry jitter
    loop = asyncio.get_running_loop()
    slots = asyncio.Semaphore(cfg.max_inflight)
    running: set[asyncio.Task[None]] = set()
    batch = cfg.batch_size
    spread_ms = max(1, round(1000 * batch / cfg.rate))
    t0 = loop.time()
    hard_end = t0 + 2 * cfg.duration + 10

    def finished(task: asyncio.Task[None]) -> None:
        running.discard(task)
        slots.release()
        if progress is not None and not task.cancelled():
            progress(report)

    try:
        while report.requests < cfg.requests:
            due = t0 + report.requests / cfg.rate
            if await _sleep_or_stop(stop, due - loop.time()) or loop.time() > hard_end:
                report.interrupted = True
                break
            await slots.acquire()
            n = min(batch, cfg.requests - report.requests)
            reqs = make_requests(rng, n, time.time_ns(), cfg.mix, spread_ms)
            report.requests += n
            report.log_records += sum(r.log for r in reqs)
            report.spans += sum(1 for r in reqs if r.trace_id)
            _count_kinds(report, reqs)
            task = asyncio.create_task(_send_batch(sender, reqs, on_batch))
            running.add(task)
            task.add_done_callback(finished)
        if running:
            await asyncio.gather(*list(running))
    finally:
        for task in list(running):
            task.cancel()
        await sender.channel.close()
        report.elapsed_seconds = loop.time() - t0
    return report


def format_report(r: GenerateReport) -> str:
    """The human-readable report ``audit-stream generate`` prints at the end."""
    rate = r.requests / r.elapsed_seconds if r.elapsed_seconds > 0 else 0.0
    failed = ", ".join(f"{k} x{v}" for k, v in sorted(r.failed_calls.items())) or "none"
    lines = [
        f"sent {r.requests} of {r.planned} requests to {r.target} in {r.elapsed_seconds:.1f}s "
        f"({rate:.0f}/s, seed {r.seed}){' - stopped early' if r.interrupted else ''}",
        f"  log records   {r.log_records:>8}  accepted {r.accepted_log_records}, "
        f"rejected {r.rejected_log_records}, failed {r.failed_log_records}",
        f"  spans         {r.spans:>8}  accepted {r.accepted_spans}, "
        f"rejected {r.rejected_spans}, failed {r.failed_spans}",
        f"  export calls  {r.exports:>8}  retries {r.retries}, failed calls: {failed}",
        f"  denials       {r.denials:>8}",
        f"  untraced      {r.untraced:>8}  (no trace context: audited log_only)",
        f"  span only     {r.span_only:>8}  (access log withheld: audited span_only)",
        f"  with user     {r.with_user:>8}",
        f"  with secrets  {r.with_secrets:>8}  (access_token in the query: must arrive redacted)",
        "all accepted" if r.ok else "NOT all accepted: see rejected/failed above",
    ]
    return "\n".join(lines)


async def run_generate(
    cfg: GenerateConfig,
    stop: asyncio.Event,
    as_json: bool = False,
    out: TextIO = sys.stdout,
    err: TextIO = sys.stderr,
) -> int:
    """The command: progress on stderr (a TTY only), the report on stdout. Exit code 0 when
    everything was accepted, 1 otherwise."""
    tty = err.isatty()
    last = 0.0

    def progress(r: GenerateReport) -> None:
        nonlocal last
        now = time.monotonic()
        if tty and now - last >= 0.2:
            last = now
            err.write(f"\r\x1b[Ksent {r.requests}/{r.planned} requests")
            err.flush()

    report = await generate(cfg, stop, progress=progress)
    if tty:
        err.write("\r\x1b[K")
        err.flush()
    if as_json:
        out.write(orjson.dumps(report.as_dict()).decode() + "\n")
    else:
        out.write(format_report(report) + "\n")
    out.flush()
    return 0 if report.ok and not report.interrupted else 1
