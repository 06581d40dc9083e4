"""``audit-stream tail`` formatting: the same facts out of OCSF, ECS, native and audit.events.

Inputs are produced by the project's own pure pipeline from generated mesh traffic: OTLP request
-> receiver decoding -> join's event builder -> retention + redaction + SIEM mapping (the worker's
``AuditOutput``). Expected values come from the generated requests, never from the code under test.
"""

from __future__ import annotations

import copy
import json
import random
import re
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest

from audit_stream.errors import ConfigError
from audit_stream.join.event import build_event
from audit_stream.kafka.codec import pack
from audit_stream.models.records import AuditEvent
from audit_stream.receiver.decode import decode_logs, decode_spans
from audit_stream.retention import load_policy_file
from audit_stream.siem import Redactor
from audit_stream.siem.output import AuditOutput
from audit_stream.tools.view import (
    EventFilter,
    EventView,
    detect_format,
    format_line,
    parse_since,
    view_json,
    views_of,
)
from audit_stream.traffic import MeshRequest, Mix, logs_request, make_requests, spans_request

ROOT = Path(__file__).resolve().parents[2]
POLICY = load_policy_file(ROOT / "config" / "retention-policy.example.yaml")
SCHEMAS = {
    "ocsf": "siem_ocsf_http_activity.v1.json",
    "ecs": "siem_ecs.v1.json",
    "native": "audit_event.v1.json",
}
FORMATS = ("ocsf", "ecs", "native")
NOW = 1_791_532_493_132_000_000  # 2026-10-09T07:54:53.132Z
MIX = Mix(denied=0.3, no_trace=0.15, with_user=0.4, with_secret=0.3, span_only=0.15)


def _validator(fmt: str) -> jsonschema.Draft202012Validator:
    return jsonschema.Draft202012Validator(
        json.loads((ROOT / "schemas" / SCHEMAS[fmt]).read_text())
    )


VALIDATORS = {fmt: _validator(fmt) for fmt in FORMATS}


def _events(reqs: list[MeshRequest]) -> dict[str, AuditEvent]:
    """request id -> audit event, built the way the receiver and the join build them."""
    logs = decode_logs(logs_request(reqs), NOW).records
    spans = decode_spans(spans_request(reqs), NOW).records
    assert len(logs) == sum(r.log for r in reqs) and len(spans) == sum(
        bool(r.trace_id) for r in reqs
    )
    span_of = {(s["trace_id"], s["span_id"]): s for s in spans}
    out: dict[str, AuditEvent] = {}
    for log in logs:
        span = span_of.pop((log["trace_id"], log["span_id"]), None)
        event = build_event(log, span, "joined" if span else "log_only")
        out[event["request"]["request_id"]] = event
    for span in span_of.values():
        event = build_event(None, span, "span_only")
        out[event["request"]["request_id"]] = event
    return out


@pytest.fixture(scope="module")
def traffic() -> tuple[list[MeshRequest], dict[str, AuditEvent]]:
    reqs = make_requests(random.Random(20), 80, NOW, MIX)
    # every kind of request the view must handle is present
    assert any(r.denied for r in reqs) and any(not r.trace_id for r in reqs)
    assert any(not r.log for r in reqs) and any(r.user for r in reqs)
    assert any("access_token=" in r.path for r in reqs)
    return reqs, _events(reqs)


def render(event: AuditEvent, fmt: str) -> tuple[bytes, list[tuple[str, bytes]], bytes]:
    out = AuditOutput(POLICY, Redactor(), fmt, "audit.siem")  # type: ignore[arg-type]
    r = out.render(copy.deepcopy(event))
    VALIDATORS[fmt].validate(json.loads(r.siem_value))
    return r.siem_value, r.headers, r.event_value


