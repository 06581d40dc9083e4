"""Retention policy: which retention class, lifetime and legal hold each audit event gets.

Requirements
    * Users write the policy as YAML; an invalid file is rejected at start-up with a message that
      names the file, line and column of the offending node (``PolicyError``).
    * Rules are ordered and the first match wins; the ``default`` applies when none matches.
    * ``match`` maps dotted field paths of the audit event (``request.path``,
      ``destination.namespace``, ``response.status_code``...) to one glob or a list of globs (any
      of them). Globs are fnmatch-style and case-sensitive; ``*`` also matches ``/``. Numbers and
      booleans in the event are compared as their string form (``403``, ``true``), so
      ``response.status_code: "4*"`` works. Every key of ``match`` must match. A field that is
      absent (or ``null``, or an object) never matches, not even ``"*"``.
    * Tagging is deterministic: the expiry is computed from the event's own time, so replaying
      the same event produces the same tag.
    * Tagging is fast (well over 20k events/s): globs are compiled to one regex per field when
      the policy is loaded; tagging is dictionary look-ups and ``re.match`` calls.

How it works
    The YAML text is *composed* (not just loaded) so every node keeps its position; the walker
    checks each node and builds frozen ``Rule`` objects. Field paths are checked against the audit
    event's shape (``AuditEvent`` / ``Workload``) so a typo fails loudly instead of never matching.

Example
    >>> policy = load_policy('''
    ... default: {class: standard, days: 90}
    ... rules:
    ...   - name: admin-api
    ...     match: {request.path: "/admin/*", destination.namespace: [ops, platform]}
    ...     class: privileged
    ...     days: 730
    ... ''')
    >>> policy.rules[0].name, policy.default.days
    ('admin-api', 90)
"""

from __future__ import annotations

import fnmatch
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from audit_stream.models.records import AuditEvent, Workload

__all__ = [
    "DEFAULT_POLICY",
    "DEFAULT_POLICY_YAML",
    "MAX_DAYS",
    "PolicyError",
    "RetentionPolicy",
    "Rule",
    "class_retention_ms",
    "class_topic",
    "load_policy",
    "load_policy_file",
]

MAX_DAYS = 36_500  # 100 years: beyond any statutory period, and keeps expiry dates printable
_NS_PER_DAY = 86_400 * 1_000_000_000
_MS_PER_DAY = 86_400 * 1_000
_CLASS_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_SUBKEY_RE = re.compile(r"[a-z][a-z0-9_]*")

# Paths a rule may match on. Workload objects have a closed set of keys; the other objects are
# open string maps, so any snake_case key is accepted below them.
_SCALAR_FIELDS = frozenset({"schema", "event_id", "time", "time_unix_nano", "correlation"})
_WORKLOAD_FIELDS = frozenset({"source", "destination"})
_OPEN_FIELDS = frozenset({"request", "response", "authorization", "user", "trace", "mesh"})
_WORKLOAD_KEYS = frozenset(Workload.__required_keys__ | Workload.__optional_keys__)
_EVENT_KEYS = frozenset(AuditEvent.__required_keys__ | AuditEvent.__optional_keys__)
assert _EVENT_KEYS - {"retention"} == _SCALAR_FIELDS | _WORKLOAD_FIELDS | _OPEN_FIELDS

_TOP_KEYS = ("default", "rules")
_DEFAULT_KEYS = ("class", "days", "legal_hold")
_RULE_KEYS = ("name", "match", "class", "days", "legal_hold")


class PolicyError(ValueError):
    """The retention policy is invalid; ``str()`` reads ``<source>:<line>:<column>: <problem>``."""

    def __init__(
        self, message: str, source: str, line: int | None = None, column: int | None = None
    ) -> None:
        self.problem = message
        self.source = source
        self.line = line
        self.column = column
        where = source if line is None else f"{source}:{line}:{column}"
        super().__init__(f"{where}: {message}")


Matcher = Callable[[str], "re.Match[str] | None"]


def _compile_globs(globs: Sequence[str]) -> Matcher:
    # One alternation per field: a list of globs costs a single regex call per event.
    pattern = "|".join(f"(?:{fnmatch.translate(g)})" for g in globs)
    return re.compile(pattern).match


