"""Settings: one frozen, validated object per stage. Defaults live here and nowhere else.

Components receive these objects; none of them reads the environment. The CLI builds them with
:func:`settings_from_env` from ``AUDIT_STREAM_*`` variables (and flags), so every setting has one
name and one default. Invalid values raise :class:`~audit_stream.errors.ConfigError` naming the
variable and what would be accepted, before anything connects anywhere.

Example::

    >>> s = settings_from_env({"AUDIT_STREAM_KAFKA_BOOTSTRAP": "kafka:9092"})
    >>> s.kafka.bootstrap, s.topics.logs
    ('kafka:9092', 'mesh.logs')
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from audit_stream.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "JoinSettings",
    "KafkaSettings",
    "ReceiverSettings",
    "Settings",
    "TopicSettings",
    "WorkerSettings",
    "settings_from_env",
]

ENV_PREFIX = "AUDIT_STREAM_"

SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "GSSAPI"]
SiemFormat = Literal["ocsf", "ecs", "native"]

_TOPIC_RE = re.compile(r"^[A-Za-z0-9._-]{1,249}$")
_HOSTPORT_RE = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{ENV_PREFIX}{name}: {message}")


def _check_hostport(value: str, name: str) -> None:
    m = _HOSTPORT_RE.match(value)
    _check(
        m is not None and 0 <= int(m.group(2)) < 65536,
        name,
        f"expected host:port, got {value!r}",
    )


CODECS = ("zstd", "lz4", "snappy", "gzip", "none")  # Kafka record-batch codecs
# codec -> (lowest, highest) compression level Kafka accepts (KIP-390); the others have none
COMPRESSION_LEVELS: dict[str, tuple[int, int]] = {
    "zstd": (-131072, 22),
    "lz4": (1, 17),
    "gzip": (1, 9),
}


@dataclass(frozen=True, slots=True)
class KafkaSettings:
    """How to reach Kafka. Security options pass straight through to aiokafka."""

    bootstrap: str = "127.0.0.1:9092"
    client_id: str = "audit-stream"
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    request_timeout_ms: int = 30_000
    # Codec of every batch audit-stream produces (mesh.*, audit.*): zstd is ~2x smaller than
    # snappy on these records for a little more CPU; "none" leaves it to the broker (the topics'
    # compression.type).
    compression: str = "zstd"
    # Its level (Kafka's ``compression.<codec>.level``); unset: zstd 1, which compresses these
    # records as well as Kafka's default 3 for less CPU (see audit_stream.kafka.compression), and
    # aiokafka's fixed level for the other codecs.
    compression_level: int | None = None

    def __post_init__(self) -> None:
        servers = [s.strip() for s in self.bootstrap.split(",")]
        _check(bool(self.bootstrap.strip()), "KAFKA_BOOTSTRAP", "must not be empty")
        for s in servers:
            _check_hostport(s, "KAFKA_BOOTSTRAP")
        _check(
            self.security_protocol in ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"),
            "KAFKA_SECURITY_PROTOCOL",
            "one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL",
        )
        if self.security_protocol.startswith("SASL"):
            _check(
                self.sasl_mechanism is not None,
                "KAFKA_SASL_MECHANISM",
                f"required with security protocol {self.security_protocol}",
            )
        if self.sasl_mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"):
            _check(
                bool(self.sasl_username) and bool(self.sasl_password),
                "KAFKA_SASL_USERNAME",
                f"{self.sasl_mechanism} needs a username and a password",
            )
        _check(self.request_timeout_ms > 0, "KAFKA_REQUEST_TIMEOUT_MS", "must be positive")
        _check(self.compression in CODECS, "KAFKA_COMPRESSION", ", ".join(CODECS))
        if self.compression_level is not None:
            lo, hi = COMPRESSION_LEVELS.get(self.compression, (0, -1))
            _check(lo <= hi, "KAFKA_COMPRESSION_LEVEL", f"{self.compression} has no levels")
            _check(
                lo <= self.compression_level <= hi,
                "KAFKA_COMPRESSION_LEVEL",
                f"{self.compression} levels are {lo}..{hi}",
            )

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for any aiokafka client (producer, consumer, admin)."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap,
            "client_id": self.client_id,
            "security_protocol": self.security_protocol,
            "request_timeout_ms": self.request_timeout_ms,
        }
        if self.sasl_mechanism:
            kw["sasl_mechanism"] = self.sasl_mechanism
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=self.ssl_cafile, certfile=self.ssl_certfile, keyfile=self.ssl_keyfile
            )
        return kw


@dataclass(frozen=True, slots=True)
class TopicSettings:
    """Topic names and layout. ``spans`` and ``logs`` must be co-partitioned for the join."""

    spans: str = "mesh.spans"
    logs: str = "mesh.logs"
    events: str = "audit.events"
    siem: str = "audit.siem"
    deadletter: str = "audit.deadletter"
    partitions: int = 6
    replication_factor: int = 1

    def __post_init__(self) -> None:
        for name in ("spans", "logs", "events", "siem", "deadletter"):
            value = getattr(self, name)
            _check(
                bool(_TOPIC_RE.match(value)),
                f"TOPIC_{name.upper()}",
                f"{value!r} is not a valid Kafka topic name",
            )
        names = [self.spans, self.logs, self.events, self.siem, self.deadletter]
        _check(len(set(names)) == len(names), "TOPIC_*", "topic names must all differ")
        _check(1 <= self.partitions <= 10_000, "PARTITIONS", "between 1 and 10000")
        _check(1 <= self.replication_factor <= 32, "REPLICATION_FACTOR", "between 1 and 32")


@dataclass(frozen=True, slots=True)
class ReceiverSettings:
    """The OTLP receiver: listeners, limits, auth."""

    grpc_listen: str = "127.0.0.1:4317"
    http_listen: str = "127.0.0.1:4318"
    max_request_bytes: int = 16 * 1024 * 1024  # compressed body, as received
    max_decompressed_bytes: int = 64 * 1024 * 1024  # after gzip: a small bomb must not expand
    max_inflight_bytes: int = 256 * 1024 * 1024  # decoded request bytes awaiting Kafka acks
    kafka_timeout_seconds: float = 10.0  # longer than this waiting for acks -> UNAVAILABLE
    retry_after_seconds: int = 2
    auth_tokens: frozenset[str] = field(default=frozenset(), repr=False)
    tls_certfile: str | None = None
    tls_keyfile: str | None = None
    tls_client_cafile: str | None = None  # set to require client certificates (mTLS)
    linger_ms: int = 5
    max_batch_bytes: int = 1024 * 1024  # per Kafka message of packed records

    def __post_init__(self) -> None:
        _check_hostport(self.grpc_listen, "GRPC_LISTEN")
        _check_hostport(self.http_listen, "HTTP_LISTEN")
        _check(self.max_request_bytes > 0, "MAX_REQUEST_BYTES", "must be positive")
        _check(
            self.max_decompressed_bytes >= self.max_request_bytes,
            "MAX_DECOMPRESSED_BYTES",
            "must be >= AUDIT_STREAM_MAX_REQUEST_BYTES",
        )
        _check(
            self.max_inflight_bytes >= self.max_decompressed_bytes,
            "MAX_INFLIGHT_BYTES",
            "must be >= AUDIT_STREAM_MAX_DECOMPRESSED_BYTES so one request can always fit",
        )
        _check(self.kafka_timeout_seconds > 0, "KAFKA_TIMEOUT_SECONDS", "must be positive")
        _check(
            (self.tls_certfile is None) == (self.tls_keyfile is None),
            "TLS_CERTFILE",
            "TLS needs both AUDIT_STREAM_TLS_CERTFILE and AUDIT_STREAM_TLS_KEYFILE",
        )
        _check(
            self.tls_client_cafile is None or self.tls_certfile is not None,
            "TLS_CLIENT_CAFILE",
            "client certificates (mTLS) need server TLS too",
        )
        _check(1_000 <= self.max_batch_bytes <= 64 * 1024 * 1024, "MAX_BATCH_BYTES", "1kB-64MB")

    @property
    def tls(self) -> bool:
        return self.tls_certfile is not None


@dataclass(frozen=True, slots=True)
class JoinSettings:
    """How long halves wait for each other, and how much may wait."""

    window_seconds: float = 10.0
    grace_seconds: float = 2.0
    max_hold_seconds: float = 30.0  # wall clock: a quiet partition still flushes
    max_pending_per_trace: int = 1_000
    max_pending_total: int = 200_000
    dedup_capacity: int = 100_000

    def __post_init__(self) -> None:
        _check(self.window_seconds > 0, "JOIN_WINDOW_SECONDS", "must be positive")
        _check(self.grace_seconds >= 0, "JOIN_GRACE_SECONDS", "must be >= 0")
        _check(
            self.max_hold_seconds >= self.window_seconds,
            "JOIN_MAX_HOLD_SECONDS",
            "must be >= AUDIT_STREAM_JOIN_WINDOW_SECONDS",
        )
        _check(self.max_pending_per_trace >= 1, "JOIN_MAX_PENDING_PER_TRACE", "must be >= 1")
        _check(
            self.max_pending_total >= self.max_pending_per_trace,
            "JOIN_MAX_PENDING_TOTAL",
            "must be >= AUDIT_STREAM_JOIN_MAX_PENDING_PER_TRACE",
        )
        _check(self.dedup_capacity >= 0, "JOIN_DEDUP_CAPACITY", "must be >= 0")


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    """The Faust worker: app identity, outputs and policy."""

    app_id: str = "audit-stream"
    siem_format: SiemFormat = "ocsf"
    retention_policy: str | None = None  # path to a YAML policy; None -> built-in default
    topic_per_class: bool = False  # route each retention class to <siem>.<class>
    redact_params: tuple[str, ...] = ()
    redact_patterns: tuple[str, ...] = ()
    web_port: int = 6066
    data_dir: str = ".run/worker"
    join: JoinSettings = field(default_factory=JoinSettings)

    def __post_init__(self) -> None:
        _check(bool(re.match(r"^[A-Za-z0-9._-]+$", self.app_id)), "APP_ID", "letters, digits, ._-")
        _check(self.siem_format in ("ocsf", "ecs", "native"), "SIEM_FORMAT", "ocsf, ecs or native")
        _check(0 < self.web_port < 65536, "WEB_PORT", "a TCP port")
        for p in self.redact_patterns:
            try:
                re.compile(p)
            except re.error as exc:
                raise ConfigError(f"{ENV_PREFIX}REDACT_PATTERNS: {p!r}: {exc}") from None


@dataclass(frozen=True, slots=True)
class Settings:
    kafka: KafkaSettings = field(default_factory=KafkaSettings)
    topics: TopicSettings = field(default_factory=TopicSettings)
    receiver: ReceiverSettings = field(default_factory=ReceiverSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)


T = TypeVar("T")


def _parse(env: Mapping[str, str], name: str, conv: Callable[[str], T], what: str) -> T | None:
    raw = env.get(ENV_PREFIX + name)
    if raw is None or raw == "":
        return None
    try:
        return conv(raw.strip())
    except ValueError:
        raise ConfigError(f"{ENV_PREFIX}{name}: expected {what}, got {raw!r}") from None


def _bool(raw: str) -> bool:
    low = raw.lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise ValueError(raw)


def _list(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


_INT = (int, "an integer")
_FLOAT = (float, "a number")
_STR = (str, "a string")
_BOOL = (_bool, "true or false")
_LIST = (_list, "a comma-separated list")

# (dataclass field, env name suffix, converter) per stage; the env name is the documented interface.
_FIELDS: dict[str, list[tuple[str, str, tuple[Callable[[str], Any], str]]]] = {
    "kafka": [
        ("bootstrap", "KAFKA_BOOTSTRAP", _STR),
        ("client_id", "KAFKA_CLIENT_ID", _STR),
        ("security_protocol", "KAFKA_SECURITY_PROTOCOL", _STR),
        ("sasl_mechanism", "KAFKA_SASL_MECHANISM", _STR),
        ("sasl_username", "KAFKA_SASL_USERNAME", _STR),
        ("sasl_password", "KAFKA_SASL_PASSWORD", _STR),
        ("ssl_cafile", "KAFKA_SSL_CAFILE", _STR),
        ("ssl_certfile", "KAFKA_SSL_CERTFILE", _STR),
        ("ssl_keyfile", "KAFKA_SSL_KEYFILE", _STR),
        ("request_timeout_ms", "KAFKA_REQUEST_TIMEOUT_MS", _INT),
        ("compression", "KAFKA_COMPRESSION", _STR),
        ("compression_level", "KAFKA_COMPRESSION_LEVEL", _INT),
    ],
    "topics": [
        ("spans", "TOPIC_SPANS", _STR),
        ("logs", "TOPIC_LOGS", _STR),
        ("events", "TOPIC_EVENTS", _STR),
        ("siem", "TOPIC_SIEM", _STR),
        ("deadletter", "TOPIC_DEADLETTER", _STR),
        ("partitions", "PARTITIONS", _INT),
        ("replication_factor", "REPLICATION_FACTOR", _INT),
    ],
    "receiver": [
        ("grpc_listen", "GRPC_LISTEN", _STR),
        ("http_listen", "HTTP_LISTEN", _STR),
        ("max_request_bytes", "MAX_REQUEST_BYTES", _INT),
        ("max_decompressed_bytes", "MAX_DECOMPRESSED_BYTES", _INT),
        ("max_inflight_bytes", "MAX_INFLIGHT_BYTES", _INT),
        ("kafka_timeout_seconds", "KAFKA_TIMEOUT_SECONDS", _FLOAT),
        ("retry_after_seconds", "RETRY_AFTER_SECONDS", _INT),
        ("tls_certfile", "TLS_CERTFILE", _STR),
        ("tls_keyfile", "TLS_KEYFILE", _STR),
        ("tls_client_cafile", "TLS_CLIENT_CAFILE", _STR),
        ("linger_ms", "KAFKA_LINGER_MS", _INT),
        ("max_batch_bytes", "MAX_BATCH_BYTES", _INT),
    ],
    "join": [
        ("window_seconds", "JOIN_WINDOW_SECONDS", _FLOAT),
        ("grace_seconds", "JOIN_GRACE_SECONDS", _FLOAT),
        ("max_hold_seconds", "JOIN_MAX_HOLD_SECONDS", _FLOAT),
        ("max_pending_per_trace", "JOIN_MAX_PENDING_PER_TRACE", _INT),
        ("max_pending_total", "JOIN_MAX_PENDING_TOTAL", _INT),
        ("dedup_capacity", "JOIN_DEDUP_CAPACITY", _INT),
    ],
    "worker": [
        ("app_id", "APP_ID", _STR),
        ("siem_format", "SIEM_FORMAT", _STR),
        ("retention_policy", "RETENTION_POLICY", _STR),
        ("topic_per_class", "TOPIC_PER_CLASS", _BOOL),
        ("redact_params", "REDACT_PARAMS", _LIST),
        ("redact_patterns", "REDACT_PATTERNS", _LIST),
        ("web_port", "WEB_PORT", _INT),
        ("data_dir", "DATA_DIR", _STR),
    ],
}

# Every variable this module understands, for `--help` texts and for spotting typos.
KNOWN_ENV = frozenset(
    [ENV_PREFIX + env for fields in _FIELDS.values() for _, env, _ in fields]
    + [ENV_PREFIX + "AUTH_TOKENS", ENV_PREFIX + "AUTH_TOKENS_FILE"]
)


def _values(env: Mapping[str, str], stage: str, overrides: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for attr, name, (conv, what) in _FIELDS[stage]:
        value = _parse(env, name, conv, what)
        if value is not None:
            out[attr] = value
    out.update({k: v for k, v in overrides.items() if v is not None})
    return out


def _auth_tokens(env: Mapping[str, str], read_file: Callable[[str], str]) -> frozenset[str]:
    tokens = set(_list(env.get(ENV_PREFIX + "AUTH_TOKENS", "")))
    path = env.get(ENV_PREFIX + "AUTH_TOKENS_FILE")
    if path:
        try:
            text = read_file(path)
        except OSError as exc:
            raise ConfigError(f"{ENV_PREFIX}AUTH_TOKENS_FILE: cannot read {path}: {exc}") from None
        tokens.update(t.strip() for t in text.splitlines() if t.strip() and not t.startswith("#"))
    return frozenset(tokens)


def _read_text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def settings_from_env(
    env: Mapping[str, str],
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
    read_file: Callable[[str], str] = _read_text,
) -> Settings:
    """Build validated :class:`Settings` from ``AUDIT_STREAM_*`` variables plus CLI ``overrides``.

    ``overrides`` maps a stage (``kafka``, ``topics``, ``receiver``, ``join``, ``worker``) to field
    values that win over the environment (command-line flags); ``None`` values are ignored.
    """
    ov = overrides or {}
    try:
        receiver_values = _values(env, "receiver", ov.get("receiver", {}))
        receiver_values.setdefault("auth_tokens", _auth_tokens(env, read_file))
        return Settings(
            kafka=KafkaSettings(**_values(env, "kafka", ov.get("kafka", {}))),
            topics=TopicSettings(**_values(env, "topics", ov.get("topics", {}))),
            receiver=ReceiverSettings(**receiver_values),
            worker=WorkerSettings(
                join=JoinSettings(**_values(env, "join", ov.get("join", {}))),
                **_values(env, "worker", ov.get("worker", {})),
            ),
        )
    except TypeError as exc:  # a wrong override name is a programming error worth a clear message
        raise ConfigError(f"invalid setting: {exc}") from None


def replace(settings: T, **changes: Any) -> T:
    """``dataclasses.replace`` that keeps validation (frozen dataclasses re-run ``__post_init__``)."""
    return dataclasses.replace(settings, **changes)  # type: ignore[type-var]
