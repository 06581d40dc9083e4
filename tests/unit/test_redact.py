"""Redaction: every credential kind is masked, ordinary text is left alone, input is untouched."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from audit_stream.siem.redact import MASK, SECRET_KEYS, Redactor

SECRET = "s3cr3tV4lue"  # a value that must never survive redaction
JWT = (
    "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ"
    ".eyJzdWIiOiJhbGljZSIsImV4cCI6MTcwMDAwMDAwMH0"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)


def make_event(**request: str) -> Any:
    return {
        "schema": "audit_event.v1",
        "event_id": "0f" * 16,
        "time": "2026-10-09T07:54:53.132000000Z",
        "time_unix_nano": 1_791_532_493_132_000_000,
        "correlation": "joined",
        "source": {
            "principal": "spiffe://cluster.local/ns/starfleet/sa/probe",
            "address": "10.244.0.11:37238",
        },
        "destination": {"service": "scout.starfleet.svc.cluster.local", "address": "10.0.0.1:9080"},
        "request": {
            "method": "GET",
            "path": "/reviews/0?page=2&sort=asc",
            "protocol": "HTTP/1.1",
            "user_agent": "curl/8.11.1",
            "request_id": "c21e3c5a-b3cb-4cf6-9d60-dcd9c47a8cda",
            "authority": "scout:9080",
            **request,
        },
        "response": {"status_code": 403, "details": "rbac_access_denied_matched_policy[none]"},
        "authorization": {"decision": "deny", "reason": "rbac_access_denied_matched_policy[none]"},
        "user": {"id": "alice"},
        "trace": {"trace_id": "422a513f9dd13cdca4b291187d65ec69", "span_id": "61d22fad2b80d1dd"},
        "mesh": {"proxy": "envoy", "kind": "sidecar"},
    }


@pytest.fixture(scope="module")
def redactor() -> Redactor:
    return Redactor()


def redact_path(redactor: Redactor, path: str) -> tuple[str, int]:
    out, count = redactor.redact_event(make_event(path=path))
    return out["request"]["path"], count


# --------------------------------------------------------------------------------------------
# Query parameters

PARAMS = [
    "token", "access_token", "id_token", "refresh_token", "api_key", "apikey", "key", "password",
    "passwd", "pwd", "secret", "client_secret", "signature", "sig", "code", "auth", "session",
    "sessionid", "jwt", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
    "X-Goog-Signature", "X-Goog-Credential",
]  # fmt: skip


@pytest.mark.parametrize("name", PARAMS)
def test_each_secret_param_is_masked(redactor: Redactor, name: str) -> None:
    path, count = redact_path(redactor, f"/cb?state=xyz&{name}={SECRET}&page=2")
    assert path == f"/cb?state=xyz&{name}={MASK}&page=2"
    assert count == 1


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (f"/a?ACCESS_TOKEN={SECRET}", f"/a?ACCESS_TOKEN={MASK}"),
        (f"/a?Access_Token={SECRET}", f"/a?Access_Token={MASK}"),
        (f"/a?x-amz-signature={SECRET}", f"/a?x-amz-signature={MASK}"),
        (f"/a?PassWord={SECRET}#frag", f"/a?PassWord={MASK}#frag"),
        (f"/a?token={SECRET}", f"/a?token={MASK}"),  # first and only param
        (f"/a;jsessionid={SECRET}?x=1", f"/a;jsessionid={MASK}?x=1"),  # matrix param
        (f"/a?x=1;session={SECRET}", f"/a?x=1;session={MASK}"),  # ";" separator
    ],
)
def test_mixed_case_and_separators(redactor: Redactor, path: str, expected: str) -> None:
    assert redact_path(redactor, path) == (expected, 1)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        # a whole URL carried inside another parameter, percent-encoded
        (
            f"/login?next=%2Fcallback%3Ftoken%3D{SECRET}%26lang%3Den",
            f"/login?next=%2Fcallback%3Ftoken%3D{MASK}%26lang%3Den",
        ),
        (
            f"/login?next=%2Fcb%3fx%3D1%26api%5Fkey%3d{SECRET}",
            f"/login?next=%2Fcb%3fx%3D1%26api%5Fkey%3d{MASK}",
        ),
        (f"/a?access%5Ftoken={SECRET}&b=1", f"/a?access%5Ftoken={MASK}&b=1"),
        (f"/a?X%2DAmz%2DSignature={SECRET}", f"/a?X%2DAmz%2DSignature={MASK}"),
    ],
)
def test_percent_encoded_query_strings(redactor: Redactor, path: str, expected: str) -> None:
    assert redact_path(redactor, path) == (expected, 1)


def test_multiple_params_are_all_masked_and_counted(redactor: Redactor) -> None:
    path, count = redact_path(
        redactor,
        f"/s3/bucket/obj?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA{SECRET}%2F20240101"
        f"&X-Amz-Date=20240101T000000Z&X-Amz-Signature={SECRET}abc&token={SECRET}",
    )
    assert SECRET not in path
    assert count == 3
    assert "X-Amz-Algorithm=AWS4-HMAC-SHA256" in path
    assert "X-Amz-Date=20240101T000000Z" in path


@pytest.mark.parametrize(
    "text",
    [
        "/keynote",
        "/a?monkey=1",
        "/a?keyboard=us&keys=3",
        "/api/tokens/42",
        "/a?author=bob",
        "/zip?zipcode=12345&country_code=US",
        "/a?password_hint=blue",
        "/oauth/authorize?client_id=web&response_type=code",
        "/a?token=&b=1",  # empty value: nothing to hide
        "/sessions/42?sort=desc",
        "/static/eyJ.css",
        "Basic authentication required",
        "bearer token missing",
        "Bearer authentication failed for realm",
        "rbac_access_denied_matched_policy[ns[foo]-policy[deny-all]-rule[0]]",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)",
        "cookies are tasty",
    ],
)
def test_no_false_positives(redactor: Redactor, text: str) -> None:
    assert redactor.redact_text(text) == (text, 0)
    event = make_event(path=text, user_agent=text)
    out, count = redactor.redact_event(event)
    assert count == 0
    assert out is event


# --------------------------------------------------------------------------------------------
# Headers, bearer / basic, JWT


@pytest.mark.parametrize(
    "key", ["authorization", "Authorization", "proxy-authorization", "cookie", "Set-Cookie",
            "x-api-key", "x_api_key", "proxy_authorization"],
)  # fmt: skip
def test_credential_named_keys_are_masked_whole(redactor: Redactor, key: str) -> None:
    event = make_event(**{key: f"opaque-{SECRET}"})
    out, count = redactor.redact_event(event)
    assert out["request"][key] == MASK
    assert count == 1


@pytest.mark.parametrize("key", sorted(SECRET_KEYS))
def test_every_secret_key_is_masked(redactor: Redactor, key: str) -> None:
    event = make_event()
    event["user"][key] = SECRET  # an unusual place: the pre-check must still notice
    out, count = redactor.redact_event(event)
    assert (out["user"][key], count) == (MASK, 1)


@pytest.mark.parametrize("key", ["code", "key", "session", "sig", "auth", "token_count"])
def test_generic_names_as_keys_are_not_credentials(redactor: Redactor, key: str) -> None:
    event = make_event(**{key: "403"})
    out, count = redactor.redact_event(event)
    assert (out["request"][key], count) == ("403", 0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            f"upstream sent Authorization: Bearer {SECRET}xyz",
            f"upstream sent Authorization: {MASK}",
        ),
        (f"proxy-authorization=Basic {SECRET}", f"proxy-authorization={MASK}"),
        (f"Cookie: sid={SECRET}; theme=dark", f"Cookie: {MASK}"),
        (f"set-cookie: sid={SECRET}; HttpOnly", f"set-cookie: {MASK}"),
        (f'{{"authorization":"Bearer {SECRET}","x":1}}', f'{{"authorization":"{MASK}","x":1}}'),
        (f"headers: 'cookie': 'a={SECRET}'", f"headers: 'cookie': '{MASK}'"),
    ],
)
def test_header_pairs_inside_strings(redactor: Redactor, text: str, expected: str) -> None:
    assert redactor.redact_text(text) == (expected, 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Bearer 3f9a0c1d2e4b5a6978", f"Bearer {MASK}"),
        ("token was bearer abcdefghijklmnopqrstuvwxyz", f"token was bearer {MASK}"),
        ("Basic dXNlcjpwYXNzd29yZA==", f"Basic {MASK}"),  # user:password
        (f"Bearer {JWT}", f"Bearer {MASK}"),
        (f"jwt {JWT} rejected", f"jwt {MASK} rejected"),
        (f"{JWT}", MASK),
        (f"ab{JWT}", f"ab{JWT}"),  # not at a word start: not a JWT on its own
    ],
)
def test_bearer_basic_and_jwt(redactor: Redactor, text: str, expected: str) -> None:
    out, count = redactor.redact_text(text)
    assert out == expected
    assert count == (0 if out == text else 1)


def test_every_string_field_is_inspected(redactor: Redactor) -> None:
    event = make_event(path=f"/a?token={SECRET}1", user_agent=f"bot Bearer {SECRET}abcdefgh2")
    event["authorization"]["reason"] = f"jwt {JWT} expired"
    event["response"]["details"] = f"cookie: sid={SECRET}3"
    event["mesh"]["note"] = f"Authorization: Basic {SECRET}4"
    event["trace"]["tracestate"] = f"vendor=x&api_key={SECRET}5"
    event["user"]["raw"] = [f"password={SECRET}6", {"deep": f"sig={SECRET}7"}]
    out, count = redactor.redact_event(event)
    assert count == 8
    assert SECRET not in repr(out)
    assert "eyJ" not in repr(out)
    # facts that are not secret are kept as they were
    assert out["request"]["user_agent"].startswith("bot Bearer ")
    assert out["trace"]["tracestate"].startswith("vendor=x&api_key=")
    assert out["user"]["id"] == "alice"
    assert out["response"]["status_code"] == 403


def test_input_is_not_modified(redactor: Redactor) -> None:
    event = make_event(path=f"/a?token={SECRET}", authorization=f"Bearer {SECRET}abcdefgh")
    before = copy.deepcopy(event)
    out, count = redactor.redact_event(event)
    assert count == 2
    assert event == before
    assert out is not event
    assert out["request"] is not event["request"]


def test_clean_event_is_returned_as_is(redactor: Redactor) -> None:
    event = make_event()
    out, count = redactor.redact_event(event)
    assert out is event
    assert count == 0


def test_redaction_is_idempotent(redactor: Redactor) -> None:
    event = make_event(path=f"/a?token={SECRET}&code=x", cookie="a=b")
    event["authorization"]["reason"] = f"Bearer {JWT}"
    once, first = redactor.redact_event(event)
    twice, second = redactor.redact_event(once)
    assert first == 4
    assert second == 0
    assert twice == once


# --------------------------------------------------------------------------------------------
# Configuration


def test_extra_patterns_whole_match_and_value_group() -> None:
    redactor = Redactor(
        extra_patterns=[
            r"\b\d{4}-\d{4}-\d{4}-(?P<value>\d{4})\b",  # keep all but the last group visible
            r"(?i)\bssn:\d{3}-\d{2}-\d{4}\b",
        ]
    )
    text, count = redactor.redact_text("card 4111-1111-1111-1234 and SSN:123-45-6789")
    assert text == f"card 4111-1111-1111-{MASK} and {MASK}"
    assert count == 2
    assert redactor.redact_text(text) == (text, 0)


def test_extra_pattern_applies_to_events() -> None:
    redactor = Redactor(extra_patterns=[r"acct-\d+"])
    event = make_event(path="/accounts/acct-998877/statements")
    out, count = redactor.redact_event(event)
    assert out["request"]["path"] == f"/accounts/{MASK}/statements"
    assert count == 1


def test_extra_params() -> None:
    redactor = Redactor(extra_params=["Ticket", "otp"])
    assert redactor.redact_text(f"/a?ticket={SECRET}&OTP=123456&x=1") == (
        f"/a?ticket={MASK}&OTP={MASK}&x=1",
        2,
    )
    out, count = redactor.redact_event(make_event(path=f"/a?TICKET={SECRET}"))
    assert (out["request"]["path"], count) == (f"/a?TICKET={MASK}", 1)


def test_invalid_extra_pattern_is_rejected() -> None:
    with pytest.raises(ValueError, match="invalid redaction pattern"):
        Redactor(extra_patterns=["(unclosed"])


# -- the pre-check never skips a secret ---------------------------------------------------------

PLANTED = (
    f"token={SECRET}",
    f"?access_token={SECRET}&x=1",
    f"%3Fapi%5Fkey%3D{SECRET}",
    f"Authorization: Bearer {SECRET}0123456789abcdef",
    f"cookie={SECRET}",
    f"X-Api-Key: {SECRET}",
    "Basic " + base64.b64encode(f"user:{SECRET}".encode()).decode(),
    JWT,
    f"password={SECRET}",
    f";jsessionid={SECRET}",
    f"X-Amz-Signature={SECRET}",
    f"bearer {SECRET}-{SECRET}",
)
NOISE = ("", " ", "x ", "/a/b?", "&", "page=2&", "\n", "note: ", '"', "k%3D1& ")
SUFFIX = ("", " ", "&x=1", "\n", " note", '"', ";")  # ends the secret: no glued characters


def _string_slots(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every string value below ``value``."""
    if isinstance(value, str):
        return [path]
    if not isinstance(value, (dict, list)):
        return []
    items = value.items() if isinstance(value, dict) else enumerate(value)
    return [p for k, v in items for p in _string_slots(v, (*path, k))]


