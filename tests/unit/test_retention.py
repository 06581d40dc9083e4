"""Retention policy: parsing, validation messages, matching semantics and tagging."""

from __future__ import annotations

import copy
import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from audit_stream.retention import (
    DEFAULT_POLICY,
    PolicyError,
    class_retention_ms,
    class_topic,
    load_policy,
    load_policy_file,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "config" / "retention-policy.example.yaml"
AUDIT_SCHEMA = json.loads((ROOT / "schemas" / "audit_event.v1.json").read_text())

# 2026-10-09T07:54:53.132Z, the time of the RBAC-denial fixture
T0 = 1_791_532_493_132_000_000


def make_event(**overrides: Any) -> Any:
    event: dict[str, Any] = {
        "schema": "audit_event.v1",
        "event_id": "5f0c6d0a3b2e4f1a9c8d7e6f5a4b3c2d",
        "time": "2026-10-09T07:54:53.132000000Z",
        "time_unix_nano": T0,
        "correlation": "joined",
        "source": {"principal": "spiffe://cluster.local/ns/shop/sa/frontend", "namespace": "shop"},
        "destination": {"service": "cart.shop.svc.cluster.local", "namespace": "shop"},
        "request": {"method": "GET", "path": "/cart/42", "protocol": "HTTP/1.1"},
        "response": {"status_code": 200, "duration_ms": 3},
        "authorization": {"decision": "allow"},
        "user": {},
        "trace": {"trace_id": "422a513f9dd13cdca4b291187d65ec69", "span_id": "61d22fad2b80d1dd"},
        "mesh": {"proxy": "envoy", "kind": "sidecar"},
    }
    for dotted, value in overrides.items():
        head, _, tail = dotted.partition("__")
        if tail:
            event[head][tail] = value
        else:
            event[head] = value
    return event


def expected_expiry(time_unix_nano: int, days: int) -> str:
    secs, nanos = divmod(time_unix_nano, 1_000_000_000)
    moment = datetime.fromtimestamp(secs, UTC) + timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos:09d}Z"


# --------------------------------------------------------------------------------------------
# The shipped example and the default


def test_example_file_loads_with_documented_rules() -> None:
    policy = load_policy_file(EXAMPLE)
    assert [r.name for r in policy.rules] == [
        "security-denials",
        "admin-api",
        "pci-namespace",
        "pci-paths",
    ]
    assert (policy.default.cls, policy.default.days) == ("standard", 90)
    by_name = {r.name: (r.cls, r.days) for r in policy.rules}
    assert by_name["security-denials"] == ("security", 2555)
    assert by_name["admin-api"] == ("privileged", 730)
    assert by_name["pci-namespace"] == ("pci", 365)
    assert by_name["pci-paths"] == ("pci", 365)
    assert policy.source == str(EXAMPLE)


@pytest.mark.parametrize(
    ("overrides", "cls", "rule"),
    [
        ({"authorization__decision": "deny"}, "security", "security-denials"),
        # a denied payments request is kept for the longer (security) period
        (
            {"authorization__decision": "deny", "destination__namespace": "payments"},
            "security",
            "security-denials",
        ),
        ({"request__path": "/admin/users"}, "privileged", "admin-api"),
        ({"request__path": "/admin"}, "privileged", "admin-api"),
        ({"request__path": "/admin?page=2"}, "privileged", "admin-api"),
        ({"request__path": "/administrator"}, "standard", "default"),
        ({"destination__namespace": "payments"}, "pci", "pci-namespace"),
        ({"request__path": "/payments/charge"}, "pci", "pci-paths"),
        ({"request__path": "/pay"}, "pci", "pci-paths"),
        ({"request__path": "/api/pay"}, "standard", "default"),
        ({}, "standard", "default"),
    ],
)
def test_example_policy_classifies(overrides: dict[str, Any], cls: str, rule: str) -> None:
    tag = load_policy_file(EXAMPLE).tag(make_event(**overrides))
    assert (tag["class"], tag["rule"]) == (cls, rule)


