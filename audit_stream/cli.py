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
from collections.abc import Awaitable, Callable, Mapping, Sequence
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


# -- operator tools: generate, tail, demo (audit_stream.tools) ------------------------------------


def _run_tool(main_coro: Callable[[asyncio.Event], Awaitable[int]]) -> int:
    """Like ``_run_until_signalled``, for coroutines that return the exit code."""
    codes: list[int] = []

    async def run(stop: asyncio.Event) -> None:
        codes.append(await main_coro(stop))

    _run_until_signalled(run)
    return codes[0] if codes else 130


def _cmd_generate(ns: argparse.Namespace, settings: Settings) -> int:
    from audit_stream.tools.generate import GenerateConfig, parse_mix, run_generate

    cfg = GenerateConfig(
        target=ns.target or settings.receiver.grpc_listen,
        rate=ns.rate,
        requests=round(ns.rate * ns.duration),
        batch=ns.batch,
        mix=parse_mix(ns.mix),
        seed=ns.seed,
        token=ns.token,
        tls=ns.tls,
        tls_ca=ns.tls_ca,
    )
    return _run_tool(lambda stop: run_generate(cfg, stop, as_json=ns.json))


def _add_generate(sub: Any) -> None:
    g = sub.add_parser(
        "generate",
        help="send realistic mesh traffic (access logs + spans over OTLP/gRPC) to a receiver",
        description="Sends Istio-shaped access logs and server spans at about --rate requests/s "
        "for --duration seconds, retrying UNAVAILABLE / RESOURCE_EXHAUSTED (with RetryInfo), and "
        "prints what was sent and accepted. Exit code 1 unless everything was accepted.",
    )
    g.add_argument(
        "--target", metavar="HOST:PORT", help="receiver OTLP/gRPC (AUDIT_STREAM_GRPC_LISTEN)"
    )
    g.add_argument("--rate", type=float, default=100.0, help="requests per second (100)")
    g.add_argument("--duration", type=float, default=10.0, metavar="S", help="seconds (10)")
    g.add_argument("--seed", type=int, help="random seed, to repeat a run (default: random)")
    g.add_argument("--batch", type=int, default=0, help="requests per export (default: rate/10)")
    g.add_argument(
        "--mix",
        metavar="NAME=SHARE,...",
        help="shares of denied, no_trace, with_user, with_secret, span_only "
        "(default denied=0.1,no_trace=0.05,with_user=0.2,with_secret=0.05,span_only=0.02)",
    )
    g.add_argument("--token", help="bearer token for a receiver with AUDIT_STREAM_AUTH_TOKENS")
    tls = g.add_mutually_exclusive_group()
    tls.add_argument("--insecure", action="store_true", help="plaintext gRPC (the default)")
    tls.add_argument("--tls", action="store_true", help="TLS, verified with the system CAs")
    tls.add_argument("--tls-ca", metavar="PEM", help="TLS, verified with this CA certificate")
    g.add_argument("--json", action="store_true", help="print the report as JSON")
    g.set_defaults(handler=_cmd_generate)


def _cmd_tail(ns: argparse.Namespace, settings: Settings) -> int:
    import time

    from audit_stream.tools.tail import Start, TailOptions, resolve_topic, run_tail
    from audit_stream.tools.view import EventFilter, parse_since

    if ns.from_beginning:
        start = Start("beginning")
    elif ns.since:
        start = Start.at_time(parse_since(ns.since, int(time.time() * 1000)))
    else:
        start = Start("end")
    opts = TailOptions(
        topic=resolve_topic(ns.topic, settings.topics),
        start=start,
        event_filter=EventFilter(ns.decision, ns.service, ns.user, ns.correlation),
        as_json=ns.json,
        max_events=ns.max,
        idle_timeout=ns.timeout,
    )
    return _run_tool(lambda stop: run_tail(settings.kafka, opts, stop))


