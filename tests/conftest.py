"""Shared fixtures: a real Kafka broker per test session, unique topics, client factories."""

from __future__ import annotations

import asyncio
import importlib.abc
import importlib.machinery
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _prefer_sources(root: Path) -> None:
    """Import this checkout's modules from their ``.py`` files even where ``scripts/build-native``
    left compiled extension modules beside them, so one tree tests both builds
    (``AUDIT_STREAM_PURE=1``). Paths outside the package keep the normal finders."""
    package = str(root / "audit_stream")
    sources = importlib.machinery.FileFinder.path_hook(
        (importlib.machinery.SourceFileLoader, importlib.machinery.SOURCE_SUFFIXES)
    )

    def hook(path: str) -> importlib.abc.PathEntryFinder:
        if path == package or path.startswith(package + os.sep):
            return sources(path)
        raise ImportError  # not ours: the next hook decides

    sys.path_hooks.insert(0, hook)
    sys.path_importer_cache.clear()


if os.environ.get("AUDIT_STREAM_PURE") == "1":
    _prefer_sources(ROOT)

from audit_stream.config import KafkaSettings, TopicSettings  # noqa: E402

FIXTURES = Path(__file__).resolve().parent / "fixtures"
TEST_KAFKA_PORT = int(os.environ.get("AUDIT_STREAM_TEST_KAFKA_PORT", "39092"))


def kafka_local(*args: str, port: int = TEST_KAFKA_PORT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "kafka-local"), *args, "--port", str(port)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> Iterator[str]:
    """A running broker: the one at AUDIT_STREAM_KAFKA_BOOTSTRAP, else one we start and stop."""
    given = os.environ.get("AUDIT_STREAM_KAFKA_BOOTSTRAP")
    if given:
        yield given
        return
    was_running = kafka_local("status").returncode == 0
    started = kafka_local("start")
    assert started.returncode == 0, f"could not start Kafka:\n{started.stdout}\n{started.stderr}"
    try:
        yield f"127.0.0.1:{TEST_KAFKA_PORT}"
    finally:
        if not was_running:
            kafka_local("stop")


@pytest.fixture(scope="session")
def kafka_settings(kafka_bootstrap: str) -> KafkaSettings:
    return KafkaSettings(bootstrap=kafka_bootstrap)


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def topic_settings() -> TopicSettings:
    """Topic names no other test uses, so tests never see each other's records."""
    p = unique("it")
    return TopicSettings(
        spans=f"{p}.mesh.spans",
        logs=f"{p}.mesh.logs",
        events=f"{p}.audit.events",
        siem=f"{p}.audit.siem",
        deadletter=f"{p}.audit.deadletter",
        partitions=3,
    )


CreateTopic = Callable[[str, int], Awaitable[None]]


@pytest.fixture
async def create_topic(kafka_settings: KafkaSettings) -> AsyncIterator[CreateTopic]:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(**kafka_settings.client_kwargs())
    await admin.start()

    async def create(name: str, partitions: int) -> None:
        await admin.create_topics([NewTopic(name, partitions, 1)])
        # Metadata propagates asynchronously even on one broker; wait until it is visible.
        for _ in range(100):
            if name in await admin.list_topics():
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"topic {name} did not appear")

    yield create
    await admin.close()


@pytest.fixture(autouse=True)
def _reap_processes() -> Iterator[None]:
    """Kill any receiver or worker a test started and did not stop (e.g. after a failure)."""
    yield
    from tests.support import reap

    reap()