def test_default_policy() -> None:
    deny = DEFAULT_POLICY.tag(make_event(authorization__decision="deny"))
    assert deny == {
        "class": "security",
        "days": 2555,
        "expires_at": expected_expiry(T0, 2555),
        "legal_hold": False,
        "rule": "security-denials",
    }
    allow = DEFAULT_POLICY.tag(make_event())
    assert (allow["class"], allow["days"], allow["rule"]) == ("standard", 90, "default")
    unknown = DEFAULT_POLICY.tag(make_event(authorization={}))
    assert unknown["class"] == "standard"


def test_tagged_event_validates_against_audit_event_schema() -> None:
    event = make_event(authorization__decision="deny")
    event["retention"] = load_policy_file(EXAMPLE).tag(event)
    jsonschema.validate(event, AUDIT_SCHEMA)
    event["retention"]["days"] = 0
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(event, AUDIT_SCHEMA)


# --------------------------------------------------------------------------------------------
# Matching semantics


def policy_with(match: str, *, extra_rules: str = "") -> Any:
    return load_policy(
        f"""
default: {{class: standard, days: 90}}
rules:
{extra_rules}
  - name: r
    match: {match}
    class: hit
    days: 1
"""
    )


def hits(policy: Any, **overrides: Any) -> bool:
    return bool(policy.tag(make_event(**overrides))["class"] == "hit")


def test_first_match_wins_in_file_order() -> None:
    admin = '{name: admin, match: {request.path: "/admin/*"}, class: privileged, days: 730}'
    shop = "{name: shop, match: {destination.namespace: shop}, class: shop, days: 30}"
    event = make_event(request__path="/admin/x")  # matches both rules
    admin_first = load_policy(f"rules:\n  - {admin}\n  - {shop}\n").tag(event)
    shop_first = load_policy(f"rules:\n  - {shop}\n  - {admin}\n").tag(event)
    assert (admin_first["class"], admin_first["rule"], admin_first["days"]) == (
        "privileged",
        "admin",
        730,
    )
    assert (shop_first["class"], shop_first["rule"], shop_first["days"]) == ("shop", "shop", 30)


def test_all_keys_must_match() -> None:
    policy = policy_with('{request.path: "/admin/*", destination.namespace: [ops, platform]}')
    assert hits(policy, request__path="/admin/x", destination__namespace="ops")
    assert hits(policy, request__path="/admin/x", destination__namespace="platform")
    assert not hits(policy, request__path="/admin/x", destination__namespace="shop")
    assert not hits(policy, request__path="/public", destination__namespace="ops")


@pytest.mark.parametrize(
    ("glob", "path", "expected"),
    [
        ('"/admin/*"', "/admin/a/b/c", True),  # "*" crosses "/"
        ('"/admin/*"', "/Admin/a", False),  # case-sensitive
        ('"/v?/users"', "/v2/users", True),
        ('"/v?/users"', "/v10/users", False),
        ('"/v[12]/*"', "/v1/x", True),
        ('"/v[12]/*"', "/v3/x", False),
        ('"/exact"', "/exact/", False),
        ('"*"', "", True),
        ('["/a/*", "/b/*"]', "/b/1", True),
        ('["/a/*", "/b/*"]', "/c/1", False),
        ('"/files/*.pdf"', "/files/report.pdf", True),
        ('"/files/*.pdf"', "/files/reportXpdf", False),  # "." is literal
        ('"/x+y"', "/x+y", True),  # regex metacharacters are literal
        ('"/x+y"', "/xxy", False),
    ],
)
def test_globs(glob: str, path: str, expected: bool) -> None:
    assert hits(policy_with(f"{{request.path: {glob}}}"), request__path=path) is expected


