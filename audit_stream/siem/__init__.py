"""SIEM output stage: redaction, then mapping to OCSF, ECS or the native audit event.

Order in the pipeline: ``RetentionPolicy.tag`` -> ``Redactor.redact_event`` -> ``mapper_for(fmt)``.
Mappers are pure functions of one (already redacted) audit event.

Example
    >>> to_siem = mapper_for("ocsf")
    >>> redacted, _ = Redactor().redact_event(event)  # doctest: +SKIP
    >>> to_siem(redacted)["class_uid"]  # doctest: +SKIP
    4002
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Literal

from audit_stream.models.records import AuditEvent
from audit_stream.siem.ecs import ECS_VERSION, to_ecs
from audit_stream.siem.ocsf import OCSF_VERSION, to_ocsf
from audit_stream.siem.redact import MASK, Redactor

__all__ = [
    "ECS_VERSION",
    "MASK",
    "OCSF_VERSION",
    "Mapper",
    "Redactor",
    "SiemFormat",
    "mapper_for",
    "to_ecs",
    "to_native",
    "to_ocsf",
]

SiemFormat = Literal["ocsf", "ecs", "native"]
Mapper = Callable[[AuditEvent], Mapping[str, object]]


def to_native(event: AuditEvent) -> AuditEvent:
    """The audit event itself (``schemas/audit_event.v1.json``), for sinks that want it as is."""
    return event


_MAPPERS: dict[str, Mapper] = {"ocsf": to_ocsf, "ecs": to_ecs, "native": to_native}


def mapper_for(fmt: SiemFormat) -> Mapper:
    """The mapping function for ``fmt``; ``ValueError`` for an unknown format."""
    try:
        return _MAPPERS[fmt]
    except KeyError:
        raise ValueError(
            f"unknown SIEM format {fmt!r} (expected one of: ocsf, ecs, native)"
        ) from None
