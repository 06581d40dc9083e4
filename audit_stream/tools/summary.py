"""The demo's bookkeeping: which requests were sent, which came out on the SIEM topic, and how.

Requirements
    * Counts only this run's events: an event belongs to the run when its request id is one the
      run sent. Events can be read before the generator reports their batch (a ``log_only``
      event may be out while the batch's span export is still in flight), so unknown request
      ids wait in a bounded buffer until their batch is reported.
    * One event per event id: a repeated event id (a replay after a crash) is counted as a
      duplicate, not as another event.
    * A secret "leaks" when a token the run put into a query string is readable in the SIEM
      record of that request.
    * Pure: fed by the demo's reader and the generator's batch callback; no I/O.

Example::

    >>> t = Tally()
    >>> t.sent(requests, logs_ok=True, spans_ok=True)  # doctest: +SKIP
    >>> t.seen(message.value, message.views)  # doctest: +SKIP
    >>> print(format_summary(t.summary(report, waited=1.5), "audit.siem", "ocsf"))  # doctest: +SKIP
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from audit_stream.config import KafkaSettings, Settings
from audit_stream.tools.generate import GenerateReport
from audit_stream.tools.view import EventView
from audit_stream.traffic import MeshRequest

__all__ = ["Hints", "Tally", "format_summary", "next_steps", "query_token"]

_TOKEN_PARAM = "access_token="  # noqa: S105 - the parameter the sample traffic puts tokens in


def query_token(path: str) -> str | None:
    """The ``access_token`` value of a request target, if it has one."""
    _, sep, rest = path.partition(_TOKEN_PARAM)
    return (rest.split("&", 1)[0] or None) if sep else None


class Tally:
    """Requests sent vs. events seen, and the counts the summary shows."""

    def __init__(self, max_unmatched: int = 50_000) -> None:
        self.sent_ids: set[str] = set()
        self.expected: set[str] = set()  # acknowledged by the receiver: must be audited
        self.audited: set[str] = set()
        self.event_ids: set[str] = set()
        self.duplicates = 0
        self.events = 0
        self.decisions: Counter[str] = Counter()
        self.correlations: Counter[str] = Counter()
        self.retention: Counter[str] = Counter()
        self.with_user = 0
        self.redacted = 0
        self.secrets_sent = 0
        self.leaked = 0
        self._secret_of: dict[str, bytes] = {}
        self._unmatched: dict[str, list[tuple[EventView, bytes]]] = {}
        self._max_unmatched = max_unmatched

    def sent(self, reqs: Sequence[MeshRequest], logs_ok: bool, spans_ok: bool) -> None:
        """A batch finished: ``*_ok`` says which halves the receiver acknowledged."""
        for r in reqs:
            rid = r.request_id
            self.sent_ids.add(rid)
            if (logs_ok and r.log) or (spans_ok and r.trace_id):
                self.expected.add(rid)
            token = query_token(r.path)
            if token:
                self._secret_of[rid] = token.encode()
                self.secrets_sent += 1
            for view, value in self._unmatched.pop(rid, ()):
                self._count(view, value)

    def seen(self, value: bytes, views: Sequence[EventView]) -> None:
        """One message read from the SIEM topic (``value`` as stored, to look for secrets)."""
        for v in views:
            rid = v.request_id
            if rid is None:
                continue
            if rid in self.sent_ids:
                self._count(v, value)
            elif len(self._unmatched) < self._max_unmatched:
                # Not (yet) known: this run's batch still in flight, or an older run's event.
                self._unmatched.setdefault(rid, []).append((v, value))

    def _count(self, v: EventView, value: bytes) -> None:
        if v.event_id is not None:
            if v.event_id in self.event_ids:
                self.duplicates += 1
                return
            self.event_ids.add(v.event_id)
        assert v.request_id is not None
        self.events += 1
        self.audited.add(v.request_id)
        self.decisions[v.decision] += 1
        self.correlations[v.correlation or "-"] += 1
        self.retention[v.retention or "-"] += 1
        self.with_user += v.user is not None
        self.redacted += v.redacted
        secret = self._secret_of.get(v.request_id)
        if secret is not None and secret in value:
            self.leaked += 1

    def audited_count(self) -> int:
        return len(self.audited)

    def complete(self) -> bool:
        return self.expected <= self.audited

    def summary(self, report: GenerateReport, waited: float) -> dict[str, Any]:
        """Every count of the summary, JSON-ready (``audit-stream demo --json`` prints it)."""
        missing = len(self.expected - self.audited)
        return {
            "requests": report.requests,
            "acknowledged_requests": len(self.expected),
            "audited_requests": len(self.audited),
            "missing": missing,
            "complete": missing == 0 and len(self.expected) == report.requests,
            "events": self.events,
            "duplicates": self.duplicates,
            "denials": self.decisions["deny"],
            "denials_sent": report.denials,
            "decisions": dict(sorted(self.decisions.items())),
            "by_correlation": dict(sorted(self.correlations.items())),
            "by_retention": dict(sorted(self.retention.items())),
            "with_user": self.with_user,
            "redacted": self.redacted,
            "secrets_sent": self.secrets_sent,
            "secrets_leaked": self.leaked,
            "wait_seconds": round(waited, 1),
            "generator": report.as_dict(),
        }


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items(), key=lambda kv: -kv[1])) or "-"


def format_summary(s: dict[str, Any], siem_topic: str, fmt: str) -> str:
    """The summary block for people (``s`` is :meth:`Tally.summary`)."""
    acked = s["acknowledged_requests"]
    not_acked = s["requests"] - acked
    lines = [
        "",
        f"Summary (counted from {siem_topic}, format {fmt})",
        f"  requests sent       {s['requests']:>7}  "
        + ("(all acknowledged by the receiver)" if not not_acked else f"({not_acked} refused)"),
        f"  audit events        {s['events']:>7}  "
        + (
            f"(one per request; the last {s['wait_seconds']}s after the traffic ended)"
            if s["complete"] and s["events"] == s["requests"]
            else f"for {s['audited_requests']} of {acked} acknowledged requests"
        ),
        f"  denials             {s['denials']:>7}  ({s['denials_sent']} denied requests sent)",
        f"  by correlation      {_counts(s['by_correlation'])}",
        f"  by retention class  {_counts(s['by_retention'])}",
        f"  end-user identity   {s['with_user']:>7}",
        f"  redactions          {s['redacted']:>7}  events had a secret removed; "
        f"{s['secrets_leaked']} of {s['secrets_sent']} tokens sent are readable",
    ]
    if s["missing"]:
        lines.append(
            f"  MISSING             {s['missing']:>7}  requests without an audit event "
            "(see the worker log)"
        )
    if s["duplicates"]:
        lines.append(f"  repeated events     {s['duplicates']:>7}  (same event id: a replay)")
    return "\n".join(lines)


@dataclass(frozen=True, slots=True)
class Hints:
    command: str  # how to run audit-stream again from here
    text: str


def _command(prog: str) -> str:
    p = Path(prog)
    if p.name != "audit-stream" or p.parent == Path():
        return "audit-stream"
    try:
        rel = p.resolve().relative_to(Path.cwd())
    except ValueError:
        return prog
    return str(rel)


def next_steps(settings: Settings, prog: str, run_dir: Path) -> Hints:
    """Where to look next: tail commands, topics, logs."""
    cmd = _command(prog)
    tail = f"{cmd} tail"
    if settings.kafka.bootstrap != KafkaSettings().bootstrap:
        tail += f" --bootstrap {settings.kafka.bootstrap}"
    t = settings.topics
    text = "\n".join(
        [
            "",
            "Next:",
            f"  {tail} --from-beginning   every audit event so far, one line each",
            f"  {tail} --decision deny    follow denials as they happen (--json for JSON)",
            f"  {tail} --topic events     the native audit events on {t.events}",
            f"  topics  {t.logs}, {t.spans} -> {t.events}, {t.siem} (dead letters: "
            f"{t.deadletter}) on {settings.kafka.bootstrap}",
            f"  logs    {run_dir / 'receiver.log'}, {run_dir / 'worker.log'}",
        ]
    )
    return Hints(cmd, text)
