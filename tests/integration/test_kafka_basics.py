"""Against the real broker: round-trip, idempotent topic creation, co-partition check."""

from __future__ import annotations

import subprocess
import sys

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.structs import ConsumerRecord

from audit_stream.config import KafkaSettings, TopicSettings
from audit_stream.errors import TopicLayoutError
from audit_stream.kafka.admin import create_topics, partition_counts
from audit_stream.kafka.partitioner import partition_for
from audit_stream.kafka.publisher import Publisher
from audit_stream.topics import check_copartitioned, topic_specs
from tests.conftest import CreateTopic, unique

pytestmark = pytest.mark.integration


async def _read_all(
    kafka: KafkaSettings, topic: str, count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first ``count`` records of ``topic``, read from the beginning by a fresh group."""
    consumer = AIOKafkaConsumer(
        topic, **kafka.client_kwargs(), auto_offset_reset="earliest", group_id=unique("g")
    )
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    try:
        while len(got) < count:
            batch = await consumer.getmany(timeout_ms=5000)
            assert batch, "no records within 5 s"
            for records in batch.values():
                got.extend(records)
    finally:
        await consumer.stop()
    return got


async def test_produce_consume_round_trip_lands_on_murmur2_partition(
    kafka_settings: KafkaSettings, create_topic: CreateTopic
) -> None:
    topic = unique("rt")
    await create_topic(topic, 6)
    producer = AIOKafkaProducer(
        **kafka_settings.client_kwargs(), acks="all", enable_idempotence=True
    )
    await producer.start()
    keys = [f"{i:032x}".encode() for i in range(1, 40)]
    try:
        metas = [await producer.send_and_wait(topic, key=k, value=b"v" + k) for k in keys]
    finally:
        await producer.stop()
    # The broker-side placement is what our own partitioner predicts.
    assert [m.partition for m in metas] == [partition_for(k, 6) for k in keys]

    got = await _read_all(kafka_settings, topic, len(keys))
    assert {r.key: r.value for r in got} == {k: b"v" + k for k in keys}


async def test_send_grouped_places_group_g_on_partition_g_modulo_the_count(
    kafka_settings: KafkaSettings, create_topic: CreateTopic
) -> None:
    """The worker keeps an event on its mesh input's partition number; an output topic with
    fewer partitions wraps it around, and Kafka acknowledges every record."""
    topic = unique("grouped")
    await create_topic(topic, 3)
    publisher = Publisher(kafka_settings)
    await publisher.start(wait=True)
    groups = {g: [(f"k{g}-{i}".encode(), f"v{g}-{i}".encode(), [("h", b"1")]) for i in range(3)]
              for g in range(6)}  # fmt: skip
    try:
        await publisher.send_grouped(topic, groups)
    finally:
        await publisher.stop()
    got = await _read_all(kafka_settings, topic, 18)
    assert {r.key: r.partition for r in got} == {
        f"k{g}-{i}".encode(): g % 3 for g in range(6) for i in range(3)
    }


async def test_topic_creation_is_idempotent(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    specs = topic_specs(topic_settings)
    first = await create_topics(kafka_settings, specs)
    second = await create_topics(kafka_settings, specs)
    assert all(r.created for r in first)
    assert not any(r.created for r in second)
    assert [r.partitions for r in second] == [s.partitions for s in specs]
    counts = await partition_counts(kafka_settings, [s.name for s in specs])
    check_copartitioned(counts, topic_settings)


async def test_copartition_check_rejects_a_real_mismatch(
    kafka_settings: KafkaSettings, topic_settings: TopicSettings, create_topic: CreateTopic
) -> None:
    await create_topic(topic_settings.spans, 4)
    await create_topic(topic_settings.logs, 2)
    counts = await partition_counts(kafka_settings, [topic_settings.spans, topic_settings.logs])
    with pytest.raises(TopicLayoutError, match="has 4 partitions but .* has 2"):
        check_copartitioned(counts, topic_settings)


def test_cli_topics_create_then_check_and_mismatch(
    kafka_bootstrap: str, topic_settings: TopicSettings
) -> None:
    env = {
        "AUDIT_STREAM_KAFKA_BOOTSTRAP": kafka_bootstrap,
        "AUDIT_STREAM_TOPIC_SPANS": topic_settings.spans,
        "AUDIT_STREAM_TOPIC_LOGS": topic_settings.logs,
        "AUDIT_STREAM_TOPIC_EVENTS": topic_settings.events,
        "AUDIT_STREAM_TOPIC_SIEM": topic_settings.siem,
        "AUDIT_STREAM_TOPIC_DEADLETTER": topic_settings.deadletter,
        "PATH": "/usr/bin:/bin",
    }

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "audit_stream.cli", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    created = run("topics", "create", "--partitions", "3")
    assert created.returncode == 0, created.stderr
    assert created.stdout.count("created") == 5
    again = run("topics", "create")
    assert again.returncode == 0 and again.stdout.count("exists") == 5
    # Pointing the logs topic at one with another partition count must refuse to start.
    env["AUDIT_STREAM_TOPIC_LOGS"] = topic_settings.logs + ".other"
    env["AUDIT_STREAM_PARTITIONS"] = "2"
    assert run("topics", "create").returncode == 2
    mismatch = run("topics", "check")
    assert mismatch.returncode == 2
    assert "co-partitioned" in mismatch.stderr


def test_cli_version_and_bad_config() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "audit_stream.cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert out.returncode == 0 and out.stdout.startswith("audit-stream ")
    bad = subprocess.run(
        [sys.executable, "-m", "audit_stream.cli", "topics", "check"],
        env={"AUDIT_STREAM_PARTITIONS": "x", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2
    assert "AUDIT_STREAM_PARTITIONS: expected an integer" in bad.stderr


async def test_topic_per_class_creates_one_topic_per_retention_class(
    kafka_bootstrap: str, kafka_settings: KafkaSettings, topic_settings: TopicSettings
) -> None:
    from aiokafka.admin import AIOKafkaAdminClient
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

    from tests.support import cli, topic_env

    env = {**topic_env(kafka_bootstrap, topic_settings), "AUDIT_STREAM_TOPIC_PER_CLASS": "true"}
    out = cli(env, "topics", "create")
    assert out.returncode == 0, out.stderr
    standard, security = f"{topic_settings.siem}.standard", f"{topic_settings.siem}.security"
    assert standard in out.stdout and security in out.stdout
    admin = AIOKafkaAdminClient(**kafka_settings.client_kwargs())
    await admin.start()
    try:
        resp = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, security, {"retention.ms": None})]
        )
    finally:
        await admin.close()
    entries = {e[0]: e[1] for e in resp[0].resources[0][4]}
    assert entries["retention.ms"] == str(2555 * 86_400_000)  # the default policy's security class
