"""``audit-stream generate``, ``tail`` and ``demo`` with real processes and a real broker.

The generator's report is checked against what Kafka holds (mesh.logs and the SIEM topic), the
demo's summary against what ``audit-stream tail`` prints, and shutdown against the process table.
A few pure parts (mix parsing, retry policy, the demo's bookkeeping) are tested first.
"""

from __future__ import annotations

import json
import random
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest

from audit_stream.config import TopicSettings
from audit_stream.errors import ConfigError
from audit_stream.tools.generate import GenerateReport, parse_mix, retry_delay
from audit_stream.tools.procs import port_free
from audit_stream.tools.summary import Tally, query_token
from audit_stream.tools.view import EventView, views_of
from audit_stream.traffic import Mix, make_requests
from tests.conftest import ROOT, unique
from tests.support import (
    base_env,
    cli,
    free_port,
    read_messages,
    read_packed,
    records_of,
    run_receiver,
    start_worker,
    topic_env,
    worker_env,
)

SECRET = re.compile(rb"tok-[0-9a-f]{16}")  # the tokens the sample traffic puts in query strings
RICH_MIX = "denied=0.2,no_trace=0.1,with_user=0.3,with_secret=0.2,span_only=0.05"
OCSF = jsonschema.Draft202012Validator(
    json.loads((ROOT / "schemas" / "siem_ocsf_http_activity.v1.json").read_text())
)


# ------------------------------------------------------------------------------------------------
# pure parts


def test_parse_mix() -> None:
    assert parse_mix(None) == Mix()
    assert parse_mix("denied=0.5, span-only=0") == Mix(denied=0.5, span_only=0.0)
    for bad in ("foo=0.1", "denied", "denied=2", "denied=x", "denied=-0.1"):
        with pytest.raises(ConfigError):
            parse_mix(bad)


def test_retry_policy_follows_otlp() -> None:
    unavailable = grpc.StatusCode.UNAVAILABLE
    assert [retry_delay(unavailable, None, a) for a in (1, 2, 3, 9)] == [0.25, 0.5, 1.0, 5.0]
    assert retry_delay(unavailable, 2.0, 1) == 2.0
    assert retry_delay(unavailable, 60.0, 1) == 5.0  # bounded, whatever the server asks
    # RESOURCE_EXHAUSTED is retryable only when the server says when (RetryInfo)
    assert retry_delay(grpc.StatusCode.RESOURCE_EXHAUSTED, None, 1) is None
    assert retry_delay(grpc.StatusCode.RESOURCE_EXHAUSTED, 1.0, 1) == 1.0
    for final in ("INVALID_ARGUMENT", "UNAUTHENTICATED", "PERMISSION_DENIED", "INTERNAL"):
        assert retry_delay(getattr(grpc.StatusCode, final), None, 1) is None


def _view(rid: str, eid: str, **kw: Any) -> EventView:
    facts: dict[str, Any] = {
        "format": "ocsf", "time": "t", "event_id": eid, "request_id": rid, "trace_id": None,
        "source": "s", "source_principal": None, "destination": "d", "destination_service": None,
        "destination_namespace": None, "method": "GET", "path": "/", "status": 200,
        "decision": "allow", "user": None, "retention": "standard", "correlation": "joined",
        "redacted": False,
    }  # fmt: skip
    return EventView(**{**facts, **kw})


def test_tally_counts_this_runs_events_once() -> None:
    mix = Mix(denied=0, no_trace=0, with_user=0, with_secret=1, span_only=0)
    reqs = make_requests(random.Random(1), 4, time.time_ns(), mix)
    token = query_token(reqs[0].path)
    assert token and token.startswith("tok-")
    t = Tally()
    # An event read before the generator reported its batch is kept until it does.
    t.seen(f"...{token}...".encode(), [_view(reqs[0].request_id, "e0", decision="deny")])
    t.seen(b"{}", [_view("another-run", "x1")])  # not ours: never counted
    assert t.events == 0
    t.sent(reqs[:2], logs_ok=True, spans_ok=True)
    t.sent(reqs[2:], logs_ok=False, spans_ok=False)  # refused: not expected to be audited
    assert t.events == 1 and t.leaked == 1 and t.decisions["deny"] == 1
    t.seen(b"[REDACTED]", [_view(reqs[1].request_id, "e1", redacted=True, user="alice")])
    t.seen(b"[REDACTED]", [_view(reqs[1].request_id, "e1", redacted=True, user="alice")])
    assert t.complete() and t.events == 2 and t.duplicates == 1
    assert t.redacted == 1 and t.with_user == 1 and t.secrets_sent == 4
    report = GenerateReport(target="x", seed=1, planned=4, requests=4, denials=1)
    s = t.summary(report, waited=0.0)
    assert (s["acknowledged_requests"], s["audited_requests"], s["missing"]) == (2, 2, 0)
    assert s["complete"] is False  # two requests were refused by the receiver


