"""AckTracker: a message is acknowledged once, exactly when its last record is resolved."""

from __future__ import annotations

import random

import pytest

from audit_stream.join.acks import AckTracker


def test_message_is_done_on_its_last_record_only() -> None:
    acks = AckTracker()
    assert acks.track(("mesh.logs", 0, 10), 3) is False
    assert [acks.done(("mesh.logs", 0, 10)) for _ in range(3)] == [False, False, True]
    assert acks.pending_messages == 0
    assert acks.outstanding(("mesh.logs", 0, 10)) == 0


def test_empty_message_is_done_at_once_and_not_tracked() -> None:
    acks = AckTracker()
    assert acks.track("m", 0) is True
    assert acks.pending_messages == 0
    with pytest.raises(KeyError):
        acks.done("m")


def test_messages_are_counted_independently() -> None:
    acks = AckTracker()
    acks.track("a", 2)
    acks.track("b", 1)
    assert acks.done("a") is False
    assert acks.done("b") is True
    assert acks.outstanding("a") == 1
    assert acks.pending_messages == 1
    assert acks.done("a") is True


def test_resolving_more_records_than_tracked_raises() -> None:
    acks = AckTracker()
    acks.track("a", 1)
    assert acks.done("a") is True
    with pytest.raises(KeyError):
        acks.done("a")


def test_invalid_tracking_is_refused() -> None:
    acks = AckTracker()
    with pytest.raises(ValueError, match=">= 0"):
        acks.track("a", -1)
    acks.track("a", 2)
    with pytest.raises(ValueError, match="already tracked"):
        acks.track("a", 1)
    assert acks.outstanding("a") == 2


def test_a_reference_can_be_tracked_again_after_it_is_done() -> None:
    acks = AckTracker()
    acks.track("a", 1)
    acks.done("a")
    assert acks.track("a", 2) is False
    assert acks.outstanding("a") == 2


def test_clear_forgets_everything() -> None:
    acks = AckTracker()
    acks.track("a", 2)
    acks.track("b", 3)
    acks.clear()
    assert acks.pending_messages == 0
    with pytest.raises(KeyError):
        acks.done("a")


def test_random_resolution_order_acks_each_message_exactly_once() -> None:
    rng = random.Random(11)
    acks = AckTracker()
    sizes = {f"m{i}": rng.randint(0, 6) for i in range(200)}
    acked = [ref for ref, n in sizes.items() if acks.track(ref, n)]
    records = [ref for ref, n in sizes.items() for _ in range(n)]
    rng.shuffle(records)
    for position, ref in enumerate(records):
        if acks.done(ref):
            acked.append(ref)
            # Acked exactly when no record of this message is left to resolve.
            assert ref not in records[position + 1 :]
    assert sorted(acked) == sorted(sizes)
    assert acks.pending_messages == 0