def _add_tail(sub: Any) -> None:
    t = sub.add_parser(
        "tail",
        help="follow audit events, one readable line each",
        description="Follows the SIEM topic (OCSF, ECS or native) or audit.events and prints one "
        "line per event: time, source -> destination, method path, status, decision, user, "
        "retention class. Reads without a consumer group: it never moves a connector's offsets.",
    )
    t.add_argument(
        "--topic",
        default="siem",
        metavar="siem|events|NAME",
        help="siem (AUDIT_STREAM_TOPIC_SIEM, default), events (AUDIT_STREAM_TOPIC_EVENTS) or a name",
    )
    where = t.add_mutually_exclusive_group()
    where.add_argument("--from-beginning", action="store_true", help="start at the oldest event")
    where.add_argument(
        "--since", metavar="AGE|TIME", help="start at 10m / 2h / 1d ago or at an ISO time"
    )
    t.add_argument("--json", action="store_true", help="one JSON object per event")
    t.add_argument("--decision", choices=["allow", "deny", "unknown"])
    t.add_argument("--service", metavar="NAME", help="caller or callee (reviews, reviews.bookinfo)")
    t.add_argument("--user", metavar="ID", help="end-user identity")
    t.add_argument("--correlation", choices=["joined", "log_only", "span_only"])
    t.add_argument("--max", type=int, metavar="N", help="stop after N events")
    t.add_argument(
        "--timeout",
        type=float,
        metavar="S",
        help="stop after S seconds without a new message (exit 1 if --max was not reached)",
    )
    _kafka_flags(t)
    t.set_defaults(handler=_cmd_tail)


def _cmd_demo(ns: argparse.Namespace, settings: Settings) -> int:
    from audit_stream.tools.demo import DemoOptions, run_demo

    opts = DemoOptions(
        requests=ns.requests,
        duration=ns.duration,
        traffic=not ns.no_traffic,
        keep_running=ns.keep_running,
        seed=ns.seed,
        run_dir=ns.run_dir,
        as_json=ns.json,
        wait_timeout=ns.timeout,
        kafka_hint=ns.kafka_hint,
        prog=sys.argv[0],
    )
    env = dict(os.environ)  # the children inherit it, plus the settings the demo resolved
    return _run_tool(lambda stop: run_demo(settings, opts, env, stop))


def _add_demo(sub: Any) -> None:
    d = sub.add_parser(
        "demo",
        help="run the whole pipeline locally with sample traffic and a summary",
        description="Creates the topics, starts receiver and worker (logs in RUN_DIR), plays "
        "sample mesh traffic, waits until every request has its audit event and prints a summary "
        "counted from the SIEM topic. Ctrl-C stops receiver and worker; Kafka keeps running.",
    )
    d.add_argument("--requests", type=int, default=2000, help="requests to send (2000)")
    d.add_argument("--duration", type=float, default=20.0, metavar="S", help="over S seconds (20)")
    d.add_argument("--no-traffic", action="store_true", help="just run the pipeline until Ctrl-C")
    d.add_argument(
        "--keep-running", action="store_true", help="keep the pipeline up after the summary"
    )
    d.add_argument("--seed", type=int, help="traffic seed, to repeat a run (default: random)")
    d.add_argument(
        "--siem-format", choices=["ocsf", "ecs", "native"], help="AUDIT_STREAM_SIEM_FORMAT"
    )
    d.add_argument("--run-dir", default=".run/demo", help="logs and worker state (.run/demo)")
    d.add_argument(
        "--timeout", type=float, metavar="S", help="wait at most S s for the last events"
    )
    d.add_argument("--json", action="store_true", help="print the summary as JSON on stdout")
    d.add_argument("--kafka-hint", help=argparse.SUPPRESS)  # set by scripts/run-local
    _kafka_flags(d)
    d.set_defaults(handler=_cmd_demo)


_EXTRA_COMMANDS.extend([_add_generate, _add_tail, _add_demo])


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