def _planted_events(seed: int) -> list[Any]:
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(300):
        event = make_event()
        # Shapes beyond the schema's: free-form extra keys, lists and nested objects.
        event["response"]["details"] = "via_upstream"
        event["authorization"] = {"decision": "deny", "reason": "RBAC: access denied"}
        event["mesh"] = {"tags": ["a", {"note": "b"}], "proxy": "envoy"}
        slots = _string_slots(event)
        target = rng.choice(slots)
        holder = event
        for step in target[:-1]:
            holder = holder[step]
        holder[target[-1]] = rng.choice(NOISE) + rng.choice(PLANTED) + rng.choice(SUFFIX)
        out.append(event)
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_secret_planted_in_any_string_field_is_caught(redactor: Redactor, seed: int) -> None:
    import orjson

    for event in _planted_events(seed):
        before = copy.deepcopy(event)
        out, n = redactor.redact_event(event)
        assert n >= 1, before
        assert SECRET.encode() not in orjson.dumps(out), before
        assert JWT.encode() not in orjson.dumps(out), before
        assert event == before


@pytest.mark.parametrize("seed", [4, 5])
def test_pre_check_agrees_with_the_full_rewrite(redactor: Redactor, seed: int) -> None:
    """Whatever the pre-check lets through unchanged, rewriting every string finds nothing in."""
    import random

    rng = random.Random(seed)
    events = _planted_events(seed)
    for event in events[:150]:
        # Half the events lose their secret again: the common, clean case.
        for path in _string_slots(event):
            holder = event
            for step in path[:-1]:
                holder = holder[step]
            if rng.random() < 0.5 and any(p in holder[path[-1]] for p in PLANTED):
                holder[path[-1]] = rng.choice(NOISE) + "plain text, no credential"
    for event in events:
        out, n = redactor.redact_event(event)
        full, full_n = redactor._redact_value(event)
        assert (out, n) == ((full, full_n) if full_n else (event, 0)), event


