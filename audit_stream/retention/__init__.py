"""Retention stage: load the user's policy once, tag every audit event with its retention class.

Example
    >>> policy = DEFAULT_POLICY
    >>> policy.tag(event)["class"]  # doctest: +SKIP
    'security'
"""

from audit_stream.retention.policy import (
    DEFAULT_POLICY,
    PolicyError,
    RetentionPolicy,
    Rule,
    class_retention_ms,
    class_topic,
    load_policy,
    load_policy_file,
)

__all__ = [
    "DEFAULT_POLICY",
    "PolicyError",
    "RetentionPolicy",
    "Rule",
    "class_retention_ms",
    "class_topic",
    "load_policy",
    "load_policy_file",
]
