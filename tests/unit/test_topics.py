import pytest

from audit_stream.config import TopicSettings
from audit_stream.errors import TopicLayoutError
from audit_stream.topics import check_copartitioned, topic_specs


def test_every_topic_declared_once() -> None:
    t = TopicSettings()
    names = [s.name for s in topic_specs(t)]
    assert names == ["mesh.logs", "mesh.spans", "audit.events", "audit.siem", "audit.deadletter"]
    assert {s.partitions for s in topic_specs(t) if s.name.startswith("mesh.")} == {t.partitions}


def test_copartition_ok() -> None:
    check_copartitioned({"mesh.spans": 6, "mesh.logs": 6}, TopicSettings())


def test_copartition_mismatch_says_how_to_fix() -> None:
    with pytest.raises(TopicLayoutError) as err:
        check_copartitioned({"mesh.spans": 6, "mesh.logs": 3}, TopicSettings())
    msg = str(err.value)
    assert "mesh.spans has 6 partitions but mesh.logs has 3" in msg
    assert "--partitions 6" in msg


def test_missing_topic() -> None:
    with pytest.raises(TopicLayoutError, match="mesh.logs do not exist"):
        check_copartitioned({"mesh.spans": 6, "mesh.logs": None}, TopicSettings())