def test_credential_key_with_a_non_string_value_is_not_a_hit(redactor: Redactor) -> None:
    event = make_event()
    event["request"]["password"] = 1234  # only string values are masked by key
    out, n = redactor.redact_event(event)
    assert (out, n) == (event, 0)
    event["request"]["Password"] = "hunter2"
    out, n = redactor.redact_event(event)
    assert n == 1 and out["request"]["Password"] == MASK and out["request"]["password"] == 1234


# --------------------------------------------------------------------------------------------
# The pre-check on the encoded event (``Redactor.suspects``)


def test_every_credential_name_contains_a_trigger() -> None:
    from audit_stream.siem.redact import _TRIGGERS, SECRET_HEADERS

    for name in (*SECRET_HEADERS, *SECRET_KEYS):
        assert any(t in name for t in _TRIGGERS), name


def test_precheck_passes_an_ordinary_event_without_walking_it(redactor: Redactor) -> None:
    """The event's own "authorization" object (the decision) is not a credential header."""
    import orjson

    event = make_event()
    assert not redactor.suspects(orjson.dumps(event))
    out, count = redactor.redact_event(event)
    assert out is event and count == 0


@pytest.mark.parametrize(
    "extra",
    [
        {"authorization": "Basic dXNlcjpwYXNz"},  # a string-valued key of that name
        {"x_api_key": SECRET},
        {"client_secret": SECRET},
        {"Cookie": f"session={SECRET}"},
    ],
)
def test_credential_keys_are_masked_through_the_precheck(
    redactor: Redactor, extra: dict[str, str]
) -> None:
    import orjson

    event = make_event()
    event["request"].update(extra)
    assert redactor.suspects(orjson.dumps(event))
    out, count = redactor.redact_event(event)
    assert count >= 1
    assert SECRET not in orjson.dumps(out).decode()
    assert "dXNlcjpwYXNz" not in orjson.dumps(out).decode()


