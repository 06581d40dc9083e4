"""The ``audit-stream`` command: the only place that reads the environment, handles signals and exits.

Every setting is an ``AUDIT_STREAM_*`` variable (see ``audit_stream.config``); flags override them.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from audit_stream import __version__
from audit_stream.config import Settings, settings_from_env
from audit_stream.errors import AuditStreamError, ConfigError

__all__ = ["main"]

Handler = Callable[[argparse.Namespace, Settings], int]


def _kafka_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--bootstrap",
        metavar="HOST:PORT[,...]",
        help="Kafka bootstrap servers (AUDIT_STREAM_KAFKA_BOOTSTRAP, default 127.0.0.1:9092)",
    )


def _overrides(ns: argparse.Namespace) -> dict[str, dict[str, Any]]:
    get = vars(ns).get
    return {
        "kafka": {"bootstrap": get("bootstrap")},
        "topics": {"partitions": get("partitions")},
        "receiver": {
            "grpc_listen": get("grpc_listen"),
            "http_listen": get("http_listen"),
            "max_request_bytes": get("max_request_bytes"),
            "max_inflight_bytes": get("max_inflight_bytes"),
            "tls_certfile": get("tls_cert"),
            "tls_keyfile": get("tls_key"),
            "tls_client_cafile": get("tls_client_ca"),
        },
        "worker": {
            "siem_format": get("siem_format"),
            "retention_policy": get("retention_policy"),
            "web_port": get("web_port"),
        },
        "join": {"window_seconds": get("join_window")},
    }


def _cmd_topics(ns: argparse.Namespace, settings: Settings) -> int:
    from audit_stream.kafka.admin import create_topics, partition_counts
    from audit_stream.topics import check_copartitioned, topic_specs

    specs = topic_specs(settings.topics)
    if settings.worker.topic_per_class:
        from audit_stream.retention import (
            DEFAULT_POLICY,
            PolicyError,
            class_retention_ms,
            load_policy_file,
        )
        from audit_stream.topics import class_topic_specs

        path = settings.worker.retention_policy
        try:
            policy = load_policy_file(path) if path else DEFAULT_POLICY
        except (PolicyError, OSError) as exc:
            raise ConfigError(f"AUDIT_STREAM_RETENTION_POLICY: {exc}") from None
        specs += class_topic_specs(settings.topics, class_retention_ms(policy))
    if ns.action == "create":
        for r in asyncio.run(create_topics(settings.kafka, specs)):
            state = "created" if r.created else "exists"
            print(f"{r.name:<24} {state:<8} partitions={r.partitions}")
    counts = asyncio.run(partition_counts(settings.kafka, [s.name for s in specs]))
    check_copartitioned(counts, settings.topics)
    if ns.action == "check":
        for s in specs:
            print(f"{s.name:<24} partitions={counts[s.name]}")
    print(f"ok: {settings.topics.spans} and {settings.topics.logs} are co-partitioned")
    return 0


def _run_until_signalled(main_coro: Callable[[asyncio.Event], Any]) -> None:
    """Run ``main_coro(stop)`` on a fresh loop; SIGTERM/SIGINT set ``stop`` for an ordered shutdown."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main_coro(stop)

    asyncio.run(runner())


def _setup_logging(level: str) -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


def _cmd_receiver(ns: argparse.Namespace, settings: Settings) -> int:
    from audit_stream.receiver.server import run_receiver

    _setup_logging(ns.log_level)
    _run_until_signalled(lambda stop: run_receiver(settings, stop))
    return 0


