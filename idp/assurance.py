"""Levels of assurance (protocol.md "Assurance"): ``acr`` values and RFC 8176 ``amr`` values.

``acr`` follows the vectors of trust used by UK government identity:

* ``Cl`` — one factor: a password (``pwd``), or an email code;
* ``Cl.Cm`` — two factors: a passkey with user verification, or a password plus a passkey.

``amr`` (RFC 8176 §2, IANA "Authentication Method Reference Values") as we use it:

* ``pwd`` — a password;
* ``hwk`` — a passkey bound to one authenticator (WebAuthn L3 §6.1.3: backup eligibility
  ``BE`` clear), so the private key is held by that device;
* ``swk`` — a synced passkey (``BE`` set): the key may be copied to other devices by its
  passkey provider, so we do not claim it is hardware-bound;
* ``mfa`` — more than one factor took part. Every passkey we accept carries user
  verification (a PIN or biometric checked by the authenticator, WebAuthn L3 §6.2.3), which
  the authenticator does not tell us apart, so we say ``mfa`` rather than ``pin`` or ``fpt``.
  ``user`` (a presence test) is implied by every WebAuthn assertion and is not listed.

What a request asks for: ``acr_values`` and the client's ``default_acr_values`` are *voluntary*
(OIDC Core §3.1.2.1, OIDC Registration §2); an ``acr`` claim request with ``"essential": true``
is not (OIDC Core §5.5.1.1). Values are in order of preference and any of them will do, so the
lowest known value is the minimum; values we do not know are ignored, so ``acr_values`` naming
no known value is as if absent (the client's defaults apply), and an essential claim request
naming none cannot be met. A session above the minimum
satisfies it and the ID token states the session's own, higher, ``acr``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from typing import Any

ONE_FACTOR = "Cl"
TWO_FACTOR = "Cl.Cm"
ACR_VALUES_SUPPORTED = (ONE_FACTOR, TWO_FACTOR)
_RANK = {ONE_FACTOR: 1, TWO_FACTOR: 2}

PASSWORD_AMR = ["pwd"]


@dataclasses.dataclass(frozen=True)
class AcrRequest:
    """The lowest level that satisfies a request (None: it named no level we know)."""

    minimum: str | None
    essential: bool


def requested_acr(acr_values: str | None, claims_request: dict[str, Any] | None,
                  default_acr_values: Iterable[str]) -> AcrRequest | None:
    """What the request asks for: an ``acr`` claim request or ``acr_values`` override the
    client's ``default_acr_values`` (OIDC Registration §2); None when nothing is asked."""
    claim = ((claims_request or {}).get("id_token") or {}).get("acr")
    essential = isinstance(claim, dict) and claim.get("essential") is True
    claimed = _request(_claim_values(claim), essential=essential)
    asked = _request((acr_values or "").split(), essential=False)
    return claimed or asked or _request(list(default_acr_values), essential=False)


def _claim_values(claim: Any) -> list[str]:
    """OIDC Core §5.5.1: an individual claim request names one ``value`` or several ``values``."""
    if not isinstance(claim, dict):
        return []
    if isinstance(claim.get("value"), str):
        return [claim["value"]]
    values = claim.get("values")
    return [v for v in values if isinstance(v, str)] if isinstance(values, list) else []


def _request(values: list[str], *, essential: bool) -> AcrRequest | None:
    known = [value for value in values if value in _RANK]
    if not values:
        return None
    if not known:
        return AcrRequest(minimum=None, essential=True) if essential else None
    return AcrRequest(minimum=min(known, key=_RANK.__getitem__), essential=essential)


def satisfies(session_acr: str, request: AcrRequest) -> bool:
    if request.minimum is None:
        return False
    return _RANK.get(session_acr, 0) >= _RANK[request.minimum]


def passkey_amr(backup_eligible: bool) -> list[str]:
    """RFC 8176 §2 methods of one passkey assertion with user verification (module docstring)."""
    return ["swk" if backup_eligible else "hwk", "mfa"]


def combine_amr(*methods: Iterable[str]) -> list[str]:
    """The methods of a session that added a factor (a step-up), each listed once, in order."""
    return list(dict.fromkeys(method for group in methods for method in group))
