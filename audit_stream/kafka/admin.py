"""Topic administration against a live cluster: create idempotently, read partition counts."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from audit_stream.config import KafkaSettings
from audit_stream.errors import TopicLayoutError
from audit_stream.topics import TopicSpec

__all__ = ["TopicResult", "create_topics", "partition_counts"]

_TOPIC_ALREADY_EXISTS = 36


@dataclass(frozen=True, slots=True)
class TopicResult:
    name: str
    created: bool  # False: it existed already
    partitions: int


def _admin(kafka: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**kafka.client_kwargs())


async def partition_counts(kafka: KafkaSettings, names: Iterable[str]) -> dict[str, int | None]:
    """Partition count of each topic, ``None`` for topics that do not exist."""
    admin = _admin(kafka)
    await admin.start()
    try:
        return await _counts(admin, list(names))
    finally:
        await admin.close()


async def _counts(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, int | None]:
    existing = set(await admin.list_topics())
    wanted = [n for n in names if n in existing]
    out: dict[str, int | None] = {n: None for n in names}
    if wanted:
        for desc in await admin.describe_topics(wanted):
            if desc.get("error_code", 0) == 0:
                out[desc["topic"]] = len(desc["partitions"])
    return out


async def create_topics(kafka: KafkaSettings, specs: Sequence[TopicSpec]) -> list[TopicResult]:
    """Create the topics that do not exist; existing ones are left alone and reported.

    Idempotent: running it twice creates nothing the second time. An existing topic with fewer
    partitions than declared is not altered (that would move keys between partitions); the
    co-partitioning check decides whether the layout still works.
    """
    admin = _admin(kafka)
    await admin.start()
    try:
        before = await _counts(admin, [s.name for s in specs])
        new = [
            NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.configs())
            for s in specs
            if before[s.name] is None
        ]
        if new:
            resp = await admin.create_topics(new, timeout_ms=30_000)
            for name, code, *rest in getattr(resp, "topic_errors", getattr(resp, "topics", [])):
                if code not in (0, _TOPIC_ALREADY_EXISTS):
                    msg = rest[0] if rest else ""
                    raise TopicLayoutError(f"creating topic {name} failed: error {code} {msg}")
        # Creation returns before every broker's metadata shows the topics; wait until it does, so
        # the co-partitioning check that usually follows sees them.
        after = await _counts(admin, [s.name for s in specs])
        for _ in range(100):
            if all(after[s.name] for s in specs):
                break
            await asyncio.sleep(0.1)
            after = await _counts(admin, [s.name for s in specs])
    finally:
        await admin.close()
    return [TopicResult(s.name, before[s.name] is None, after[s.name] or 0) for s in specs]
