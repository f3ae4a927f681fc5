"""Which claims a scope releases (OIDC Core §5.4) and the ``claims`` request parameter (§5.5)."""

from __future__ import annotations

import json
from typing import Any

from authlib.oauth2.rfc6749.errors import InvalidRequestError

from idp.models import Account

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name", "given_name", "family_name", "birthdate", "locale"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "address": ("address",),
}
CLAIM_SCOPE = {claim: scope for scope, claims in SCOPE_CLAIMS.items() for claim in claims}
STANDARD_SCOPES = ("openid", "profile", "email", "phone", "address", "offline_access")
# "act" (RFC 8693 §4.1) and "delegation": when a delegate acts for someone (delegation.md).
CLAIMS_SUPPORTED = sorted({"iss", "aud", "exp", "iat", "auth_time", "nonce", "acr", "amr", "sid", "at_hash",
                           "act", "delegation", *CLAIM_SCOPE})

SCOPE_DESCRIPTIONS = {
    "profile": "your name, date of birth and preferred language",
    "email": "your email address",
    "phone": "your phone number",
    "address": "your postal address",
    "offline_access": "stay connected when you are not using the service",
}

# Each claim in plain English, listed under its scope on the consent page (consent-ledger.md).
CLAIM_NAMES = {
    "name": "full name", "given_name": "first name", "family_name": "last name", "birthdate": "date of birth",
    "locale": "preferred language", "email": "email address", "email_verified": "whether your email is confirmed",
    "phone_number": "phone number", "phone_number_verified": "whether your phone number is confirmed",
    "address": "postal address",
}
SCOPE_CLAIM_NAMES = {scope: [CLAIM_NAMES[claim] for claim in claims if claim in CLAIM_NAMES]
                     for scope, claims in SCOPE_CLAIMS.items()}


def parse_claims_request(raw: str | None) -> dict[str, dict[str, Any]] | None:
    """Validate the ``claims`` parameter: a JSON object with optional userinfo/id_token members."""
    if raw is None or raw == "":
        return None
    try:
        value = json.loads(raw)
    except ValueError:
        raise InvalidRequestError("The 'claims' parameter is not valid JSON.") from None
    if not isinstance(value, dict) or not set(value) <= {"userinfo", "id_token"}:
        raise InvalidRequestError("The 'claims' parameter must be an object with 'userinfo' and/or 'id_token'.")
    for member in value.values():
        if not isinstance(member, dict) or not all(v is None or isinstance(v, dict) for v in member.values()):
            raise InvalidRequestError("Each 'claims' member must map claim names to null or an object.")
    return value


def scopes_implied_by(claims_request: dict[str, dict[str, Any]] | None) -> set[str]:
    """Scopes whose consent covers the claims asked for by name."""
    if not claims_request:
        return set()
    names = {name for member in claims_request.values() for name in member}
    return {CLAIM_SCOPE[name] for name in names if name in CLAIM_SCOPE} - {"openid"}


def account_claims(account: Account) -> dict[str, Any]:
    """The account's claims; a child profile has no email address (its stored one is a placeholder
    that never delivers), so it releases none: only what the parent entered."""
    from idp.dependents import is_dependent

    no_email = is_dependent(account)
    return {
        "name": account.name,
        "given_name": account.given_name,
        "family_name": account.family_name,
        "birthdate": account.birthdate.isoformat() if account.birthdate else None,
        "locale": account.locale,
        "email": None if no_email else account.email,
        "email_verified": None if no_email else account.email_verified,
        "phone_number": account.phone_number,
        "phone_number_verified": account.phone_number_verified if account.phone_number else None,
        "address": account.address,
    }


def released_claims(account: Account, consented_scopes: set[str], *, by_scope: bool,
                    requested: dict[str, Any] | None) -> dict[str, Any]:
    """The claims to release: those of the consented scopes (userinfo), or only those asked for
    by name in the ``claims`` parameter (ID token, OIDC Core §5.4), never beyond consent."""
    names: set[str] = set()
    if by_scope:
        names |= {claim for scope in consented_scopes for claim in SCOPE_CLAIMS.get(scope, ())}
    if requested:
        names |= {name for name in requested if CLAIM_SCOPE.get(name) in consented_scopes}
    names.discard("sub")
    values = account_claims(account)
    return {name: values[name] for name in sorted(names) if values.get(name) is not None}
