"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest

from audit_stream.config import TopicSettings
from tests.conftest import ROOT
from tests.support import cli, topic_env


@pytest.fixture
def pipeline_env(kafka_bootstrap: str, topic_settings: TopicSettings) -> dict[str, str]:
    """Topics created, a short join window (fast tests) and the example retention policy."""
    env = {
        **topic_env(kafka_bootstrap, topic_settings),
        "AUDIT_STREAM_JOIN_WINDOW_SECONDS": "2",
        "AUDIT_STREAM_JOIN_GRACE_SECONDS": "0.5",
        "AUDIT_STREAM_JOIN_MAX_HOLD_SECONDS": "4",
        "AUDIT_STREAM_RETENTION_POLICY": str(ROOT / "config" / "retention-policy.example.yaml"),
    }
    created = cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    return env
