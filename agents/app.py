"""The Faust app: built by :func:`create_app`, nothing happens at import.

``faust -A agents.app worker -l info`` works because the module-level ``app`` attribute is built on
first access (PEP 562) from ``AUDIT_STREAM_*`` settings; ``audit-stream worker`` builds it with the
same factory and runs it with our defaults.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
from typing import Any

import faust

from audit_stream import native
from audit_stream.config import KafkaSettings, Settings, settings_from_env
from audit_stream.errors import AuditStreamError, ConfigError, KafkaUnavailable
from audit_stream.join.correlator import JoinConfig
from audit_stream.kafka.admin import partition_counts
from audit_stream.kafka.publisher import Publisher
from audit_stream.metrics import Registry
from audit_stream.pipeline import GC_THRESHOLDS, AuditPipeline, Origin
from audit_stream.retention import DEFAULT_POLICY, PolicyError, load_policy_file
from audit_stream.siem import Redactor
from audit_stream.siem.output import AuditOutput
from audit_stream.topics import check_copartitioned

__all__ = ["create_app"]

log = logging.getLogger("audit_stream.worker")

FLUSH_INTERVAL = 0.1  # seconds between output flushes (plus the time a flush takes)
EXPIRE_INTERVAL = 0.5  # seconds between join-window expiry sweeps


def _broker_options(kafka: KafkaSettings) -> dict[str, Any]:
    servers = ";".join(f"kafka://{s.strip()}" for s in kafka.bootstrap.split(","))
    opts: dict[str, Any] = {"broker": servers}
    kw = kafka.client_kwargs()
    if kafka.sasl_mechanism:
        opts["broker_credentials"] = faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password,
            mechanism=kafka.sasl_mechanism,
            ssl_context=kw.get("ssl_context"),
        )
    elif "ssl_context" in kw:
        opts["broker_credentials"] = faust.SSLCredentials(kw["ssl_context"])
    return opts


def create_app(settings: Settings, log_level: int = logging.INFO) -> faust.App:
    """Build the worker app: one agent over both mesh topics and a flush / expiry loop."""
    w = settings.worker
    try:
        policy = load_policy_file(w.retention_policy) if w.retention_policy else DEFAULT_POLICY
    except PolicyError as exc:
        raise ConfigError(str(exc)) from None
    except OSError as exc:
        raise ConfigError(f"AUDIT_STREAM_RETENTION_POLICY: cannot read policy: {exc}") from None
    redactor = Redactor(extra_patterns=w.redact_patterns, extra_params=w.redact_params)
    output = AuditOutput(policy, redactor, w.siem_format, settings.topics.siem, w.topic_per_class)

    app = faust.App(
        w.app_id,
        **_broker_options(settings.kafka),
        datadir=w.data_dir,
        web_port=w.web_port,
        web_host="127.0.0.1",
        topic_partitions=settings.topics.partitions,
        topic_replication_factor=settings.topics.replication_factor,
        topic_allow_declare=False,  # topics are ours to declare (`audit-stream topics create`)
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=1.0,
        broker_commit_every=10_000,
        stream_wait_empty=False,
        stream_buffer_maxsize=256,
        broker_max_poll_records=200,
        # A worker that died without leaving the group keeps its partitions until its session
        # times out, and nobody audits them meanwhile; too short a timeout instead evicts a worker
        # that is merely starved of CPU and makes it replay. 30 s balances the two.
        broker_session_timeout=30.0,
        broker_heartbeat_interval=3.0,
        store="memory://",
        web_enabled=True,
        topic_disable_leader=True,  # no leader-only tasks; avoids an extra internal topic
    )
    metrics = Registry()
    publisher = Publisher(settings.kafka, timeout=30.0, linger_ms=5, max_batch_size=512 * 1024)
    pipeline = AuditPipeline(
        JoinConfig.from_settings(w.join),
        output,
        publisher,
        metrics,
        events_topic=settings.topics.events,
        deadletter_topic=settings.topics.deadletter,
    )
    app.audit_pipeline = pipeline  # type: ignore[attr-defined]
    app.audit_metrics = metrics  # type: ignore[attr-defined]
    mesh = app.topic(
        settings.topics.logs,
        settings.topics.spans,
        key_serializer="raw",
        value_serializer="raw",
        internal=False,
    )

    async def check_layout() -> None:
        counts = await partition_counts(
            settings.kafka, [settings.topics.spans, settings.topics.logs]
        )
        check_copartitioned(counts, settings.topics)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: Any = None, **_: Any) -> None:
        # Faust seeks every assigned partition back to its committed offset after a rebalance,
        # so whatever we hold is re-read: drop it rather than join it twice.
        pipeline.reset()

    @app.task  # type: ignore[untyped-decorator]
    async def startup() -> None:
        # faust's `-l warn` leaves the root logger at DEBUG; filtering late costs ~20% CPU.
        logging.getLogger().setLevel(log_level)
        native.announce(metrics, log)
        try:
            await check_layout()
        except AuditStreamError as exc:
            log.critical("refusing to start: %s", exc)
            await app.crash(exc)
            return
        await publisher.start(wait=True)
        # Start-up objects are frozen out of the collector's generations (see GC_THRESHOLDS).
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)

    async def flush() -> None:
        try:
            await pipeline.flush()
        except KafkaUnavailable as exc:
            log.warning("output not acknowledged, will retry: %s", exc)

    @app.agent(mesh, name="audit-join")
    async def audit_join(stream: Any) -> None:
        try:
            async for event in stream.noack().events():
                msg = event.message
                pipeline.on_message(
                    Origin(event, msg.topic, msg.partition, msg.offset), event.value
                )
                # Decoded: drop Faust's references to the value. The event itself lives until
                # its ack, which waits for every earlier message of the partition, so otherwise
                # one record waiting out the join window keeps all the input read after it.
                event.value = msg.value = None
                while pipeline.wants_flush():
                    # Backpressure: stop consuming until Kafka takes the output, so the buffer
                    # stays bounded however long Kafka is away.
                    try:
                        await pipeline.flush()
                    except KafkaUnavailable as exc:
                        log.warning("output not acknowledged, retrying: %s", exc)
                        await asyncio.sleep(1.0)
        except Exception as exc:
            # A silently dead agent would stall commits forever: crash the worker instead, so
            # its supervisor restarts it and the uncommitted messages are re-read.
            log.exception("audit agent failed; stopping the worker")
            await app.crash(exc)
            raise

    @app.task  # type: ignore[untyped-decorator]
    async def housekeeping() -> None:
        # One loop rather than two Faust timers: a flush waits for Kafka and can outlast the
        # interval, which a timer reports as "overlapping" on every tick under load.
        loop = asyncio.get_running_loop()
        next_expiry = loop.time() + EXPIRE_INTERVAL
        try:
            while True:
                await asyncio.sleep(FLUSH_INTERVAL)
                if loop.time() >= next_expiry:
                    pipeline.expire()
                    next_expiry = loop.time() + EXPIRE_INTERVAL
                await flush()
        except Exception as exc:
            log.exception("audit housekeeping failed; stopping the worker")
            await app.crash(exc)
            raise

    @app.page("/audit/metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        return web.text(metrics.render())

    @app.page("/audit/stats")
    async def stats_page(web: Any, request: Any) -> Any:
        return web.json({"pending": pipeline.pending(), "counters": metrics.snapshot()})

    return app


_app: faust.App | None = None


def __getattr__(name: str) -> Any:
    """Build ``app`` on first access, for ``faust -A agents.app``."""
    global _app
    if name == "app":
        if _app is None:
            _app = create_app(settings_from_env(os.environ))
        return _app
    raise AttributeError(name)