@pytest.mark.parametrize(
    ("glob", "code", "expected"),
    [
        ('"4*"', 403, True),
        ('"4*"', 503, False),
        ('"403"', 403, True),
        ('["401", "403"]', 401, True),
    ],
)
def test_numbers_compare_as_strings(glob: str, code: int, expected: bool) -> None:
    policy = policy_with(f"{{response.status_code: {glob}}}")
    assert hits(policy, response__status_code=code) is expected


def test_missing_null_and_object_fields_never_match() -> None:
    policy = policy_with('{user.id: "*"}')
    assert hits(policy, user={"id": "alice"})
    assert not hits(policy, user={})  # absent
    assert not hits(policy, user={"id": None})  # null
    assert not hits(policy, user={"id": {"sub": "alice"}})  # object
    assert not hits(policy, user=None)  # parent not an object


def test_top_level_scalar_field() -> None:
    policy = policy_with("{correlation: [log_only, span_only]}")
    assert hits(policy, correlation="log_only")
    assert not hits(policy, correlation="joined")


# --------------------------------------------------------------------------------------------
# Tag contents


@pytest.mark.parametrize(
    ("time_unix_nano", "days"),
    [
        (T0, 90),
        (T0, 2555),
        (1_709_208_000_500_000_001, 1),  # 2024-02-29T12:00:00.500000001Z, leap day, odd nanos
        (1_704_067_199_999_999_999, 365),  # last nanosecond of 2023
        (0, 36_500),
    ],
)
def test_expires_at_is_event_time_plus_days(time_unix_nano: int, days: int) -> None:
    policy = load_policy(f"default: {{class: standard, days: {days}}}")
    tag = policy.tag(make_event(time_unix_nano=time_unix_nano))
    assert tag["expires_at"] == expected_expiry(time_unix_nano, days)
    assert tag["days"] == days


def test_expires_at_known_values() -> None:
    policy = load_policy("default: {class: standard, days: 1}")
    event = make_event(time_unix_nano=1_709_164_800_000_000_000)  # 2024-02-29T00:00:00Z
    assert policy.tag(event)["expires_at"] == "2024-03-01T00:00:00.000000000Z"


def test_tag_is_deterministic_for_replays() -> None:
    event = make_event(authorization__decision="deny")
    first = DEFAULT_POLICY.tag(event)
    time.sleep(0.01)
    assert DEFAULT_POLICY.tag(copy.deepcopy(event)) == first


def test_legal_hold() -> None:
    policy = load_policy(
        """
default: {class: standard, days: 90}
rules:
  - name: case-1234
    match: {source.principal: "spiffe://cluster.local/ns/billing/*"}
    class: hold
    days: 3650
    legal_hold: true
  - name: short-hold
    match: {source.namespace: billing}
    class: hold
    days: 10
"""
    )
    held = policy.tag(make_event(source={"principal": "spiffe://cluster.local/ns/billing/sa/x"}))
    assert (held["legal_hold"], held["class"], held["rule"]) == (True, "hold", "case-1234")
    assert policy.tag(make_event())["legal_hold"] is False
    assert class_retention_ms(policy) == {"standard": 90 * 86_400_000, "hold": -1}


def test_class_retention_ms_takes_longest_rule_per_class() -> None:
    policy = load_policy(
        """
default: {class: standard, days: 30}
rules:
  - {name: a, match: {correlation: log_only}, class: standard, days: 400}
  - {name: b, match: {correlation: span_only}, class: standard, days: 7}
  - {name: c, match: {request.method: DELETE}, class: pci, days: 365}
"""
    )
    assert class_retention_ms(policy) == {"standard": 400 * 86_400_000, "pci": 365 * 86_400_000}


def test_class_retention_ms_default_policy() -> None:
    assert class_retention_ms(DEFAULT_POLICY) == {
        "standard": 90 * 24 * 3600 * 1000,
        "security": 2555 * 24 * 3600 * 1000,
    }


def test_class_topic() -> None:
    assert class_topic("audit.siem", "pci") == "audit.siem.pci"
    with pytest.raises(ValueError, match="invalid retention class"):
        class_topic("audit.siem", "PCI data")