# ------------------------------------------------------------------------------------------------
# generate


def _report(res: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    try:
        return dict(json.loads(res.stdout))
    except json.JSONDecodeError:
        raise AssertionError(f"no JSON report:\n{res.stdout}\n{res.stderr}") from None


@pytest.mark.e2e
async def test_generator_counts_match_the_siem_topic(
    pipeline_env: dict[str, str], topic_settings: TopicSettings, tmp_path: Path
) -> None:
    bootstrap = pipeline_env["AUDIT_STREAM_KAFKA_BOOTSTRAP"]
    worker = start_worker(worker_env(pipeline_env, tmp_path), tmp_path)
    try:
        with run_receiver(pipeline_env, tmp_path) as rcv:
            args = ("--rate", "150", "--duration", "2", "--seed", "11", "--mix", RICH_MIX)
            res = cli(pipeline_env, "generate", "--target", rcv.grpc, *args, "--json")
        report = _report(res)
        assert res.returncode == 0, res.stderr
        siem = await read_messages(
            bootstrap, topic_settings.siem, report["requests"], timeout=60, settle=3.0
        )
        logs = records_of(await read_packed(bootstrap, topic_settings.logs, report["log_records"]))
    finally:
        worker.proc.send_signal(signal.SIGTERM)
        worker.proc.wait(30)

    n = report["requests"]
    assert n == report["planned"] == 300 and report["ok"] and not report["interrupted"]
    assert report["failed_calls"] == {} and report["retries"] == 0
    assert report["accepted_log_records"] == report["log_records"] == len(logs)
    assert report["accepted_spans"] == report["spans"]
    assert min(report[k] for k in ("denials", "untraced", "with_user", "with_secrets")) > 0

    assert len(siem) == n, f"{len(siem)} SIEM records for {n} requests"
    assert len({m.key for m in siem}) == n  # one event id per request
    views = [views_of(m.value, m.headers)[0] for m in siem]
    assert len({v.request_id for v in views}) == n
    correlations = Counter(v.correlation for v in views)
    assert correlations["log_only"] == report["untraced"]
    assert correlations["span_only"] == report["span_only"]
    assert correlations["joined"] == n - report["untraced"] - report["span_only"]
    assert sum(v.decision == "deny" for v in views) == report["denials"]
    assert sum(v.user is not None for v in views) == report["with_user"]
    assert sum(v.redacted for v in views) == report["with_secrets"]
    for m in siem:
        assert SECRET.search(m.value) is None, m.value
        OCSF.validate(json.loads(m.value))


@pytest.mark.e2e
def test_generator_retries_unavailable_then_reports_the_failure() -> None:
    res = cli({}, "generate", "--target", f"127.0.0.1:{free_port()}", "--rate", "20",
              "--duration", "0.1", "--json", timeout=60)  # fmt: skip
    report = _report(res)
    assert res.returncode == 1
    calls = report["exports"]
    assert report["requests"] == 2 and calls == 2  # one batch: a logs and a traces export
    assert report["failed_calls"] == {"UNAVAILABLE": calls}
    assert report["retries"] == 4 * calls  # the default: four retries per call
    assert report["accepted_log_records"] == report["accepted_spans"] == 0
    assert report["failed_log_records"] == report["log_records"]
    assert report["failed_spans"] == report["spans"]
    assert not report["ok"]


@pytest.mark.e2e
def test_generator_sends_the_bearer_token(pipeline_env: dict[str, str], tmp_path: Path) -> None:
    env = {**pipeline_env, "AUDIT_STREAM_AUTH_TOKENS": "t0ken-a,t0ken-b"}
    with run_receiver(env, tmp_path) as rcv:
        args = ("generate", "--target", rcv.grpc, "--rate", "50", "--duration", "0.4", "--json")
        refused = cli(pipeline_env, *args)
        accepted = cli(pipeline_env, *args, "--token", "t0ken-b")
    r = _report(refused)
    assert refused.returncode == 1 and r["retries"] == 0  # UNAUTHENTICATED is final
    assert r["failed_calls"] == {"UNAUTHENTICATED": r["exports"]}
    a = _report(accepted)
    assert accepted.returncode == 0 and a["ok"] and a["accepted_log_records"] == a["log_records"]


# ------------------------------------------------------------------------------------------------
# demo


@pytest.fixture
def demo_env(kafka_bootstrap: str, topic_settings: TopicSettings) -> dict[str, str]:
    """Unique topics, ports and consumer group; the demo creates the topics itself."""
    return {
        **topic_env(kafka_bootstrap, topic_settings),
        "AUDIT_STREAM_GRPC_LISTEN": f"127.0.0.1:{free_port()}",
        "AUDIT_STREAM_HTTP_LISTEN": f"127.0.0.1:{free_port()}",
        "AUDIT_STREAM_WEB_PORT": str(free_port()),
        "AUDIT_STREAM_APP_ID": unique("demo"),
        "AUDIT_STREAM_JOIN_WINDOW_SECONDS": "2",
        "AUDIT_STREAM_JOIN_GRACE_SECONDS": "0.5",
        "AUDIT_STREAM_RETENTION_POLICY": str(ROOT / "config" / "retention-policy.example.yaml"),
    }


def _ports_free(env: dict[str, str]) -> bool:
    addrs = [env["AUDIT_STREAM_GRPC_LISTEN"], env["AUDIT_STREAM_HTTP_LISTEN"]]
    addrs.append(f"127.0.0.1:{env['AUDIT_STREAM_WEB_PORT']}")
    return all(port_free("127.0.0.1", int(a.rpartition(":")[2])) for a in addrs)


def _demo(env: dict[str, str], run_dir: Path, *args: str) -> dict[str, Any]:
    res = cli(env, "demo", "--json", "--run-dir", str(run_dir), *args, timeout=300)
    assert res.returncode == 0, f"{res.stdout}\n{res.stderr}"
    assert "Summary (counted from" in res.stderr
    # The hint names the broker when it is not the default one, e.g. "tail --bootstrap H:P ...".
    assert re.search(r"audit-stream tail (--bootstrap \S+ )?--from-beginning", res.stderr)
    assert "stopped   receiver and worker" in res.stderr
    return _report(res)


def _tail(env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    res = cli(env, "tail", "--json", "--from-beginning", *args, timeout=120)
    return res.returncode, [json.loads(line) for line in res.stdout.splitlines()]


@pytest.mark.e2e
def test_demo_summary_matches_tail_and_a_second_run_counts_its_own(
    demo_env: dict[str, str], tmp_path: Path
) -> None:
    s = _demo(demo_env, tmp_path / "run", "--requests", "150", "--duration", "3", "--seed", "3")
    assert s["requests"] == s["events"] == s["audited_requests"] == 150 and s["complete"]
    assert s["duplicates"] == 0 and s["missing"] == 0
    assert s["secrets_sent"] > 0 and s["secrets_leaked"] == 0
    assert s["redacted"] == s["secrets_sent"]
    assert s["denials"] == s["denials_sent"] > 0
    assert _ports_free(demo_env)  # receiver and worker are gone
    assert b"stopping: draining" in (tmp_path / "run" / "receiver.log").read_bytes()

    code, views = _tail(demo_env, "--max", str(s["events"]), "--timeout", "10")
    assert code == 0 and len(views) == s["events"]
    assert len({v["request_id"] for v in views}) == s["events"]
    assert dict(Counter(v["decision"] for v in views)) == s["decisions"]
    assert dict(Counter(v["correlation"] for v in views)) == s["by_correlation"]
    assert dict(Counter(v["retention"] for v in views)) == s["by_retention"]
    assert sum(v["redacted"] for v in views) == s["redacted"]
    assert sum(v["user"] is not None for v in views) == s["with_user"]
    assert {"standard", "security", "pci"} <= set(s["by_retention"])
    code, more = _tail(demo_env, "--max", str(s["events"] + 1), "--timeout", "3")
    assert code == 1 and len(more) == s["events"]  # nothing beyond one event per request

    # Same topics and consumer group again: the worker resumes, the summary counts this run only.
    s2 = _demo(demo_env, tmp_path / "run", "--requests", "60", "--duration", "2", "--seed", "4")
    assert s2["requests"] == s2["events"] == 60 and s2["complete"] and s2["duplicates"] == 0
    code, views = _tail(demo_env, "--max", "300", "--timeout", "3")
    assert len(views) == 210 and len({v["request_id"] for v in views}) == 210


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


@pytest.mark.e2e
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize(
    ("args", "wait_for", "sig", "code"),
    [
        (("--requests", "20000", "--duration", "60"), "traffic   ", signal.SIGINT, 130),
        (("--no-traffic",), "runs until Ctrl-C", signal.SIGTERM, 0),
    ],
)
def test_demo_stops_receiver_and_worker_on_a_signal(
    demo_env: dict[str, str],
    tmp_path: Path,
    args: tuple[str, ...],
    wait_for: str,
    sig: signal.Signals,
    code: int,
) -> None:
    out = tmp_path / "demo.out"
    with open(out, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "audit_stream.cli", "demo", "--run-dir", str(tmp_path), *args],
            env=base_env(demo_env),
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    children: list[int] = []
    try:
        deadline = time.monotonic() + 120
        while wait_for not in out.read_text() and time.monotonic() < deadline:
            assert proc.poll() is None, out.read_text()
            time.sleep(0.2)
        time.sleep(1.0)
        children = _children(proc.pid)
        assert len(children) == 2, out.read_text()
        proc.send_signal(sig)
        assert proc.wait(90) == code, out.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = out.read_text()
    assert "stopped   receiver and worker" in text
    for pid in children:
        assert not Path(f"/proc/{pid}").exists(), f"process {pid} outlived the demo"
    assert _ports_free(demo_env)