@dataclass(frozen=True, slots=True)
class Rule:
    """One retention rule. ``match`` maps a dotted field path to the globs it accepts.

    The default of a policy is a ``Rule`` named ``default`` with an empty ``match`` (matches all).
    """

    name: str
    cls: str
    days: int
    match: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    legal_hold: bool = False
    line: int | None = None  # where the rule starts in the policy file, for messages
    _matchers: tuple[tuple[tuple[str, ...], Matcher], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        compiled = tuple(
            (tuple(path.split(".")), _compile_globs(globs)) for path, globs in self.match.items()
        )
        object.__setattr__(self, "_matchers", compiled)

    def matches(self, event: Mapping[str, object]) -> bool:
        """True when every ``match`` entry accepts the event's value at that path."""
        for path, accept in self._matchers:
            value: object = event
            for key in path:
                if type(value) is not dict:
                    return False
                value = value.get(key)
            if type(value) is str:
                text = value
            elif type(value) is bool:
                text = "true" if value else "false"
            elif type(value) is int or type(value) is float:
                text = str(value)
            else:  # absent, null, object or list: documented as "never matches"
                return False
            if accept(text) is None:
                return False
        return True


def _expires_at(time_unix_nano: int, days: int) -> str:
    secs, frac = divmod(time_unix_nano + days * _NS_PER_DAY, 1_000_000_000)
    # Events arrive in time order, many per second: format each second once.
    whole = _SECONDS.get(secs)
    if whole is None:
        whole = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs))
        if len(_SECONDS) >= _SECONDS_MAX:
            _SECONDS.clear()
        _SECONDS[secs] = whole
    # str(10**9 + frac)[1:] zero-pads to 9 digits faster than a format spec.
    return f"{whole}.{str(1_000_000_000 + frac)[1:]}Z"


