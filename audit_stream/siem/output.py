"""The last pure step before Kafka: retention tag -> redact -> map -> bytes + headers.

One audit event becomes one SIEM record (one Kafka message per event, keyed by event id, as SIEM
connectors expect) and one native, already redacted event for ``audit.events``. Secrets are removed
before any byte leaves, so neither topic ever holds them: the native event is encoded once, the
redactor's pre-check reads that encoding, and only an event with something to mask is encoded
again after redaction.
"""

from __future__ import annotations

from typing import NamedTuple

import orjson

from audit_stream.models.records import AuditEvent
from audit_stream.retention.policy import RetentionPolicy, class_topic
from audit_stream.siem import Redactor, SiemFormat, mapper_for

__all__ = ["AuditOutput", "Rendered"]

Header = tuple[str, bytes]
Headers = list[Header]


class Rendered(NamedTuple):
    """One event ready for Kafka (a tuple: built once per event, cheaper than a frozen dataclass)."""

    siem_topic: str
    key: bytes  # event id
    siem_value: bytes
    headers: Headers
    event_value: bytes  # the redacted, tagged native event (for audit.events)
    trace_id: str | None
    redactions: int
    partition: int  # the mesh input partition the event came from (placement of its outputs)
    correlation: str  # joined, log_only or span_only (for counters)


class AuditOutput:
    """Renders audit events for the SIEM topic(s).

    Example::

        >>> out = AuditOutput(DEFAULT_POLICY, Redactor(), "ocsf", "audit.siem")
        >>> r = out.render(event)  # doctest: +SKIP
        >>> dict(r.headers)["retention-class"]  # doctest: +SKIP
        b'security'
    """

    def __init__(
        self,
        policy: RetentionPolicy,
        redactor: Redactor,
        fmt: SiemFormat,
        siem_topic: str,
        topic_per_class: bool = False,
    ) -> None:
        self._policy = policy
        self._redactor = redactor
        self._map = mapper_for(fmt)
        self._native = fmt == "native"  # the SIEM record is the native encoding itself
        self._fmt = fmt.encode() if isinstance(fmt, str) else b"ocsf"
        self._siem_topic = siem_topic
        self._per_class = topic_per_class
        self._topics: dict[str, str] = {}
        self._by_outcome: dict[tuple[object, object, object], tuple[str, tuple[Header, ...]]] = {}

    def topic_for(self, cls: str) -> str:
        if not self._per_class:
            return self._siem_topic
        topic = self._topics.get(cls)
        if topic is None:
            topic = self._topics[cls] = class_topic(self._siem_topic, cls)
        return topic

    def render(self, event: AuditEvent, partition: int = 0) -> Rendered:
        event["retention"] = self._policy.tag(event)
        encoded = orjson.dumps(event)
        redacted, n = self._redactor.redact_event(event, encoded)
        if n:
            encoded = orjson.dumps(redacted)
        retention = redacted["retention"] if "retention" in redacted else event["retention"]
        # Per retention outcome, the topic and the first three headers (a handful of rules).
        outcome = (retention["class"], retention["days"], retention.get("legal_hold"))
        cached = self._by_outcome.get(outcome)
        if cached is None:
            cls = str(retention["class"])
            cached = self._by_outcome[outcome] = (
                self.topic_for(cls),
                (
                    ("retention-class", cls.encode()),
                    ("retention-days", str(retention["days"]).encode()),
                    ("legal-hold", b"true" if retention.get("legal_hold") else b"false"),
                ),
            )
        topic, (h_class, h_days, h_hold) = cached
        key = redacted["event_id"].encode()
        headers: Headers = [
            h_class,
            h_days,
            h_hold,
            ("event-id", key),
            ("content-format", self._fmt),
        ]
        return Rendered(
            siem_topic=topic,
            key=key,
            siem_value=encoded if self._native else orjson.dumps(self._map(redacted)),
            headers=headers,
            event_value=encoded,
            trace_id=redacted["trace"].get("trace_id"),
            redactions=n,
            partition=partition,
            correlation=event["correlation"],
        )