def test_missing_default_and_rules_fall_back() -> None:
    policy = load_policy("rules: []")
    assert (policy.default.cls, policy.default.days, policy.rules) == ("standard", 90, ())
    assert load_policy("rules:\ndefault: {class: x, days: 1}").rules == ()


# --------------------------------------------------------------------------------------------
# Invalid policies: every message names source, line and column


INVALID: list[tuple[str, str, int, str]] = [
    ("bad-yaml", "default: {class: standard, days: 90\nrules: []\n", 2, "invalid YAML"),
    ("tab-indent", "default:\n\tclass: x\n", 2, "invalid YAML"),
    ("not-a-mapping", "- a\n- b\n", 1, "policy must be a mapping"),
    (
        "unknown-top-key",
        "default: {class: a, days: 1}\nretention: {}\n",
        2,
        "unknown key 'retention'",
    ),
    ("default-unknown-key", "default: {class: a, days: 1, ttl: 3}\n", 1, "unknown key 'ttl'"),
    ("default-missing-days", "\ndefault: {class: a}\n", 2, "missing required key 'days'"),
    ("days-zero", "default:\n  class: a\n  days: 0\n", 3, "days must be between 1 and"),
    ("days-negative", "default:\n  class: a\n  days: -5\n", 3, "days must be between 1 and"),
    ("days-too-big", "default:\n  class: a\n  days: 99999\n", 3, "days must be between 1 and"),
    ("days-string", 'default:\n  class: a\n  days: "90"\n', 3, "days must be an integer"),
    ("days-float", "default:\n  class: a\n  days: 1.5\n", 3, "days must be an integer"),
    ("days-bool", "default:\n  class: a\n  days: true\n", 3, "days must be an integer"),
    ("class-upper", "default:\n  class: PCI\n  days: 1\n", 2, "must be lowercase"),
    ("class-number", "default:\n  class: 7\n  days: 1\n", 2, "class must be a non-empty string"),
    ("rules-not-list", "rules:\n  a: 1\n", 2, "rules must be a list"),
    ("rule-not-mapping", "rules:\n  - just-a-name\n", 2, "rules[0] must be a mapping"),
    (
        "rule-unknown-key",
        "rules:\n  - name: a\n    match: {correlation: joined}\n    class: a\n    days: 1\n"
        "    retain: forever\n",
        6,
        "unknown key 'retain'",
    ),
    (
        "rule-missing-name",
        "rules:\n  - match: {correlation: joined}\n",
        2,
        "missing required key 'name'",
    ),
    (
        "rule-missing-class",
        "rules:\n  - name: a\n    match: {correlation: joined}\n    days: 1\n",
        2,
        "rule 'a': missing required key 'class'",
    ),
    (
        "duplicate-rule-name",
        "rules:\n  - {name: a, match: {correlation: joined}, class: a, days: 1}\n"
        "  - {name: b, match: {correlation: joined}, class: a, days: 1}\n"
        "  - {name: a, match: {correlation: log_only}, class: a, days: 1}\n",
        4,
        "duplicate rule name (first at line 2)",
    ),
    (
        "reserved-name",
        "rules:\n  - {name: default, match: {correlation: joined}, class: a, days: 1}\n",
        2,
        "reserved",
    ),
    (
        "non-string-glob",
        "rules:\n  - name: a\n    match:\n      response.status_code: 403\n    class: a\n    days: 1\n",
        4,
        'quote numbers and booleans, e.g. "403"',
    ),
    (
        "null-glob",
        "rules:\n  - name: a\n    match:\n      user.id: null\n    class: a\n    days: 1\n",
        4,
        "glob must be a string, got None",
    ),
    (
        "int-in-glob-list",
        'rules:\n  - name: a\n    match:\n      response.status_code:\n        - "401"\n'
        "        - 403\n    class: a\n    days: 1\n",
        6,
        "glob must be a string, got 403",
    ),
    (
        "mapping-glob",
        "rules:\n  - name: a\n    match:\n      request.path: {x: 1}\n    class: a\n    days: 1\n",
        4,
        "glob must be a string, got a list or mapping",
    ),
    (
        "empty-glob-list",
        "rules:\n  - name: a\n    match:\n      request.path: []\n    class: a\n    days: 1\n",
        4,
        "glob list must not be empty",
    ),
    (
        "empty-match",
        "rules:\n  - name: a\n    match: {}\n    class: a\n    days: 1\n",
        3,
        "match must name at least one field",
    ),
    (
        "unknown-top-field",
        "rules:\n  - name: a\n    match:\n      requests.path: /x\n    class: a\n    days: 1\n",
        4,
        "unknown audit event field 'requests.path'",
    ),
    (
        "unknown-workload-key",
        "rules:\n  - name: a\n    match:\n      source.names: x\n    class: a\n    days: 1\n",
        4,
        "unknown audit event field 'source.names'",
    ),
    (
        "path-too-deep",
        "rules:\n  - name: a\n    match:\n      request.path.x: x\n    class: a\n    days: 1\n",
        4,
        "unknown audit event field",
    ),
    (
        "scalar-with-subpath",
        "rules:\n  - name: a\n    match:\n      time.year: x\n    class: a\n    days: 1\n",
        4,
        "unknown audit event field 'time.year'",
    ),
    (
        "retention-not-matchable",
        "rules:\n  - name: a\n    match:\n      retention.class: x\n    class: a\n    days: 1\n",
        4,
        "unknown audit event field",
    ),
    (
        "duplicate-match-key",
        "rules:\n  - name: a\n    match:\n      request.path: /a\n      request.path: /b\n"
        "    class: a\n    days: 1\n",
        5,
        "duplicate key 'request.path'",
    ),
    (
        "legal-hold-not-bool",
        "rules:\n  - name: a\n    match: {correlation: joined}\n    class: a\n    days: 1\n"
        "    legal_hold: 1\n",
        6,
        "legal_hold must be true/false",
    ),
    ("two-documents", "default: {class: a, days: 1}\n---\nrules: []\n", 2, "invalid YAML"),
]


