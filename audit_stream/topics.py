"""Every topic audit-stream reads or writes, declared once, and the co-partitioning rule.

The join keeps each request's halves on one worker only because ``mesh.spans`` and ``mesh.logs``
are co-partitioned: same key (trace id, lowercase hex), same partition count, same partitioner
(Kafka's murmur2). Keys and partitioner are ours to guarantee; the partition count is the
operator's, so :func:`check_copartitioned` refuses to start on a mismatch and says how to fix it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from audit_stream.config import TopicSettings
from audit_stream.errors import TopicLayoutError

__all__ = ["TopicSpec", "check_copartitioned", "class_topic_specs", "topic_specs"]

_DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What a topic holds and how it must be laid out."""

    name: str
    partitions: int
    replication_factor: int
    key: str  # what the message key is
    schema: str  # the JSON Schema of a record (file under schemas/)
    retention_ms: int
    description: str

    def configs(self) -> dict[str, str]:
        return {"retention.ms": str(self.retention_ms), "cleanup.policy": "delete"}


def topic_specs(t: TopicSettings) -> list[TopicSpec]:
    """The topics of one deployment, in pipeline order."""
    rf = t.replication_factor
    return [
        TopicSpec(
            t.logs,
            t.partitions,
            rf,
            "trace id of the first record (lowercase hex); null if none",
            "mesh_log.v1.json",
            7 * _DAY_MS,
            "access-log records from the mesh, packed per partition",
        ),
        TopicSpec(
            t.spans,
            t.partitions,
            rf,
            "trace id of the first record (lowercase hex)",
            "mesh_span.v1.json",
            7 * _DAY_MS,
            "spans from the mesh, packed per partition",
        ),
        TopicSpec(
            t.events,
            t.partitions,
            rf,
            "trace id (lowercase hex); null for uncorrelated requests",
            "audit_event.v1.json",
            30 * _DAY_MS,
            "one audit event per request, before SIEM mapping",
        ),
        TopicSpec(
            t.siem,
            t.partitions,
            rf,
            "event id",
            "siem_*.json",
            90 * _DAY_MS,
            "redacted, retention-tagged events in the SIEM format",
        ),
        TopicSpec(
            t.deadletter,
            1,
            rf,
            "none (origin in headers)",
            "-",
            30 * _DAY_MS,
            "records that could not be processed; error and origin in headers",
        ),
    ]


def class_topic_specs(t: TopicSettings, retention_ms: Mapping[str, int]) -> list[TopicSpec]:
    """One SIEM topic per retention class (``<siem>.<class>``) whose ``retention.ms`` is the
    class's, so Kafka itself deletes records when their retention tag says (``-1``: keep)."""
    return [
        TopicSpec(
            f"{t.siem}.{cls}",
            t.partitions,
            t.replication_factor,
            "event id",
            "siem_*.json",
            ms,
            f"SIEM records of retention class {cls}",
        )
        for cls, ms in sorted(retention_ms.items())
    ]


def check_copartitioned(partitions: Mapping[str, int | None], t: TopicSettings) -> None:
    """Raise :class:`TopicLayoutError` unless spans and logs exist with equal partition counts.

    ``partitions`` maps topic name to its partition count as the cluster reports it (``None`` or
    absent when the topic does not exist).
    """
    spans, logs = partitions.get(t.spans), partitions.get(t.logs)
    missing = [name for name, n in ((t.spans, spans), (t.logs, logs)) if not n]
    if missing:
        raise TopicLayoutError(
            f"topic(s) {', '.join(missing)} do not exist; create them with "
            f"`audit-stream topics create` (partitions: {t.partitions})"
        )
    if spans != logs:
        raise TopicLayoutError(
            f"{t.spans} has {spans} partitions but {t.logs} has {logs}: the join needs both "
            "halves of a request on the same partition number, so the topics must be "
            "co-partitioned. Add partitions to the smaller one "
            f"(kafka-topics.sh --alter --topic <name> --partitions {max(spans or 0, logs or 0)}), "
            "then restart the receivers so new records are placed with the new count. Records "
            "already written stay where they are and may be reported log_only/span_only."
        )
