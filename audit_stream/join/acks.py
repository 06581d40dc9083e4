"""Count a Kafka message's records until all are resolved, so its offset is committed only then.

Requirements: a message (one batch of records) may be acknowledged only when every record in it
has been emitted or dropped; after a crash the unacknowledged messages are read again and their
records re-joined. Pure and O(1) per call.

How it works: ``track`` stores how many records of a message are outstanding; each resolution
calls ``done`` once per record (the correlator's ``Resolution.origins`` lists one origin per
resolved record); ``done`` returns True exactly once, when the last record of the message is
resolved. Call ``track`` before handing the message's records to the correlator, because adding
a record can resolve it at once.

Example::

    >>> acks = AckTracker()
    >>> acks.track("logs-3@120", 2)
    False
    >>> acks.done("logs-3@120"), acks.done("logs-3@120")
    (False, True)
    >>> acks.track("logs-3@121", 0)   # nothing to wait for: ack at once
    True
"""

from __future__ import annotations

from collections.abc import Hashable

__all__ = ["AckTracker"]


class AckTracker:
    """Outstanding record counts per message reference (any hashable, e.g. (tp, offset))."""

    __slots__ = ("_outstanding",)

    def __init__(self) -> None:
        self._outstanding: dict[Hashable, int] = {}

    def track(self, message_ref: Hashable, n_records: int) -> bool:
        """Start waiting for ``n_records`` resolutions; True when there is nothing to wait for.

        Raises ValueError for a negative count or a reference that is still being tracked (two
        messages sharing a reference would ack each other's records).
        """
        if n_records < 0:
            raise ValueError(f"n_records must be >= 0, got {n_records}")
        if message_ref in self._outstanding:
            raise ValueError(f"message {message_ref!r} is already tracked")
        if n_records == 0:
            return True
        self._outstanding[message_ref] = n_records
        return False

    def done(self, message_ref: Hashable) -> bool:
        """Record one resolved record of the message; True when it was the last one.

        Raises KeyError for a message that is not tracked: resolving a record twice, or one of a
        message never tracked, would otherwise commit an offset past unfinished work.
        """
        left = self._outstanding[message_ref] - 1
        if left:
            self._outstanding[message_ref] = left
            return False
        del self._outstanding[message_ref]
        return True

    def outstanding(self, message_ref: Hashable) -> int:
        """Records of the message not yet resolved (0 when not tracked)."""
        return self._outstanding.get(message_ref, 0)

    @property
    def pending_messages(self) -> int:
        """Messages with at least one unresolved record."""
        return len(self._outstanding)

    def clear(self) -> None:
        """Forget every message, e.g. when the partition is revoked and will be re-read."""
        self._outstanding.clear()