def _cmd_worker(ns: argparse.Namespace, settings: Settings) -> int:
    from agents.app import create_app
    from audit_stream.kafka.admin import partition_counts
    from audit_stream.topics import check_copartitioned

    # Fail loudly before Faust starts: a join over topics that are not co-partitioned is wrong.
    counts = asyncio.run(
        partition_counts(settings.kafka, [settings.topics.spans, settings.topics.logs])
    )
    check_copartitioned(counts, settings.topics)
    level = getattr(logging, ns.loglevel.upper(), logging.INFO)
    app = create_app(settings, log_level=level)
    sys.argv = ["audit-stream worker", "worker", "-l", ns.loglevel, *ns.faust_args]
    app.main()  # runs until SIGTERM/SIGINT; exits the process itself
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="audit-stream",
        description="Service-mesh telemetry in (OTLP), an access-audit trail out (Kafka).",
        epilog="Settings come from AUDIT_STREAM_* environment variables; flags override them.",
    )
    p.add_argument("--version", action="version", version=f"audit-stream {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    t = sub.add_parser("topics", help="create or check the Kafka topics")
    t.add_argument("action", choices=["create", "check"])
    t.add_argument(
        "--partitions", type=int, help="partitions for new topics (AUDIT_STREAM_PARTITIONS)"
    )
    _kafka_flags(t)
    t.set_defaults(handler=_cmd_topics)

    r = sub.add_parser(
        "receiver",
        help="serve OTLP/gRPC and OTLP/HTTP and publish to Kafka",
        description="OTLP receiver. Auth: AUDIT_STREAM_AUTH_TOKENS (comma-separated) or "
        "AUDIT_STREAM_AUTH_TOKENS_FILE (one per line) enable bearer-token auth on both ports.",
    )
    r.add_argument(
        "--grpc-listen", metavar="HOST:PORT", help="AUDIT_STREAM_GRPC_LISTEN (127.0.0.1:4317)"
    )
    r.add_argument(
        "--http-listen", metavar="HOST:PORT", help="AUDIT_STREAM_HTTP_LISTEN (127.0.0.1:4318)"
    )
    r.add_argument("--max-request-bytes", type=int, help="AUDIT_STREAM_MAX_REQUEST_BYTES (16 MiB)")
    r.add_argument(
        "--max-inflight-bytes", type=int, help="AUDIT_STREAM_MAX_INFLIGHT_BYTES (256 MiB)"
    )
    r.add_argument(
        "--tls-cert", metavar="PEM", help="AUDIT_STREAM_TLS_CERTFILE: serve TLS on both ports"
    )
    r.add_argument("--tls-key", metavar="PEM", help="AUDIT_STREAM_TLS_KEYFILE")
    r.add_argument(
        "--tls-client-ca", metavar="PEM", help="AUDIT_STREAM_TLS_CLIENT_CAFILE: require mTLS"
    )
    r.add_argument("--log-level", default="info")
    _kafka_flags(r)
    r.set_defaults(handler=_cmd_receiver)

    w = sub.add_parser(
        "worker",
        help="run the Faust worker: join, retention, redaction, SIEM output",
        description="Runs the audit agents (the same app as `faust -A agents.app worker`). "
        "Arguments after `--` go to faust's worker command.",
    )
    w.add_argument("--loglevel", "-l", default="info", help="debug, info, warning, error")
    w.add_argument(
        "--siem-format", choices=["ocsf", "ecs", "native"], help="AUDIT_STREAM_SIEM_FORMAT"
    )
    w.add_argument("--retention-policy", metavar="YAML", help="AUDIT_STREAM_RETENTION_POLICY")
    w.add_argument("--web-port", type=int, help="AUDIT_STREAM_WEB_PORT (6066)")
    w.add_argument(
        "--join-window", type=float, metavar="SECONDS", help="AUDIT_STREAM_JOIN_WINDOW_SECONDS"
    )
    w.add_argument("faust_args", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    _kafka_flags(w)
    w.set_defaults(handler=_cmd_worker)

    for register in _EXTRA_COMMANDS:
        register(sub)
    return p


# Subcommands living in their own modules add themselves here (imported lazily by their handlers).
_EXTRA_COMMANDS: list[Callable[[Any], None]] = []


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    """Entry point of the ``audit-stream`` console script."""
    parser = _parser()
    ns = parser.parse_args(argv)
    handler: Handler | None = getattr(ns, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    env = os.environ if environ is None else environ
    try:
        settings = settings_from_env(env, _overrides(ns))
        return handler(ns, settings)
    except AuditStreamError as exc:
        print(f"audit-stream: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