def ms_time(ns: int) -> str:
    return (
        datetime.fromtimestamp(ns // 1_000_000 / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        + "Z"
    )


def expected_path(r: MeshRequest) -> str:
    return re.sub(r"access_token=[^&]+", "access_token=[REDACTED]", r.path)


def correlation(r: MeshRequest) -> str:
    return "log_only" if not r.trace_id else "span_only" if not r.log else "joined"


def retention(r: MeshRequest) -> str:
    # the example policy, read by hand: denials, then /admin, then payments or /pay
    if r.denied:
        return "security"
    if r.path.startswith("/admin"):
        return "privileged"
    if r.dest_ns == "payments" or r.path.startswith("/pay"):
        return "pci"
    return "standard"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_request_reads_back_as_generated(
    traffic: tuple[list[MeshRequest], dict[str, AuditEvent]], fmt: str
) -> None:
    reqs, events = traffic
    for r in reqs:
        value, headers, _ = render(events[r.request_id], fmt)
        (v,) = views_of(value, headers)
        assert v.format == fmt
        assert v.request_id == r.request_id
        assert v.trace_id == (r.trace_id.hex() if r.trace_id else None)
        assert v.event_id == events[r.request_id]["event_id"]
        assert v.time == ms_time(r.start_ns)
        if r.log:
            assert v.source == f"{r.source_ns}/sa/{r.source_sa}"
            assert v.source_principal == r.source_principal
        else:  # a server span names its peer only by address (Envoy's peer.address tag)
            assert v.source == r.src_addr.split(":")[0]
            assert v.source_principal is None
        assert v.destination == f"{r.dest_service}.{r.dest_ns}"
        assert (v.destination_service, v.destination_namespace) == (r.dest_service, r.dest_ns)
        assert (v.method, v.path, v.status) == (r.method, expected_path(r), r.status)
        assert v.decision == ("deny" if r.denied else "allow")
        assert v.user == (r.user if r.log else None)  # the end user is in the access log only
        assert v.retention == retention(r)
        assert v.correlation == correlation(r)
        assert v.redacted == ("access_token=" in r.path)


def test_the_three_formats_give_the_same_view(
    traffic: tuple[list[MeshRequest], dict[str, AuditEvent]],
) -> None:
    _, events = traffic
    for event in events.values():
        views = [views_of(*render(event, fmt)[:2])[0] for fmt in FORMATS]
        facts = [{**asdict(v), "format": None} for v in views]
        assert facts[0] == facts[1] == facts[2]


@pytest.mark.parametrize("fmt", FORMATS)
def test_shape_and_body_suffice_without_headers(
    traffic: tuple[list[MeshRequest], dict[str, AuditEvent]], fmt: str
) -> None:
    """A record copied out of Kafka without headers: format from its shape, retention from it."""
    _, events = traffic
    for event in list(events.values())[:20]:
        value, headers, _ = render(event, fmt)
        assert detect_format(orjson.loads(value)) == fmt
        assert views_of(value, []) == views_of(value, headers)
        without_retention = [(k, v) for k, v in headers if k != "retention-class"]
        assert views_of(value, without_retention) == views_of(value, headers)


def test_packed_audit_events_message_gives_one_view_per_event(
    traffic: tuple[list[MeshRequest], dict[str, AuditEvent]],
) -> None:
    reqs, events = traffic
    natives = [render(events[r.request_id], "native")[2] for r in reqs[:25]]
    (msg,) = pack("event", 0, None, natives, 1 << 20)
    for headers in (msg.headers("event"), []):
        views = views_of(msg.value, headers)
        assert [v.request_id for v in views] == [r.request_id for r in reqs[:25]]
        assert all(v.format == "native" for v in views)
        assert [v.retention for v in views] == [retention(r) for r in reqs[:25]]
        assert [v.redacted for v in views] == ["access_token=" in r.path for r in reqs[:25]]


def test_line_of_a_denial(traffic: tuple[list[MeshRequest], dict[str, AuditEvent]]) -> None:
    reqs, events = traffic
    r = next(x for x in reqs if x.denied and x.trace_id and x.log and not x.user)
    line = format_line(views_of(*render(events[r.request_id], "ocsf")[:2])[0])
    assert line == (
        f"{ms_time(r.start_ns)}  {r.source_ns}/sa/{r.source_sa} -> {r.dest_service}.{r.dest_ns}  "
        f"{r.method} {expected_path(r)}  403  DENY     user=-  retention=security"
    )


def test_line_marks_uncorrelated_requests_and_shows_the_user(
    traffic: tuple[list[MeshRequest], dict[str, AuditEvent]],
) -> None:
    reqs, events = traffic
    for r in reqs:
        line = format_line(views_of(*render(events[r.request_id], "ecs")[:2])[0])
        assert f"  user={(r.user if r.log else None) or '-'}  " in line
        assert line.endswith(f"({correlation(r)})") == (correlation(r) != "joined")
        assert f" {r.status}  {'DENY' if r.denied else 'allow'}" in line
        assert "tok-" not in line


def test_missing_facts_show_as_dashes() -> None:
    event: Any = {
        "schema": "audit_event.v1",
        "event_id": "0" * 32,
        "time": "2026-10-09T07:54:53.1Z",
        "time_unix_nano": NOW,
        "correlation": "span_only",
        "source": {},
        "destination": {},
        "request": {},
        "response": {},
        "authorization": {},
        "user": {},
        "trace": {},
        "mesh": {},
    }
    value, headers, _ = render(event, "native")
    (v,) = views_of(value, headers)
    assert format_line(v) == (
        "2026-10-09T07:54:53.100Z  - -> -  - -  -  unknown  user=-  retention=standard  (span_only)"
    )
    (o,) = views_of(*render(event, "ocsf")[:2])
    assert o.time == "2026-10-09T07:54:53.100Z" and o.decision == "unknown" and o.status is None


def test_json_view_has_stable_keys(
    traffic: tuple[list[MeshRequest], dict[str, AuditEvent]],
) -> None:
    _, events = traffic
    event = next(iter(events.values()))
    docs = [orjson.loads(view_json(views_of(*render(event, f)[:2])[0])) for f in FORMATS]
    assert [list(d) for d in docs] == [list(EventView.__dataclass_fields__)] * 3


def test_unreadable_messages_raise_value_error() -> None:
    (logs,) = pack("log", 0, None, [b'{"id":"x"}'], 1024)
    for value in (b"not json", b"[1,2]", b'{"hello":"world"}', logs.value):
        with pytest.raises(ValueError):
            views_of(value, [])


def test_filters(traffic: tuple[list[MeshRequest], dict[str, AuditEvent]]) -> None:
    reqs, events = traffic
    views = {r.request_id: views_of(*render(events[r.request_id], "ocsf")[:2])[0] for r in reqs}

    def chosen(f: EventFilter) -> set[str]:
        return {rid for rid, v in views.items() if f.matches(v)}

    assert chosen(EventFilter()) == set(views)
    assert chosen(EventFilter(decision="deny")) == {r.request_id for r in reqs if r.denied}
    assert chosen(EventFilter(user="alice@example.com")) == {
        r.request_id for r in reqs if r.user == "alice@example.com" and r.log
    }
    assert chosen(EventFilter(correlation="span_only")) == {r.request_id for r in reqs if not r.log}

    def involves_reviews(r: MeshRequest) -> bool:
        # a caller is known by its SPIFFE id, which only the access log carries
        return r.dest_service == "reviews" or (r.log and r.source_sa == "reviews")

    reviews = {r.request_id for r in reqs if involves_reviews(r)}
    assert reviews and chosen(EventFilter(service="reviews")) == reviews
    assert chosen(EventFilter(service="reviews.bookinfo")) == reviews
    assert chosen(EventFilter(decision="deny", service="reviews")) == {
        r.request_id for r in reqs if r.denied and involves_reviews(r)
    }


def test_parse_since() -> None:
    now = 1_800_000_000_000
    assert parse_since("10m", now) == now - 600_000
    assert parse_since("90s", now) == now - 90_000
    assert parse_since("2h", now) == now - 7_200_000
    assert parse_since("1.5d", now) == now - 129_600_000
    assert parse_since("2026-10-09T07:54:53Z", now) == 1_791_532_493_000
    assert parse_since("2026-10-09T07:54:53", now) == 1_791_532_493_000
    assert parse_since("2026-10-09T09:54:53+02:00", now) == 1_791_532_493_000
    for bad in ("yesterday", "10 minutes", "-5m", ""):
        with pytest.raises(ConfigError):
            parse_since(bad, now)
