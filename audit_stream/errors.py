"""The error tree, and the one table that turns an error into an OTLP status.

::

    AuditStreamError
    ├── ConfigError            permanent: bad settings or policy; refuse to start
    ├── TopicLayoutError       permanent: topics missing or not co-partitioned; refuse to start
    ├── InvalidPayload         permanent: the client sent something we cannot parse (400 / INVALID_ARGUMENT)
    ├── Unauthenticated        permanent until the client fixes its token (401 / UNAUTHENTICATED)
    ├── PayloadTooLarge        permanent for this payload (413 / RESOURCE_EXHAUSTED without RetryInfo)
    ├── Overloaded             retryable: in-flight bytes at their bound (429 / RESOURCE_EXHAUSTED + RetryInfo)
    └── KafkaUnavailable       retryable: Kafka did not acknowledge in time (503 / UNAVAILABLE)

``retryable`` says whether the same request may succeed later; OTLP exporters retry exactly the
statuses mapped from retryable errors (OTLP spec, "Failures"), so nothing we refuse while Kafka is
down is lost as long as the exporter keeps it.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "AuditStreamError",
    "ConfigError",
    "InvalidPayload",
    "KafkaUnavailable",
    "OtlpStatus",
    "Overloaded",
    "PayloadTooLarge",
    "TopicLayoutError",
    "Unauthenticated",
    "otlp_status",
]


class AuditStreamError(Exception):
    """Base of every error audit-stream raises on purpose."""

    retryable: bool = False


class ConfigError(AuditStreamError):
    """A setting, flag or policy file is invalid. The message names it and what would be accepted."""


class TopicLayoutError(AuditStreamError):
    """Topics are missing or laid out so the join cannot work (e.g. not co-partitioned)."""


class InvalidPayload(AuditStreamError):
    """The request body cannot be decoded as OTLP."""


class Unauthenticated(AuditStreamError):
    """Missing or wrong bearer token."""


class PayloadTooLarge(AuditStreamError):
    """The request body (compressed or decompressed) exceeds the configured limit."""


class Overloaded(AuditStreamError):
    """Accepting this request would exceed the in-flight bound; try again shortly."""

    retryable = True

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class KafkaUnavailable(AuditStreamError):
    """Kafka did not acknowledge the records in time; nothing was acknowledged to the client."""

    retryable = True

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class OtlpStatus:
    """How an error is answered on each transport."""

    grpc_code: str  # grpc.StatusCode member name
    http_status: int
    retry_after: float | None  # seconds; sent as RetryInfo / Retry-After when set


def otlp_status(exc: AuditStreamError) -> OtlpStatus:
    """The single mapping from our errors to OTLP/gRPC and OTLP/HTTP answers."""
    retry_after = getattr(exc, "retry_after", None)
    if isinstance(exc, InvalidPayload):
        return OtlpStatus("INVALID_ARGUMENT", 400, None)
    if isinstance(exc, Unauthenticated):
        return OtlpStatus("UNAUTHENTICATED", 401, None)
    if isinstance(exc, PayloadTooLarge):
        # Without RetryInfo the exporter treats RESOURCE_EXHAUSTED as permanent (OTLP spec).
        return OtlpStatus("RESOURCE_EXHAUSTED", 413, None)
    if isinstance(exc, Overloaded):
        return OtlpStatus("RESOURCE_EXHAUSTED", 429, retry_after)
    if isinstance(exc, KafkaUnavailable):
        return OtlpStatus("UNAVAILABLE", 503, retry_after)
    return OtlpStatus("INTERNAL", 500, None)
