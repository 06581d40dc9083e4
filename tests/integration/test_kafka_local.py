"""scripts/kafka-local: idempotent start/stop and clear refusals."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import TEST_KAFKA_PORT, kafka_local
from tests.support import free_port

pytestmark = pytest.mark.integration


def test_second_start_and_status_report_the_running_broker(kafka_bootstrap: str) -> None:
    if kafka_bootstrap != f"127.0.0.1:{TEST_KAFKA_PORT}":
        pytest.skip("the broker under test was not started by scripts/kafka-local")
    again = kafka_local("start")
    assert again.returncode == 0
    assert "already running" in again.stdout
    status = kafka_local("status")
    assert status.returncode == 0 and "running on 127.0.0.1" in status.stdout


def test_stop_when_not_running_is_harmless() -> None:
    port = free_port()
    for _ in range(2):
        out = kafka_local("stop", port=port)
        assert out.returncode == 0
        assert "not running" in out.stdout
    assert kafka_local("status", port=port).returncode == 3


def test_start_on_a_port_in_use_is_refused_with_a_message() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = kafka_local("start", port=port)
    assert out.returncode == 1
    assert f"port {port} on 127.0.0.1 is already in use" in out.stderr
    assert "--port" in out.stderr
