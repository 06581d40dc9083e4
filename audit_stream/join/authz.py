"""The access decision a proxy took for one request, read from its access-log facts.

Requirements: pure; one call per audit event, so a handful of dict lookups and string tests;
never claims more than the record shows (``unknown`` when the proxy did not get far enough to
decide, or the record does not say).

Rules, first match wins. ``details`` is ``response_code_details`` (for TCP, the
``connection_termination_details`` Envoy's network filters set); ``flags`` are Envoy's short
response flags, comma-separated.

  #  signal                                          decision  policy / reason
  1  details rbac_access_denied_matched_policy[none] deny      an ALLOW policy applies and none
                                                               of its rules matched (no policy)
  2  details rbac_access_denied_matched_policy[P]    deny      policy P: a matching DENY policy
                                                               (Istio: ns[..]-policy[..]-rule[..])
  3  details rbac_access_denied (older Envoy)        deny      rbac, no policy named
  4  details ext_authz_denied, or flag UAEX          deny      external authorizer (Istio CUSTOM)
  5  details ext_authz_error                         deny      authorizer failed, fails closed
  6  details ext_authz_invalid                       deny      authorizer's answer rejected
  7  details jwt_authn_access_denied{R}              deny      request authentication failed: R
  8  no response code (absent or 0)                  unknown   no response was sent
  9  401 / 403                                       deny      "upstream responded 403" when
                                                               via_upstream; "proxy responded 403
                                                               (<details>)" for other local
                                                               replies; "responded 403" when the
                                                               record has no details (Linkerd,
                                                               custom formats)
 10  grpc_status PermissionDenied / Unauthenticated  deny      "responded grpc-status ..."
 11  a flag of RL RLSE FI IH DPE OM DO NFCF and      unknown   rejected locally by a filter that
     not via_upstream                                          may run before authorization
 12  any other code 100-599                          allow     "upstream responded <code>" when
                                                               via_upstream, else "responded
                                                               <code>, no denial recorded"

Envoy has no response flag for RBAC: an RBAC denial shows only in the details (rules 1-3).
Rule 12 counts router-stage failures (UH, UF, NR, UT, ...) as ``allow``: the router runs after
the authorization filters, so the request passed them.

Example::

    >>> decide({"response_code": 403,
    ...         "response_code_details": "rbac_access_denied_matched_policy[none]"})["decision"]
    'deny'
"""

from __future__ import annotations

from audit_stream.models.records import AccessFields

__all__ = ["decide"]

_RBAC_PREFIX = "rbac_access_denied"
_RBAC_MATCHED = "rbac_access_denied_matched_policy["
_JWT_PREFIX = "jwt_authn_access_denied"

_EXT_AUTHZ_REASONS = {
    "ext_authz_denied": "denied by the external authorizer (ext_authz_denied)",
    "ext_authz_error": "external authorizer failed and the filter fails closed (ext_authz_error)",
    "ext_authz_invalid": "external authorizer response was invalid (ext_authz_invalid)",
}

# Local rejections by filters whose place in the chain relative to RBAC / ext_authz depends on
# the configuration: the record cannot tell whether authorization ran.
_PRE_AUTHZ_FLAGS = frozenset({"RL", "RLSE", "FI", "IH", "DPE", "OM", "DO", "NFCF"})

_GRPC_DENIALS = {
    "7": "PermissionDenied",
    "PermissionDenied": "PermissionDenied",
    "PERMISSION_DENIED": "PermissionDenied",
    "16": "Unauthenticated",
    "Unauthenticated": "Unauthenticated",
    "UNAUTHENTICATED": "Unauthenticated",
}


_NO_FLAGS: frozenset[str] = frozenset()
_UPSTREAM_REASONS = {code: f"upstream responded {code}" for code in range(100, 600)}


def _known(value: str | None) -> str | None:
    # Proxies print "-" for an empty operator; it means unknown, like absence.
    return value if value and value != "-" else None


def _rbac(details: str) -> dict[str, str]:
    if details.startswith(_RBAC_MATCHED) and details.endswith("]"):
        policy = details[len(_RBAC_MATCHED) : -1]
        if policy == "none" or not policy:
            return {
                "decision": "deny",
                "reason": "rbac: an ALLOW policy applies and none of its rules matched",
            }
        return {"decision": "deny", "policy": policy, "reason": "rbac: matched DENY policy"}
    return {"decision": "deny", "reason": f"rbac: access denied ({details})"}


def decide(fields: AccessFields) -> dict[str, str]:
    """Return ``{"decision": "allow"|"deny"|"unknown", "reason": ..., ["policy": ...]}``.

    ``policy`` is present only when the proxy named one. See the module docstring for the table.
    """
    details = _known(fields.get("response_code_details")) or _known(
        fields.get("connection_termination_details")
    )
    flags_text = _known(fields.get("response_flags"))
    code = fields.get("response_code")
    grpc = _known(fields.get("grpc_status"))
    via_upstream = details == "via_upstream"
    if (
        via_upstream
        and flags_text is None
        and code is not None
        and 100 <= code <= 599
        and code != 401
        and code != 403
        and (grpc is None or grpc not in _GRPC_DENIALS)
    ):
        return {"decision": "allow", "reason": _UPSTREAM_REASONS[code]}  # the common case

    flags = frozenset(flags_text.split(",")) if flags_text else _NO_FLAGS
    if details is not None:
        if details.startswith(_RBAC_PREFIX):
            return _rbac(details)
        ext_reason = _EXT_AUTHZ_REASONS.get(details)
        if ext_reason is not None:
            return {"decision": "deny", "reason": ext_reason}
        if details.startswith(_JWT_PREFIX):
            cause = details[len(_JWT_PREFIX) :].strip("{}") or "unspecified"
            return {"decision": "deny", "reason": f"request authentication failed: {cause}"}
    if "UAEX" in flags:
        return {"decision": "deny", "reason": "denied by the external authorizer (UAEX)"}

    if code is None or not 100 <= code <= 599:
        return {"decision": "unknown", "reason": "no response code recorded"}
    if code in (401, 403):
        if via_upstream:
            reason = _UPSTREAM_REASONS[code]
        elif details is not None:
            reason = f"proxy responded {code} ({details})"
        else:
            reason = f"responded {code}"
        return {"decision": "deny", "reason": reason}
    if grpc is not None and grpc in _GRPC_DENIALS:
        return {"decision": "deny", "reason": f"responded grpc-status {_GRPC_DENIALS[grpc]}"}
    if not via_upstream and not flags.isdisjoint(_PRE_AUTHZ_FLAGS):
        local = ",".join(sorted(flags & _PRE_AUTHZ_FLAGS))
        return {
            "decision": "unknown",
            "reason": f"rejected locally ({local}) before authorization is known to have run",
        }
    if via_upstream:
        return {"decision": "allow", "reason": _UPSTREAM_REASONS[code]}
    return {"decision": "allow", "reason": f"responded {code}, no denial recorded"}
