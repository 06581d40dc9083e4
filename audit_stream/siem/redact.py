"""Redaction of credentials from audit events before they leave for a SIEM.

Requirements
    * Every string of the event is inspected (paths, user agent, authorization reason, response
      details, any extra key), not only the request path. The input event is never modified.
    * What is replaced by ``[REDACTED]``:
        - values of credential-carrying query / matrix parameters (``token``, ``access_token``,
          ``api_key``, ``password``, ``code``, ``X-Amz-Signature``, ... see ``SECRET_PARAMS``),
          names matched case-insensitively, also when percent-encoded (``%3Ftoken%3Dabc`` inside
          a ``next=`` parameter, ``access%5Ftoken=``);
        - the whole value of a key named like a credential header (``authorization``,
          ``proxy-authorization``, ``cookie``, ``set-cookie``, ``x-api-key``...) or a credential
          (``password``, ``client_secret``, ``access_token``... see ``SECRET_KEYS``), and
          ``Authorization: ...`` / ``Cookie=...`` pairs written inside any string;
        - ``Bearer <token>`` and ``Basic <base64 user:pass>`` anywhere;
        - JWT-looking strings (``eyJ<...>.eyJ<...>.<...>``) anywhere;
        - matches of operator-supplied regexes (whole match, or only the group named ``value``).
    * No false positives on ordinary text: a parameter name must start the parameter
      (``?monkey=1`` and ``/keynote`` stay), ``Basic`` needs a real base64 ``user:pass``, and a
      ``Bearer`` word needs a token-looking value.
    * Fast on the common case (20k+ events/s): the event's JSON encoding, which the output needs
      anyway, is tested with substring checks (``Redactor.suspects``); only events that hit are
      walked, and only those with a real match are copied and rewritten.
    * Idempotent: redacting a redacted event finds nothing more (``[REDACTED]`` is never re-counted).

Example
    >>> r = Redactor()
    >>> event = {"request": {"path": "/cb?code=abc123&state=x"}}
    >>> out, n = r.redact_event(event)
    >>> out["request"]["path"], n
    ('/cb?code=[REDACTED]&state=x', 1)
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import cast

import orjson

from audit_stream.models.records import AuditEvent

__all__ = ["MASK", "SECRET_HEADERS", "SECRET_KEYS", "SECRET_PARAMS", "Redactor"]

MASK = "[REDACTED]"

SECRET_PARAMS: tuple[str, ...] = (
    "token", "access_token", "id_token", "refresh_token", "auth_token", "private_token",
    "api_key", "apikey", "api-key", "key", "password", "passwd", "pwd", "secret",
    "client_secret", "client_assertion", "signature", "sig", "code", "auth", "session",
    "sessionid", "session_id", "jsessionid", "phpsessid", "jwt",
    "x-amz-signature", "x-amz-credential", "x-amz-security-token",
    "x-goog-signature", "x-goog-credential", "x-goog-security-token",
)  # fmt: skip

SECRET_HEADERS: tuple[str, ...] = (
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "x-auth-token",
    "x-amz-security-token",
)  # fmt: skip

# Keys whose whole string value is a credential (compared lowercased). Generic parameter names
# such as "key", "code" or "session" are left out: as object keys they name ordinary facts.
SECRET_KEYS: frozenset[str] = frozenset(
    {
        *SECRET_HEADERS,
        *(h.replace("-", "_") for h in SECRET_HEADERS),
        *("password", "passwd", "secret", "client_secret", "api_key", "apikey"),
        *("access_token", "refresh_token", "id_token", "auth_token", "private_token"),
    }
)

_NOT_MASKED = r"(?!\[REDACTED\])"


def _param_name_pattern(name: str) -> str:
    # A name may arrive percent-encoded when the whole URL sits inside another parameter.
    out = []
    for ch in name:
        if ch == "_":
            out.append("(?:_|%5[fF])")
        elif ch == "-":
            out.append("(?:-|%2[dD])")
        else:
            out.append(re.escape(ch))
    return "".join(out)


def _param_regex(names: Sequence[str]) -> re.Pattern[str]:
    alternatives = "|".join(
        _param_name_pattern(n) for n in sorted(set(names), key=len, reverse=True)
    )
    return re.compile(
        r"(?P<pre>^|[?&;#\s\"',]|%3[fF]|%26|%3[bB])"
        rf"(?P<name>{alternatives})"
        r"(?P<eq>=|%3[dD])"
        rf"{_NOT_MASKED}(?P<value>(?:(?!%26)[^&#;?\s\"'])+)",
        re.IGNORECASE,
    )


# Every name in SECRET_HEADERS contains "authorization", "cookie" or "x-a": the triggers that
# ``redact_text`` tests before running this regex.
_HEADER_PAIR = re.compile(
    rf"(?P<name>\b(?:{'|'.join(sorted(SECRET_HEADERS, key=len, reverse=True))}))"
    r"(?P<sep>[\"']?\s*[:=]\s*)"
    rf"{_NOT_MASKED}(?:\"(?P<dq>[^\"]+)\"|'(?P<sq>[^']+)'|(?P<bare>[^\r\n\"'&]+))",
    re.IGNORECASE,
)
_BEARER = re.compile(
    rf"(?P<scheme>\b(?:bearer|basic))\s+{_NOT_MASKED}(?P<token>[A-Za-z0-9._~+/=-]{{6,}})",
    re.IGNORECASE,
)
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")

# Lowercase substrings one of which every name of ``SECRET_HEADERS`` and ``SECRET_KEYS`` contains
# ("x-api-key" has "key", "x-auth-token" "token"...), plus the Bearer/Basic schemes and the start
# of a JWT: every built-in pattern but the parameter one (found through "=") needs one of them.
# A hit only means the event is walked; a URL such as ``/oauth/token`` costs that walk and nothing
# else. The scan itself goes through ``_ANCHORED`` below, which must list exactly these.
_TRIGGERS = ("authorization", "cookie", "key", "token", "passw", "secret", "bearer", "basic", "eyj")
# The same triggers found by a rare letter each: a single-character search is a memchr, a
# substring search costs as much as a regex pass, and nine of them were most of the pre-check.
# (anchor letter, (trigger, offset of the anchor in it), ...); every trigger is listed once, under
# a letter it contains; "secret" has no rare letter and is searched whole.
_ANCHORED: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("k", (("key", 0), ("token", 2), ("cookie", 3))),
    ("z", (("authorization", 7),)),
    ("w", (("passw", 4),)),
    ("j", (("eyj", 2),)),
    ("b", (("bearer", 0), ("basic", 0))),
)
_UNANCHORED = ("secret",)
_DECISION_KEY = '"authorization":{'  # the event's own access decision object, not a header
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789_-.%")
_ENCODED_SEPARATORS = re.compile(r"%3f|%26|%3b")


def _has_trigger(low: str) -> bool:
    """Whether lowercased ``low`` contains one of ``_TRIGGERS``, not counting the audit event's own
    ``"authorization":{`` decision object (a string-valued key of that name still counts).

    Each anchor occurrence is first told apart by the letter after it (``bookinfo``, ``inbound``
    have a "b" or a "k" but the wrong next letter), then compared by slice: cheap in compiled
    code, where ``startswith`` with a start index is a generic method call."""
    for anchor, triggers in _ANCHORED:
        i = low.find(anchor)
        while i != -1:
            after = low[i + 1 : i + 2]
            for trigger, offset in triggers:
                if offset + 1 < len(trigger) and after != trigger[offset + 1]:
                    continue
                start = i - offset
                if (
                    start >= 0
                    and low[start : start + len(trigger)] == trigger
                    and (trigger != "authorization" or low[start - 1 : start + 16] != _DECISION_KEY)
                ):
                    return True
            i = low.find(anchor, i + 1)
    return any(trigger in low for trigger in _UNANCHORED)


def _is_token(scheme: str, token: str) -> bool:
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(token, validate=True)
        except (binascii.Error, ValueError):
            return False
        return b":" in decoded
    # "Bearer authentication failed" is prose, "Bearer 3f9a..." is a token.
    return len(token) >= 20 or (len(token) >= 8 and not token.isalpha())


class Redactor:
    """Replaces credentials in audit events with ``[REDACTED]``.

    ``extra_params`` adds query-parameter names to ``SECRET_PARAMS``; ``extra_patterns`` adds
    regexes (Python syntax, case-sensitive unless they say ``(?i)``) whose matches are masked,
    or only their ``value`` group when they define one. Invalid regexes raise ``ValueError``.
    """

    def __init__(self, extra_patterns: Sequence[str] = (), extra_params: Sequence[str] = ()):
        names = (*SECRET_PARAMS, *(p.lower() for p in extra_params))
        self._params = _param_regex(names)
        self._param_names = frozenset(names)
        extras: list[re.Pattern[str]] = []
        for pattern in extra_patterns:
            try:
                extras.append(re.compile(pattern))
            except re.error as exc:
                raise ValueError(f"invalid redaction pattern {pattern!r}: {exc}") from exc
        self._extras = tuple(extras)

    # -- strings -----------------------------------------------------------------------------

    def redact_text(self, text: str) -> tuple[str, int]:
        """``text`` with every credential masked, and the number of masks applied.

        Each pattern runs only when its cheap substring trigger is present.
        """
        total = 0
        low = text.lower()
        if "authorization" in low or "cookie" in low or "x-a" in low:
            text, n = _HEADER_PAIR.subn(_mask_header, text)
            total += n
        if "=" in low or "%3d" in low:
            text, n = self._params.subn(_mask_param, text)
            total += n
        count = [0]
        if "bearer" in low or "basic" in low:
            text = _BEARER.sub(_bearer_masker(count), text)
        if "eyJ" in text:
            text, n = _JWT.subn(MASK, text)
            total += n
        for pattern in self._extras:
            text = pattern.sub(_extra_masker(count), text)
        return text, total + count[0]

    def suspects(self, encoded: bytes) -> bool:
        """Cheap pre-check on an event's JSON encoding: False only when no pattern can match any
        of its strings and no key names a credential.

        The encoding is made anyway for the output, and scanning one buffer with substring
        tests costs a fraction of walking the event's dicts: lowercased once, then each trigger is
        found through a rare letter of it (``_ANCHORED``); parameter names are found by looking
        left of each ``=`` (or ``%3D``) and checked against a set. Keys and values are tested
        alike: a trigger in a key only costs the walk. An encoding with escapes in it is always
        walked: the escaped form could hide a match from the scan. With operator patterns
        configured every event is walked.
        """
        text = encoded.decode()
        if "\\" in text:
            # A JSON escape (control character, quote or backslash in a string) can hide a
            # boundary the patterns rely on ("\\nX-Amz-Signature="): walk such events.
            return True
        low = text.lower()
        if _has_trigger(low):
            return True
        # "=" and "%3d" found by their first character (memchr), like the triggers
        for sep in ("=", "%3d"):
            i = low.find(sep[0])
            while i != -1:
                if len(sep) == 1 or low.startswith(sep, i):
                    j = i
                    while j and low[j - 1] in _NAME_CHARS:
                        j -= 1
                    name = low[j:i]
                    if "%" in name:
                        name = _ENCODED_SEPARATORS.split(name)[-1].replace("%5f", "_")
                        name = name.replace("%2d", "-")
                    if name in self._param_names:
                        return True
                i = low.find(sep[0], i + 1)
        # Operator patterns are written against single values (anchors, lookarounds): only the
        # walk can apply them faithfully, so configuring any means every event is walked.
        return bool(self._extras)

    # -- events ------------------------------------------------------------------------------

    def redact_event(
        self, event: AuditEvent, encoded: bytes | None = None
    ) -> tuple[AuditEvent, int]:
        """A redacted copy of ``event`` and the number of redactions.

        ``encoded`` is ``orjson.dumps(event)`` when the caller has it already. When nothing needs
        masking the same object is returned with 0 (no copy is made).
        """
        if not self.suspects(orjson.dumps(event) if encoded is None else encoded):
            return event, 0
        redacted, count = self._redact_value(event)
        if count == 0:
            return event, 0
        return cast(AuditEvent, redacted), count

    def _redact_value(self, value: object) -> tuple[object, int]:
        if isinstance(value, str):
            return self.redact_text(value)
        if isinstance(value, dict):
            out: dict[object, object] = {}
            total = 0
            for key, item in value.items():
                if isinstance(item, str) and isinstance(key, str) and _secret_key(key):
                    if item and item != MASK:
                        out[key] = MASK
                        total += 1
                    else:
                        out[key] = item
                    continue
                out[key], n = self._redact_value(item)
                total += n
            return out, total
        if isinstance(value, list):
            items = []
            total = 0
            for item in value:
                new, n = self._redact_value(item)
                items.append(new)
                total += n
            return items, total
        return value, 0


def _secret_key(key: str) -> bool:
    return key.lower() in SECRET_KEYS


def _mask_header(m: re.Match[str]) -> str:
    value = m["dq"] if m["dq"] is not None else m["sq"] if m["sq"] is not None else None
    if value is not None:
        quote = '"' if m["dq"] is not None else "'"
        return f"{m['name']}{m['sep']}{quote}{MASK}{quote}"
    return f"{m['name']}{m['sep']}{MASK}"


def _mask_param(m: re.Match[str]) -> str:
    return f"{m['pre']}{m['name']}{m['eq']}{MASK}"


def _bearer_masker(count: list[int]) -> Callable[[re.Match[str]], str]:
    def mask(m: re.Match[str]) -> str:
        if not _is_token(m["scheme"], m["token"]):
            return m[0]
        count[0] += 1
        return f"{m['scheme']} {MASK}"

    return mask


def _extra_masker(count: list[int]) -> Callable[[re.Match[str]], str]:
    def mask(m: re.Match[str]) -> str:
        if m[0] == MASK or not m[0]:
            return m[0]
        if "value" in m.re.groupindex:
            if m["value"] is None or m["value"] == MASK:
                return m[0]
            start, end = m.span("value")
            base = m.start()
            count[0] += 1
            return m[0][: start - base] + MASK + m[0][end - base :]
        count[0] += 1
        return MASK

    return mask