def test_precheck_agrees_with_the_walk_on_many_events(redactor: Redactor) -> None:
    """Whenever redaction would change an event, the pre-check must have said so."""
    import orjson

    paths = [
        "/a?page=2", "/cb?code=x1y2", "/a?next=%2Fb%3Ftoken%3Dabc", "/x;jsessionid=ABC",
        "/keynote", "/monkey?monkey=1", f"/a?q=1&api%5Fkey={SECRET}", "/a#sig=1",
        f"/p?x=Bearer%20{SECRET}", f"/j/{JWT}", "/p?Authorization=Basic%20dXNlcjpwYXNz",
    ]  # fmt: skip
    agents = ["curl/8", f"x Bearer {SECRET}abcdefghijklmn", "Cookie: a=b", "plain"]
    masked = 0
    for path in paths:
        for agent in agents:
            event = make_event(path=path, user_agent=agent)
            _, walked = redactor._redact_value(copy.deepcopy(event))
            if walked:
                masked += 1
                assert redactor.suspects(orjson.dumps(event)), (path, agent)
    assert masked >= len(paths)  # every path meets a masked user agent at least


def test_operator_pattern_sees_text_that_json_escapes(redactor: Redactor) -> None:
    import orjson

    custom = Redactor(extra_patterns=[r'id="(?P<value>[^"]+)"'])
    event = make_event(user_agent=f'client id="{SECRET}"')
    assert custom.suspects(orjson.dumps(event))
    out, count = custom.redact_event(event)
    assert count == 1 and SECRET not in orjson.dumps(out).decode()


