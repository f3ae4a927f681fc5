"""Signing and verifying JWTs (RFC 7519) with PyJWT, given key material the keyring resolved.

Verification follows RFC 8725 (JWT BCP): the algorithm is taken from our key record and
never from the token (§3.1), the ``typ`` header separates token kinds (§3.11), and every
PyJWT option is spelled out rather than left to library defaults.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import jwt
from jwt.types import Options

from keys.errors import TokenVerificationError
from keys.jwk import PrivateKey, PublicKey

# Header parameters the keyring controls; callers may not override them via extra headers.
RESERVED_HEADERS = frozenset({"alg", "kid", "typ", "crit", "b64"})

Resolver = Callable[[str], tuple[str, PublicKey] | None]


def encode(
    claims: Mapping[str, Any],
    *,
    kid: str,
    alg: str,
    private_key: PrivateKey,
    typ: str | None = None,
    extra_headers: Mapping[str, Any] | None = None,
) -> str:
    clash = RESERVED_HEADERS & set(extra_headers or {})
    if clash:
        raise ValueError(f"extra_headers may not set {sorted(clash)}")
    headers: dict[str, Any] = {**(extra_headers or {}), "kid": kid}  # RFC 7515 §4.1.4
    if typ is not None:
        headers["typ"] = typ  # RFC 7515 §4.1.9, e.g. "at+jwt" (RFC 9068 §2.1)
    return jwt.encode(dict(claims), private_key, algorithm=alg, headers=headers)


def decode(
    token: str,
    *,
    resolve: Resolver,
    audience: str | list[str] | None,
    issuer: str,
    typ: str | None,
    verify_exp: bool,
    leeway: dt.timedelta,
) -> dict[str, Any]:
    header = _unverified_header(token)
    alg, key = _key_for(header, resolve)
    _check_typ(header.get("typ"), typ)
    try:
        return jwt.decode(
            token,
            key=key,
            algorithms=[alg],  # exactly the alg recorded for this kid: no "none", no HMAC
            audience=audience,
            issuer=issuer,
            leeway=leeway,
            options=_options(audience=audience, verify_exp=verify_exp),
        )
    except (jwt.PyJWTError, ValueError) as exc:
        raise TokenVerificationError(f"token rejected: {exc}") from exc


def _unverified_header(token: str) -> dict[str, Any]:
    if not isinstance(token, str):
        raise TokenVerificationError("token must be a string")
    try:
        return jwt.get_unverified_header(token)
    except (jwt.PyJWTError, ValueError) as exc:
        raise TokenVerificationError(f"malformed token: {exc}") from exc


def _key_for(header: Mapping[str, Any], resolve: Resolver) -> tuple[str, PublicKey]:
    kid = header.get("kid")
    if not isinstance(kid, str):
        raise TokenVerificationError("token header has no kid")
    found = resolve(kid)
    if found is None:
        raise TokenVerificationError("token signed with an unknown or unpublished key")
    alg, key = found
    # RFC 8725 §3.1: the token's "alg" must be the one our key was made for.
    if header.get("alg") != alg:
        raise TokenVerificationError("token alg does not match the key's alg")
    return alg, key


def _normalise_typ(value: str) -> str:
    # RFC 7515 §4.1.9: media types compare case-insensitively, "application/" may be omitted.
    lowered = value.lower()
    return lowered.removeprefix("application/")


def _check_typ(actual: Any, expected: str | None) -> None:
    if actual is not None and not isinstance(actual, str):
        raise TokenVerificationError("token typ is not a string")
    if expected is None:
        # RFC 8725 §3.11: a verifier of untyped JWTs must not accept explicitly typed ones
        # (an "at+jwt" access token must never pass as an ID token).
        if actual is not None and _normalise_typ(actual) != "jwt":
            raise TokenVerificationError(f"unexpected token typ {actual!r}")
        return
    if actual is None or _normalise_typ(actual) != _normalise_typ(expected):
        raise TokenVerificationError(f"token typ {actual!r} is not {expected!r}")


def _options(*, audience: str | list[str] | None, verify_exp: bool) -> Options:
    require = ["iss", "iat", "exp"]
    if audience is not None:
        require.append("aud")
    return {
        "verify_signature": True,
        "verify_exp": verify_exp,
        "verify_nbf": True,
        "verify_iat": True,
        "verify_iss": True,
        # audience=None means "the caller checks aud itself" (e.g. an id_token_hint).
        "verify_aud": audience is not None,
        "strict_aud": False,
        "verify_sub": True,
        "verify_jti": True,
        "enforce_minimum_key_length": True,
        "require": require,
    }