_SECONDS: dict[int, str] = {}
_SECONDS_MAX = 1024


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Ordered rules plus a default. Build it with ``load_policy`` / ``load_policy_file``."""

    default: Rule
    rules: tuple[Rule, ...] = ()
    source: str = "<string>"

    def select(self, event: AuditEvent | Mapping[str, object]) -> Rule:
        """The first rule matching ``event``, else the default."""
        for rule in self.rules:
            if rule.matches(event):
                return rule
        return self.default

    def tag(self, event: AuditEvent) -> dict[str, object]:
        """The ``retention`` object for ``event``.

        Example: ``{"class": "security", "days": 2555, "expires_at":
        "2033-10-07T07:54:53.132000000Z", "legal_hold": False, "rule": "security-denials"}``.
        ``expires_at`` is the event time plus ``days`` (RFC 3339 UTC, nanoseconds).
        """
        rule = self.select(event)
        return {
            "class": rule.cls,
            "days": rule.days,
            "expires_at": _expires_at(event["time_unix_nano"], rule.days),
            "legal_hold": rule.legal_hold,
            "rule": rule.name,
        }


def class_topic(base: str, cls: str) -> str:
    """Name of the per-class topic: ``class_topic("audit.siem", "pci") == "audit.siem.pci"``."""
    if not _CLASS_RE.fullmatch(cls):
        raise ValueError(f"invalid retention class {cls!r}")
    return f"{base}.{cls}"


def class_retention_ms(policy: RetentionPolicy) -> dict[str, int]:
    """``retention.ms`` per class for per-class topics.

    A topic keeps every record of its class for as long as the longest-lived rule of that class
    says; a class with any legal-hold rule gets ``-1`` (Kafka: never delete).
    Example: the default policy gives ``{"standard": 7776000000, "security": 220752000000}``.
    """
    out: dict[str, int] = {}
    for rule in (policy.default, *policy.rules):
        ms = -1 if rule.legal_hold else rule.days * _MS_PER_DAY
        prev = out.get(rule.cls)
        if prev is None or (prev != -1 and (ms == -1 or ms > prev)):
            out[rule.cls] = ms
    return out


# --------------------------------------------------------------------------------------------
# Loading


class _Walker:
    """Checks a composed YAML node tree and builds the policy; every error carries a position."""

    def __init__(self, loader: yaml.SafeLoader, source: str) -> None:
        self.loader = loader
        self.source = source

    def error(self, node: Node | None, message: str) -> PolicyError:
        if node is None:
            return PolicyError(message, self.source)
        mark = node.start_mark
        return PolicyError(message, self.source, mark.line + 1, mark.column + 1)

    def scalar(self, node: Node) -> object:
        if not isinstance(node, ScalarNode):
            return node  # caller reports the wrong type
        return self.loader.construct_object(node, deep=True)

    def mapping(
        self, node: Node, what: str, allowed: Sequence[str] | None
    ) -> dict[str, tuple[Node, Node]]:
        if not isinstance(node, MappingNode):
            raise self.error(node, f"{what} must be a mapping")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            key = self.scalar(key_node)
            if not isinstance(key, str):
                raise self.error(key_node, f"{what}: keys must be strings")
            if key in out:
                raise self.error(key_node, f"{what}: duplicate key {key!r}")
            if allowed is not None and key not in allowed:
                raise self.error(
                    key_node, f"{what}: unknown key {key!r} (allowed: {', '.join(allowed)})"
                )
            out[key] = (key_node, value_node)
        return out

    def string(self, node: Node, what: str) -> str:
        value = self.scalar(node)
        if not isinstance(value, str) or not value:
            raise self.error(node, f"{what} must be a non-empty string")
        return value

    def retention(
        self, node: Node, keys: dict[str, tuple[Node, Node]], what: str
    ) -> tuple[str, int, bool]:
        """The ``class``, ``days`` and ``legal_hold`` shared by rules and the default."""
        for required in ("class", "days"):
            if required not in keys:
                raise self.error(node, f"{what}: missing required key {required!r}")
        cls_node, days_node = keys["class"][1], keys["days"][1]
        cls = self.string(cls_node, f"{what}: class")
        if not _CLASS_RE.fullmatch(cls):
            raise self.error(
                cls_node,
                f"{what}: class {cls!r} must be lowercase letters, digits, '-' or '_' "
                "(it becomes part of a topic name)",
            )
        days = self.scalar(days_node)
        if type(days) is not int:
            raise self.error(days_node, f"{what}: days must be an integer")
        if not 1 <= days <= MAX_DAYS:
            raise self.error(days_node, f"{what}: days must be between 1 and {MAX_DAYS}")
        hold: object = False
        if "legal_hold" in keys:
            hold = self.scalar(keys["legal_hold"][1])
            if type(hold) is not bool:
                raise self.error(keys["legal_hold"][1], f"{what}: legal_hold must be true/false")
        return cls, days, bool(hold)

    def field_path(self, node: Node, what: str) -> str:
        path = self.string(node, f"{what}: field path")
        parts = path.split(".")
        head, rest = parts[0], parts[1:]
        if head in _SCALAR_FIELDS and not rest:
            return path
        if head in _WORKLOAD_FIELDS and len(rest) == 1 and rest[0] in _WORKLOAD_KEYS:
            return path
        if head in _OPEN_FIELDS and len(rest) == 1 and _SUBKEY_RE.fullmatch(rest[0]):
            return path
        hint = ""
        if head in _WORKLOAD_FIELDS:
            hint = f" ({head}.<{'|'.join(sorted(_WORKLOAD_KEYS))}>)"
        elif head in _OPEN_FIELDS:
            hint = f" ({head}.<snake_case key>)"
        elif head not in _SCALAR_FIELDS:
            known = sorted(_SCALAR_FIELDS | _WORKLOAD_FIELDS | _OPEN_FIELDS)
            hint = f" (top-level fields: {', '.join(known)})"
        raise self.error(node, f"{what}: unknown audit event field {path!r}{hint}")

    def globs(self, node: Node, what: str) -> tuple[str, ...]:
        items = node.value if isinstance(node, SequenceNode) else [node]
        if isinstance(node, SequenceNode) and not items:
            raise self.error(node, f"{what}: glob list must not be empty")
        out = []
        for item in items:
            value = self.scalar(item)
            if not isinstance(value, str):
                shown = "a list or mapping" if isinstance(value, Node) else repr(value)
                raise self.error(
                    item,
                    f"{what}: glob must be a string, got {shown} "
                    '(quote numbers and booleans, e.g. "403" or "4*")',
                )
            out.append(value)
        return tuple(out)

    def rule(self, node: Node, index: int, taken: dict[str, int]) -> Rule:
        what = f"rules[{index}]"
        keys = self.mapping(node, what, _RULE_KEYS)
        for required in ("name", "match"):
            if required not in keys:
                raise self.error(node, f"{what}: missing required key {required!r}")
        name_node = keys["name"][1]
        name = self.string(name_node, f"{what}: name")
        what = f"rule {name!r}"
        if name == "default":
            raise self.error(name_node, f"{what}: the name 'default' is reserved")
        if name in taken:
            raise self.error(
                name_node, f"{what}: duplicate rule name (first at line {taken[name]})"
            )
        taken[name] = name_node.start_mark.line + 1
        match_node = keys["match"][1]
        match_keys = self.mapping(match_node, f"{what}: match", None)
        if not match_keys:
            raise self.error(match_node, f"{what}: match must name at least one field")
        match: dict[str, tuple[str, ...]] = {}
        for key_node, globs_node in match_keys.values():
            path = self.field_path(key_node, what)
            match[path] = self.globs(globs_node, f"{what}: {path}")
        cls, days, hold = self.retention(node, keys, what)
        return Rule(name, cls, days, match, hold, line=node.start_mark.line + 1)

    def policy(self, root: Node | None) -> RetentionPolicy:
        if root is None:
            raise self.error(None, "policy is empty")
        top = self.mapping(root, "policy", _TOP_KEYS)
        default = Rule(name="default", cls="standard", days=90)
        if "default" in top:
            dnode = top["default"][1]
            dkeys = self.mapping(dnode, "default", _DEFAULT_KEYS)
            cls, days, hold = self.retention(dnode, dkeys, "default")
            default = Rule("default", cls, days, legal_hold=hold, line=dnode.start_mark.line + 1)
        rules: list[Rule] = []
        rnode = top["rules"][1] if "rules" in top else None
        if rnode is None or (isinstance(rnode, ScalarNode) and self.scalar(rnode) is None):
            pass  # absent, or "rules:" with nothing under it
        elif not isinstance(rnode, SequenceNode):
            raise self.error(rnode, "rules must be a list")
        else:
            taken: dict[str, int] = {}
            rules = [self.rule(n, i, taken) for i, n in enumerate(rnode.value)]
        return RetentionPolicy(default=default, rules=tuple(rules), source=self.source)


def load_policy(text: str, source: str = "<string>") -> RetentionPolicy:
    """Parse and validate a policy; raise ``PolicyError`` pointing at the bad line.

    A missing ``default`` means ``{class: standard, days: 90}``; a missing ``rules`` means none.
    """
    loader = yaml.SafeLoader(text)
    try:
        try:
            root = loader.get_single_node()
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            message = "invalid YAML: " + "; ".join(filter(None, (exc.context, exc.problem)))
            if mark is None:
                raise PolicyError(message, source) from exc
            raise PolicyError(message, source, mark.line + 1, mark.column + 1) from exc
        except yaml.YAMLError as exc:
            raise PolicyError(f"invalid YAML: {exc}", source) from exc
        walker = _Walker(loader, source)
        try:
            return walker.policy(root)
        except yaml.MarkedYAMLError as exc:
            # a scalar the constructor rejects, e.g. an impossible date
            mark = exc.problem_mark
            line, col = (mark.line + 1, mark.column + 1) if mark else (None, None)
            raise PolicyError(f"invalid value: {exc.problem}", source, line, col) from exc
    finally:
        loader.dispose()


def load_policy_file(path: str | os.PathLike[str]) -> RetentionPolicy:
    """Read and validate the policy file at ``path`` (UTF-8)."""
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return load_policy(text, source=os.fspath(path))


DEFAULT_POLICY_YAML = """\
# Used when no policy file is configured.
default: {class: standard, days: 90}
rules:
  - name: security-denials
    match: {authorization.decision: deny}
    class: security
    days: 2555
"""

DEFAULT_POLICY: RetentionPolicy = load_policy(DEFAULT_POLICY_YAML, source="<default policy>")
