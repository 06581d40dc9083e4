"""Access-log bodies and attributes -> AccessFields (audit_stream.receiver.accesslog)."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from audit_stream.models.records import AccessFields
from audit_stream.receiver import accesslog
from audit_stream.receiver.accesslog import (
    fields_from_attributes,
    namespace_from_principal,
    parse_body,
    service_from_cluster,
    split_attributes,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def fixture_body(name: str) -> str:
    doc = json.loads((FIXTURES / name).read_text())
    body: str = doc["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0]["body"]["stringValue"]
    return body


# --- Istio / Envoy text lines --------------------------------------------------------------


def test_istio_default_line_from_fixture() -> None:
    fmt, f = parse_body(fixture_body("istio_default_als_log.json"))
    assert fmt == "istio_text"
    assert f == {
        "start_time": "2020-11-25T21:26:18.409Z",
        "method": "GET",
        "path": "/status/418",
        "protocol": "HTTP/1.1",
        "response_code": 418,
        "response_code_details": "via_upstream",
        "bytes_received": 0,
        "bytes_sent": 135,
        "duration_ms": 3,
        "upstream_service_time_ms": 1,
        "user_agent": "curl/7.73.0-DEV",
        "request_id": "84961386-6d84-929d-98bd-c5aee93b5c88",
        "authority": "httpbin:8000",
        "upstream_host": "127.0.0.1:80",
        "upstream_cluster": "inbound|8000||",
        "upstream_local_address": "127.0.0.1:41854",
        "downstream_local_address": "10.44.1.27:80",
        "downstream_remote_address": "10.44.1.23:37652",
        "requested_server_name": "outbound_.8000_._.httpbin.foo.svc.cluster.local",
        "route_name": "default",
        # inbound cluster carries no name: the SNI the caller used names the service
        "destination_service": "httpbin",
        "destination_namespace": "foo",
    }


def test_istio_rbac_denial_line_from_fixture() -> None:
    fmt, f = parse_body(fixture_body("istio_labels_rbac_deny_log.json"))
    assert fmt == "istio_text"
    assert f["response_code"] == 403
    assert f["response_code_details"] == "rbac_access_denied_matched_policy[none]"
    assert f["duration_ms"] == 0
    assert f["bytes_sent"] == 19
    # "-" fields are absent, not "-"
    for absent in ("upstream_service_time_ms", "upstream_host", "upstream_local_address"):
        assert absent not in f
    assert "response_flags" not in f
    assert f["downstream_remote_address"] == "10.244.0.11:37238"
    assert (f["destination_service"], f["destination_namespace"]) == ("scout", "starfleet")


def test_envoy_fixture_carries_an_istio_shaped_line() -> None:
    fmt, f = parse_body(fixture_body("envoy_builtin_labels_log.json"))
    assert fmt == "istio_text"  # classified by shape, not by who sent it
    assert f["method"] == "POST"
    assert f["path"] == "/api/orders"
    assert f["response_code"] == 201
    assert (f["bytes_received"], f["bytes_sent"]) == (312, 88)
    assert (f["duration_ms"], f["upstream_service_time_ms"]) == (14, 12)
    assert f["upstream_cluster"] == "orders_cluster"
    assert f["authority"] == "orders:8080"
    assert f["route_name"] == "default"
    assert "requested_server_name" not in f
    assert "destination_service" not in f  # a plain Envoy cluster name says nothing


OLD_ISTIO = (
    '[2021-03-01T10:00:00.000Z] "GET /reviews/7?x=1 HTTP/2" 200 - via_upstream - "-" 0 358 12 11 '
    '"10.1.1.1" "Mozilla/5.0 (X11; Linux x86_64)" "5e3b1e3c-1111-2222-3333-444455556666" '
    '"reviews:9080" "10.44.2.9:9080" outbound_.9080_.v2_.reviews.default.svc.cluster.local '
    "10.44.1.23:50000 10.96.12.4:9080 10.44.1.23:49998 - default\n"
)


def test_old_istio_line_with_alt_stat_cluster_name() -> None:
    fmt, f = parse_body(OLD_ISTIO)
    assert fmt == "istio_text"
    assert f["path"] == "/reviews/7?x=1"
    assert f["protocol"] == "HTTP/2"
    assert f["user_agent"] == "Mozilla/5.0 (X11; Linux x86_64)"  # spaces inside quotes
    assert f["x_forwarded_for"] == "10.1.1.1"
    assert f["upstream_cluster"] == "outbound_.9080_.v2_.reviews.default.svc.cluster.local"
    assert (f["destination_service"], f["destination_namespace"]) == ("reviews", "default")
    assert "requested_server_name" not in f


def test_new_istio_outbound_line_with_raw_cluster_name() -> None:
    line = OLD_ISTIO.replace(
        "outbound_.9080_.v2_.reviews.default.svc.cluster.local",
        "outbound|9080|v2|reviews.default.svc.cluster.local",
    )
    fmt, f = parse_body(line)
    assert fmt == "istio_text"
    assert f["upstream_cluster"] == "outbound|9080|v2|reviews.default.svc.cluster.local"
    assert (f["destination_service"], f["destination_namespace"]) == ("reviews", "default")


def test_istio_16_line_with_mixer_status_field() -> None:
    line = (
        '[2020-05-01T00:00:00.000Z] "GET /productpage HTTP/1.1" 200 - "-" "-" 0 5183 40 39 "-" '
        '"curl/7.64.0" "aa-bb" "productpage:9080" "127.0.0.1:9080" '
        "inbound|9080|http|productpage.default.svc.cluster.local 127.0.0.1:36000 "
        "10.1.0.5:9080 10.1.0.9:52000 outbound_.9080_._.productpage.default.svc.cluster.local "
        "default\n"
    )
    fmt, f = parse_body(line)
    assert fmt == "istio_text"
    assert f["response_code"] == 200
    assert f["bytes_sent"] == 5183
    assert f["request_id"] == "aa-bb"
    assert "response_code_details" not in f
    # pre-1.10 inbound clusters still named the local service
    assert (f["destination_service"], f["destination_namespace"]) == ("productpage", "default")


def test_istio_tcp_line() -> None:
    line = (
        '[2024-01-02T03:04:05.678Z] "- - -" 0 - - - "-" 1234 5678 100 - "-" "-" "-" "-" '
        '"10.0.0.5:5432" outbound|5432||postgres.db.svc.cluster.local 10.0.0.4:40000 '
        "10.96.0.10:5432 10.0.0.4:39999 - -\n"
    )
    fmt, f = parse_body(line)
    assert fmt == "istio_text"
    assert f == {
        "start_time": "2024-01-02T03:04:05.678Z",
        "response_code": 0,
        "bytes_received": 1234,
        "bytes_sent": 5678,
        "duration_ms": 100,
        "upstream_host": "10.0.0.5:5432",
        "upstream_cluster": "outbound|5432||postgres.db.svc.cluster.local",
        "upstream_local_address": "10.0.0.4:40000",
        "downstream_local_address": "10.96.0.10:5432",
        "downstream_remote_address": "10.0.0.4:39999",
        "destination_service": "postgres",
        "destination_namespace": "db",
    }


def test_envoy_default_line() -> None:
    # the example in Envoy's access-log documentation
    line = (
        '[2016-04-15T20:17:00.310Z] "POST /api/v1/locations HTTP/2" 204 - 154 0 226 100 '
        '"10.0.35.28" "nsq2http" "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2" "locations" '
        '"tcp://10.0.2.1:80"\n'
    )
    fmt, f = parse_body(line)
    assert fmt == "envoy_text"
    assert f == {
        "start_time": "2016-04-15T20:17:00.310Z",
        "method": "POST",
        "path": "/api/v1/locations",
        "protocol": "HTTP/2",
        "response_code": 204,
        "bytes_received": 154,
        "bytes_sent": 0,
        "duration_ms": 226,
        "upstream_service_time_ms": 100,
        "x_forwarded_for": "10.0.35.28",
        "user_agent": "nsq2http",
        "request_id": "cc21d9b0-cf5c-432b-8c7e-98aeb7988cd2",
        "authority": "locations",
        "upstream_host": "tcp://10.0.2.1:80",
    }


def test_termination_details_with_spaces_and_dash_numbers() -> None:
    line = (
        '[2024-01-02T03:04:05.678Z] "GET / HTTP/1.1" 0 DC downstream_remote_disconnect '
        'conn reset by peer "-" 0 0 - - "-" "curl/8" "rid" "a:80" "-" outbound|80||a.b.svc.x '
        "- 1.1.1.1:80 2.2.2.2:1 - -\n"
    )
    fmt, f = parse_body(line)
    assert fmt == "istio_text"
    assert f["connection_termination_details"] == "conn reset by peer"
    assert f["response_flags"] == "DC"
    assert "duration_ms" not in f and "upstream_service_time_ms" not in f


def _random_istio_line(rng: random.Random) -> str:
    def pick(*xs: str) -> str:
        return rng.choice(xs)

    return (
        f"[2025-01-01T00:00:{rng.randint(10, 59)}.000Z] "
        f'"{pick("GET", "POST", "-")} {pick("/a", "/b?c=d", "-")} {pick("HTTP/1.1", "HTTP/2", "-")}" '
        f"{pick('200', '503', '0', '-')} {pick('-', 'UF', 'NR,URX')} {pick('-', 'via_upstream')} "
        f'{pick("-", "x", "a b")} "{pick("-", "tls error", "")}" {pick("0", "12", "-")} '
        f'{pick("0", "99")} {pick("1", "-")} {pick("2", "-")} "{pick("-", "1.2.3.4")}" '
        f'"{pick("-", "ua 1", "")}" "{pick("-", "rid")}" "{pick("-", "h:1")}" "{pick("-", "u:2")}" '
        f"{pick('-', 'inbound|80||', 'outbound|80||s.n.svc.cluster.local', 'c')} "
        f"{pick('-', '1.1.1.1:1')} {pick('-', '2.2.2.2:2')} {pick('-', '3.3.3.3:3')} "
        f"{pick('-', 'outbound_.80_._.s.n.svc.cluster.local', 'example.com')} "
        f"{pick('-', 'default')}{pick('', chr(10))}"
    )


def test_fast_path_agrees_with_general_path() -> None:
    # parse_body takes an unrolled path for common Istio lines; the general tokenizer must give
    # exactly the same answer for every line both accept.
    rng = random.Random(1)
    fast_used = 0
    for _ in range(3000):
        line = _random_istio_line(rng)
        parts = line.split('"')
        fast = accesslog._istio_fast(parts) if len(parts) == 15 else None
        try:
            general: tuple[str, AccessFields] | None = accesslog._parse_text(line)
        except accesslog._NoMatch:
            general = None
        if fast is not None:
            fast_used += 1
            assert general == ("istio_text", fast), line
        assert parse_body(line) == (general or ("unknown", {})), line
    assert fast_used > 100


MANGLE_BASES = [
    fixture_body("istio_default_als_log.json"),
    '[2016-04-15T20:17:00.310Z] "POST /a HTTP/2" 204 - 154 0 226 100 "-" "ua" "r" "h" "u"\n',
    '10.42.0.1:43682 - - [2022-08-23T20:28:23.049685223Z] "GET /ping HTTP/1.1" 200 17\n',
    '{"client.addr":"1.2.3.4:5","status":200,"total_ns":"99","uri":"http://a/b"}',
    '{"response_code":"200","duration":3,"upstream_cluster":"outbound|80||a.b.svc.c"}',
]


@pytest.mark.parametrize("base", MANGLE_BASES)
def test_truncated_and_mangled_bodies_never_raise(base: str) -> None:
    rng = random.Random(2)
    for i in range(len(base)):
        fmt, fields = parse_body(base[:i])
        assert isinstance(fields, dict)
        if fmt == "unknown":
            assert fields == {}
    for _ in range(1000):
        chars = list(base)
        for _ in range(rng.randint(1, 4)):
            chars[rng.randrange(len(chars))] = rng.choice('" []-x0{}:,\n')
        fmt, fields = parse_body("".join(chars))
        for v in fields.values():
            assert isinstance(v, str | int) and v not in ("-", "")


# --- JSON / kvlist bodies ------------------------------------------------------------------


def test_istio_json_body() -> None:
    body = json.dumps(
        {
            "start_time": "2024-05-01T10:00:00.000Z",
            "method": "DELETE",
            "path": "/v1/users/9",
            "protocol": "HTTP/1.1",
            "response_code": 204,
            "response_flags": "-",
            "bytes_received": 0,
            "bytes_sent": 0,
            "duration": 7,
            "upstream_service_time": "6",
            "x_forwarded_for": None,
            "user_agent": "okhttp/4.9",
            "request_id": "r-1",
            "authority": "users.prod.svc.cluster.local:8080",
            "upstream_cluster": "outbound|8080||users.prod.svc.cluster.local",
            "requested_server_name": None,
            "downstream_peer_uri_san": "spiffe://cluster.local/ns/web/sa/frontend",
        }
    )
    fmt, f = parse_body(body)
    assert fmt == "json"
    assert f == {
        "start_time": "2024-05-01T10:00:00.000Z",
        "method": "DELETE",
        "path": "/v1/users/9",
        "protocol": "HTTP/1.1",
        "response_code": 204,
        "bytes_received": 0,
        "bytes_sent": 0,
        "duration_ms": 7,
        "upstream_service_time_ms": 6,
        "user_agent": "okhttp/4.9",
        "request_id": "r-1",
        "authority": "users.prod.svc.cluster.local:8080",
        "upstream_cluster": "outbound|8080||users.prod.svc.cluster.local",
        "source_principal": "spiffe://cluster.local/ns/web/sa/frontend",
        "source_namespace": "web",
        "destination_service": "users",
        "destination_namespace": "prod",
    }


def test_kvlist_body_with_operator_names_in_any_case() -> None:
    fmt, f = parse_body(
        {"RESPONSE_CODE": "503", "RESPONSE_FLAGS": "UF", "x-request-id": "abc", "START_TIME": "t"}
    )
    assert fmt == "json"
    assert f == {
        "response_code": 503,
        "response_flags": "UF",
        "request_id": "abc",
        "start_time": "t",
    }


def test_json_without_known_keys_is_unknown() -> None:
    assert parse_body('{"level": "info", "msg": "started"}') == ("unknown", {})
    assert parse_body({"level": "info"}) == ("unknown", {})
    assert parse_body('{"method": ') == ("unknown", {})  # broken JSON
    assert parse_body("[1, 2, 3]") == ("unknown", {})


# --- Linkerd -------------------------------------------------------------------------------

LINKERD_ID = "traffic.booksapp.serviceaccount.identity.linkerd.cluster.local"


def test_linkerd_json() -> None:
    body = json.dumps(
        {
            "client.addr": "10.42.0.70:32996",
            "client.id": LINKERD_ID,
            "host": "webapp:7000",
            "method": "POST",
            "processing_ns": "39826",
            "request_bytes": "43",
            "response_bytes": "",
            "status": 303,
            "timestamp": "2022-08-23T20:33:42.321746212Z",
            "total_ns": "14441135",
            "trace_id": "",
            "uri": "http://webapp:7000/books/2878?x=1",
            "user_agent": "Go-http-client/1.1",
            "version": "HTTP/1.1",
        }
    )
    fmt, f = parse_body(body)
    assert fmt == "linkerd_json"
    assert f == {
        "downstream_remote_address": "10.42.0.70:32996",
        "source_principal": LINKERD_ID,
        "source_namespace": "booksapp",
        "authority": "webapp:7000",
        "method": "POST",
        "protocol": "HTTP/1.1",
        "start_time": "2022-08-23T20:33:42.321746212Z",
        "user_agent": "Go-http-client/1.1",
        "response_code": 303,
        "bytes_received": 43,
        "duration_ms": 14,
        "path": "/books/2878?x=1",
    }


def test_linkerd_json_destination_from_fqdn_host() -> None:
    fmt, f = parse_body(
        {"client.addr": "1.2.3.4:5", "host": "web-svc.emojivoto.svc.cluster.local:80"}
    )
    assert fmt == "linkerd_json"
    assert (f["destination_service"], f["destination_namespace"]) == ("web-svc", "emojivoto")


def test_linkerd_apache() -> None:
    line = (
        f"10.42.0.63:51160 {LINKERD_ID} - [2022-08-23T20:28:20.071809491Z] "
        '"GET http://webapp:7000/authors/104 HTTP/2.0" 200\n'
    )
    fmt, f = parse_body(line)
    assert fmt == "linkerd_apache"
    assert f == {
        "downstream_remote_address": "10.42.0.63:51160",
        "start_time": "2022-08-23T20:28:20.071809491Z",
        "method": "GET",
        "protocol": "HTTP/2.0",
        "response_code": 200,
        "path": "/authors/104",
        "authority": "webapp:7000",
        "source_principal": LINKERD_ID,
        "source_namespace": "booksapp",
    }


def test_linkerd_apache_without_identity_and_with_extra_fields() -> None:
    fmt, f = parse_body(
        '10.42.0.1:43682 - alice [2022-08-23T20:28:23.049685223Z] "GET /ping HTTP/1.1" 200 17 '
        '"-" "kube-probe/1.24" 25567\n'
    )
    assert fmt == "linkerd_apache"
    assert f["path"] == "/ping"
    assert f["user_id"] == "alice"
    assert f["bytes_sent"] == 17
    assert f["user_agent"] == "kube-probe/1.24"
    assert "source_principal" not in f and "authority" not in f


@pytest.mark.parametrize(
    "body", ["", "   ", "hello world", "[info] started", "GET / 200", "{}", "null", '"x"']
)
def test_unknown_bodies(body: str) -> None:
    assert parse_body(body) == ("unknown", {})


# --- attributes ----------------------------------------------------------------------------


def test_attributes_envoy_operator_names_and_string_numbers() -> None:
    f = fields_from_attributes(
        {
            "response_code": "403",
            "duration": "12",
            "bytes_sent": 19.0,
            "request_id": "r-9",
            "upstream_cluster": "outbound|9080||ratings.bookinfo.svc.cluster.local",
            "user_agent": "curl/8.5.0",
            "downstream_peer_uri_san": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
            "downstream_local_uri_san": "spiffe://cluster.local/ns/bookinfo/sa/ratings",
            "log_name": "otel_envoy_accesslog",
        }
    )
    assert f == {
        "response_code": 403,
        "duration_ms": 12,
        "bytes_sent": 19,
        "request_id": "r-9",
        "upstream_cluster": "outbound|9080||ratings.bookinfo.svc.cluster.local",
        "user_agent": "curl/8.5.0",
        "source_principal": "spiffe://cluster.local/ns/bookinfo/sa/reviews",
        "destination_principal": "spiffe://cluster.local/ns/bookinfo/sa/ratings",
        "destination_service": "ratings",
        "destination_namespace": "bookinfo",
        "source_namespace": "bookinfo",
    }


def test_attributes_istio_vocabulary() -> None:
    f = fields_from_attributes(
        {
            "source.principal": "spiffe://td/ns/shop/sa/cart",
            "source.workload.name": "cart-v2",
            "source.namespace": "shop",
            "destination.service.name": "payments",
            "destination.service.namespace": "billing",
            "destination.principal": "spiffe://td/ns/billing/sa/payments",
            "request.auth.principal": "issuer.example.com/user-42",
            "request.id": "rid-1",
            "response.code": 200,
        }
    )
    assert f == {
        "source_principal": "spiffe://td/ns/shop/sa/cart",
        "source_workload": "cart-v2",
        "source_namespace": "shop",
        "destination_service": "payments",
        "destination_namespace": "billing",
        "destination_principal": "spiffe://td/ns/billing/sa/payments",
        "user_id": "issuer.example.com/user-42",
        "request_id": "rid-1",
        "response_code": 200,
    }


def test_attributes_otel_semconv() -> None:
    f = fields_from_attributes(
        {
            "http.request.method": "PATCH",
            "url.path": "/items/3",
            "url.query": "dry_run=1",
            "http.response.status_code": 409,
            "user_agent.original": "python-requests/2.32",
            "network.protocol.version": "2",
            "server.address": "items.example.com",
            "http.request.header.authorization": ["Bearer abc"],
            "rpc.grpc.status_code": 0,
        }
    )
    assert f == {
        "method": "PATCH",
        "path": "/items/3?dry_run=1",
        "response_code": 409,
        "user_agent": "python-requests/2.32",
        "protocol": "HTTP/2",
        "authority": "items.example.com",
        "authorization": "Bearer abc",
        "grpc_status": "0",
    }


def test_attributes_full_url() -> None:
    f = fields_from_attributes({"url.full": "https://api.example.com:8443/v1/x?y=z"})
    assert f == {"path": "/v1/x?y=z", "authority": "api.example.com:8443"}


def test_namespace_label_follows_direction() -> None:
    assert fields_from_attributes({"namespace": "a"}, inbound=True) == {
        "destination_namespace": "a"
    }
    assert fields_from_attributes({"namespace": "a"}, inbound=False) == {"source_namespace": "a"}
    assert fields_from_attributes({"namespace": "a"}) == {}
    # the record's own cluster attribute beats the hint
    f = fields_from_attributes({"namespace": "a", "upstream_cluster": "inbound|80||"}, False)
    assert f["destination_namespace"] == "a"


def test_split_attributes_leaves_out_only_what_the_facts_repeat() -> None:
    attrs: dict[str, object] = {
        "response_code": "403",  # the int fact printed back: left out
        "duration": 12,  # the same int: left out
        "peer_principal": "spiffe://td/ns/web/sa/fe",  # renamed: left out
        "http.method": "GET",  # replaced by the next alias of the same fact: kept
        "http.request.method": "POST",
        "bytes_sent": "0012",  # read as 12, which does not print back as "0012": kept
        "user_agent": "-",  # no fact: kept
        "user.id": ["a", "b"],  # the fact holds only the first item: kept
        "url.full": "https://api.example.com/x?y=z",  # more than a rename: kept
        "node_id": "sidecar~10.1.2.3~a.b~b.svc.cluster.local",  # not a fact: kept
    }
    facts, rest = split_attributes(attrs, inbound=True)
    assert facts == fields_from_attributes(attrs, inbound=True)
    assert rest == {
        "http.method": "GET",
        "bytes_sent": "0012",
        "user_agent": "-",
        "user.id": ["a", "b"],
        "url.full": "https://api.example.com/x?y=z",
        "node_id": "sidecar~10.1.2.3~a.b~b.svc.cluster.local",
    }
    assert (facts["method"], facts["duration_ms"], facts["source_namespace"]) == ("POST", 12, "web")


def test_attribute_values_of_any_shape_never_raise() -> None:
    weird: list[Any] = [None, "", "-", "nan", "1e999", "12abc", True, [], [1], {"a": 1}, 1.5e300]
    for key in ("response_code", "duration", "user_agent", "source.principal", "url.full"):
        for value in weird:
            f = fields_from_attributes({key: value})
            for v in f.values():
                assert isinstance(v, str | int) and v != "-"
    assert fields_from_attributes({"response_code": True, "duration": "nan"}) == {}
    assert fields_from_attributes({"response_code": "7.0"}) == {"response_code": 7}


# --- identity helpers ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cluster", "expected"),
    [
        ("outbound|9080||reviews.default.svc.cluster.local", ("reviews", "default")),
        ("outbound|9080|v3|ratings.bookinfo.svc.cluster.local", ("ratings", "bookinfo")),
        ("outbound_.9080_._.httpbin.foo.svc.cluster.local", ("httpbin", "foo")),
        ("outbound_.8000_.v1_.httpbin.foo.svc.corp.example", ("httpbin", "foo")),
        ("inbound|8000||", (None, None)),
        ("inbound|9080|http|productpage.default.svc.cluster.local", ("productpage", "default")),
        ("outbound|443||www.google.com", ("www.google.com", None)),
        ("outbound|443||*.wildcard.com", (None, None)),
        ("PassthroughCluster", (None, None)),
        ("BlackHoleCluster", (None, None)),
        ("orders_cluster", (None, None)),
        ("outbound|80", (None, None)),
        ("", (None, None)),
    ],
)
def test_service_from_cluster(cluster: str, expected: tuple[str | None, str | None]) -> None:
    assert service_from_cluster(cluster) == expected


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        ("spiffe://cluster.local/ns/starfleet/sa/probe", "starfleet"),
        ("spiffe://example.org/ns/a-b/sa/c", "a-b"),
        ("spiffe://example.org/workload/x", None),
        ("web.emojivoto.serviceaccount.identity.linkerd.cluster.local", "emojivoto"),
        ("alice@example.com", None),
        ("", None),
    ],
)
def test_namespace_from_principal(principal: str, expected: str | None) -> None:
    assert namespace_from_principal(principal) == expected