def test_an_anchored_operator_pattern_is_applied_to_each_value() -> None:
    """``^...$`` patterns are written against one value; the pre-check must not hide them."""
    import orjson

    custom = Redactor(extra_patterns=[r"^acct-\d+$"])
    event = make_event(user_agent="acct-4242")
    assert custom.suspects(orjson.dumps(event))
    out, count = custom.redact_event(event)
    assert count == 1 and out["request"]["user_agent"] == MASK


def test_anchored_triggers_are_the_triggers() -> None:
    from audit_stream.siem.redact import _ANCHORED, _TRIGGERS, _UNANCHORED

    listed = [t for _, triggers in _ANCHORED for t, _ in triggers] + list(_UNANCHORED)
    assert sorted(listed) == sorted(_TRIGGERS)
    for anchor, triggers in _ANCHORED:
        for trigger, offset in triggers:
            assert trigger[offset] == anchor, (trigger, offset)


def test_anchored_scan_agrees_with_substring_tests() -> None:
    """``_has_trigger`` == "a trigger occurs once the decision object's key is taken out"."""
    import random

    from audit_stream.siem.redact import _DECISION_KEY, _TRIGGERS, _has_trigger

    rng = random.Random(7)
    pieces = [*_TRIGGERS, _DECISION_KEY, '"authorization":"', "k", "z", "j", "b", "w", "e", "y"]
    pieces += ["bookinfo", "x", '"', ":", "{", "/", "=", "%3d", "to", "ken", "eyJ", "pass"]
    for _ in range(20_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 8))).lower()
        expected = any(t in text.replace(_DECISION_KEY, "{") for t in _TRIGGERS)
        assert _has_trigger(text) == expected, text
