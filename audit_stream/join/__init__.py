"""The join: access logs + spans -> audit events. Pure; no Faust, no I/O.

``Correlator`` (one per partition) pairs records and says which Kafka messages are finished;
``AckTracker`` turns that into per-message acknowledgements; ``build_event`` and ``decide`` make
the audit event and its access decision.
"""

from audit_stream.join.acks import AckTracker
from audit_stream.join.authz import decide
from audit_stream.join.correlator import Correlator, Counters, JoinConfig, Resolution
from audit_stream.join.event import build_event

__all__ = [
    "AckTracker",
    "Correlator",
    "Counters",
    "JoinConfig",
    "Resolution",
    "build_event",
    "decide",
]