@pytest.mark.parametrize(
    ("text", "line", "fragment"),
    [case[1:] for case in INVALID],
    ids=[case[0] for case in INVALID],
)
def test_invalid_policy_points_at_line(text: str, line: int, fragment: str) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(text, source="policy.yaml")
    err = info.value
    assert err.line == line, str(err)
    assert str(err).startswith(f"policy.yaml:{line}:"), str(err)
    assert fragment in str(err)


def test_empty_policy_is_an_error() -> None:
    with pytest.raises(PolicyError, match=r"^p\.yaml: policy is empty$"):
        load_policy("# nothing here\n", source="p.yaml")


def test_invalid_file_message_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "retention.yaml"
    path.write_text("default: {class: standard, days: 90}\nrules:\n  - name: x\n    days: 0\n")
    with pytest.raises(PolicyError) as info:
        load_policy_file(path)
    assert str(info.value).startswith(f"{path}:3:")
    assert "missing required key 'match'" in str(info.value)


def test_expires_at_stays_right_across_many_seconds_and_rules() -> None:
    """Many events per second, seconds far apart, two lifetimes: each tag is still exact."""
    policy = load_policy(
        "default: {class: standard, days: 90}\n"
        "rules:\n"
        "  - {name: denials, class: security, days: 2555,"
        " match: {authorization.decision: deny}}\n"
    )
    step = 370_000_001  # ns: several events per second, and every nanosecond digit moves
    for i in range(3000):
        t = T0 + i * step + (i % 7) * 86_400_000_000_000
        deny = i % 3 == 0
        event = make_event(time_unix_nano=t)
        event["authorization"] = {"decision": "deny" if deny else "allow"}
        tag = policy.tag(event)
        assert tag["expires_at"] == expected_expiry(t, 2555 if deny else 90), i
