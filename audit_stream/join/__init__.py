"""The join: access logs + spans -> audit events. Pure; no Faust, no I/O.

``Correlator`` (one per partition) pairs records and says which Kafka messages are finished;
``AckTracker`` turns that into per-message acknowledgements; ``build_event`` and ``decide`` make
the audit event and its access decision; ``request_event_id`` is the event id of a request at one
proxy hop (the id consumers dedupe on).
"""

from audit_stream.join.acks import AckTracker
from audit_stream.join.authz import decide
from audit_stream.join.correlator import Correlator, Counters, JoinConfig, Resolution
from audit_stream.join.event import build_event, request_event_id

__all__ = [
    "AckTracker",
    "Correlator",
    "Counters",
    "JoinConfig",
    "Resolution",
    "build_event",
    "decide",
    "request_event_id",
]
