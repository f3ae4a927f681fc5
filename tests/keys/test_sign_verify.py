"""Signing and verifying JWTs: round trips, and every forgery we know of is rejected."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from sqlalchemy.orm import Session

from keys.errors import NoSigningKeyError, TokenVerificationError
from keys.keyring import Keyring
from keys.models import ALGS
from tests.keys.conftest import AUDIENCE, ISSUER


def _claims(**overrides: Any) -> dict[str, Any]:
    now = dt.datetime.now(dt.UTC)
    claims = {"iss": ISSUER, "aud": AUDIENCE, "sub": "citizen-1", "iat": now, "exp": now + dt.timedelta(minutes=5)}
    return {**claims, **overrides}


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    payload = {k: int(v.timestamp()) if isinstance(v, dt.datetime) else v for k, v in claims.items()}
    return f"{_b64(header)}.{_b64(payload)}"


def _rejected(keyring: Keyring, session: Session, token: str, **kwargs: Any) -> None:
    options: dict[str, Any] = {"audience": AUDIENCE, "issuer": ISSUER, **kwargs}
    with pytest.raises(TokenVerificationError):
        keyring.verify_jwt(session, token, **options)


@pytest.mark.parametrize("alg", ALGS)
def test_a_token_signed_with_each_alg_verifies(db_session: Session, keyring: Keyring, alg: str) -> None:
    token = keyring.sign_jwt(db_session, _claims(), alg=alg)
    claims = keyring.verify_jwt(db_session, token, audience=AUDIENCE, issuer=ISSUER)
    assert claims["sub"] == "citizen-1"
    assert jwt.get_unverified_header(token)["alg"] == alg


@pytest.mark.parametrize("alg", ALGS)
def test_the_kid_in_the_header_resolves_in_the_jwks(db_session: Session, keyring: Keyring, alg: str) -> None:
    header = jwt.get_unverified_header(keyring.sign_jwt(db_session, _claims(), alg=alg))
    published = {jwk["kid"]: jwk for jwk in keyring.jwks(db_session)["keys"]}
    assert published[header["kid"]]["alg"] == alg and published[header["kid"]]["use"] == "sig"
    public_key = jwt.PyJWK(published[header["kid"]]).key  # what a relying party would do
    token = keyring.sign_jwt(db_session, _claims(), alg=alg)
    assert jwt.decode(token, public_key, algorithms=[alg], audience=AUDIENCE)["sub"] == "citizen-1"


def test_the_jwks_carries_no_private_members(db_session: Session, keyring: Keyring) -> None:
    for jwk in keyring.jwks(db_session)["keys"]:
        assert not {"d", "p", "q", "dp", "dq", "qi"} & jwk.keys()


def test_an_access_token_carries_and_requires_its_typ(db_session: Session, keyring: Keyring) -> None:
    token = keyring.sign_jwt(db_session, _claims(), typ="at+jwt")
    assert jwt.get_unverified_header(token)["typ"] == "at+jwt"
    assert keyring.verify_jwt(db_session, token, audience=AUDIENCE, issuer=ISSUER, typ="application/AT+JWT")
    _rejected(keyring, db_session, token)  # an access token is not an untyped (ID) token
    _rejected(keyring, db_session, token, typ="logout+jwt")


def test_a_token_without_the_expected_typ_is_rejected(db_session: Session, keyring: Keyring) -> None:
    _rejected(keyring, db_session, keyring.sign_jwt(db_session, _claims()), typ="at+jwt")


def test_a_token_with_alg_none_is_rejected(db_session: Session, keyring: Keyring) -> None:
    kid = keyring.signing_key(db_session, "ES256").kid
    _rejected(keyring, db_session, _unsigned({"alg": "none", "kid": kid}, _claims()) + ".")


def test_an_hs256_token_keyed_with_our_public_key_is_rejected(db_session: Session, keyring: Keyring) -> None:
    kid = keyring.signing_key(db_session, "RS256").kid
    found = keyring.public_key(db_session, kid)
    assert found is not None
    pem = found[1].public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = _unsigned({"alg": "HS256", "typ": "JWT", "kid": kid}, _claims())
    mac = hmac.new(pem, signing_input.encode(), hashlib.sha256).digest()
    _rejected(keyring, db_session, f"{signing_input}.{base64.urlsafe_b64encode(mac).rstrip(b'=').decode()}")


def test_a_token_claiming_another_alg_than_its_key_is_rejected(db_session: Session, keyring: Keyring) -> None:
    material = keyring.signing_key(db_session, "RS256")
    forged = jwt.encode(_claims(), material.private_key, algorithm="PS256", headers={"kid": material.kid})
    _rejected(keyring, db_session, forged)


def test_a_token_with_an_unknown_kid_is_rejected(db_session: Session, keyring: Keyring) -> None:
    material = keyring.signing_key(db_session, "ES256")
    forged = jwt.encode(_claims(), material.private_key, algorithm="ES256", headers={"kid": "not-ours"})
    _rejected(keyring, db_session, forged)
    _rejected(keyring, db_session, jwt.encode(_claims(), material.private_key, algorithm="ES256"))  # no kid


def test_a_token_signed_by_the_ledger_key_is_rejected(db_session: Session, keyring: Keyring) -> None:
    ledger = keyring.ledger_signing_key(db_session)
    forged = jwt.encode(_claims(), ledger._key, algorithm="EdDSA", headers={"kid": ledger.kid})
    _rejected(keyring, db_session, forged)


def test_a_token_for_another_audience_or_issuer_is_rejected(db_session: Session, keyring: Keyring) -> None:
    token = keyring.sign_jwt(db_session, _claims())
    _rejected(keyring, db_session, token, audience="someone-else")
    _rejected(keyring, db_session, token, issuer="https://evil.example")
    _rejected(keyring, db_session, keyring.sign_jwt(db_session, _claims(aud=None)))


def test_an_expired_token_is_rejected(db_session: Session, keyring: Keyring) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    _rejected(keyring, db_session, keyring.sign_jwt(db_session, _claims(iat=past, exp=past)))


def test_an_expired_token_passes_only_when_expiry_is_explicitly_ignored(
    db_session: Session, keyring: Keyring
) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    token = keyring.sign_jwt(db_session, _claims(iat=past, exp=past))
    claims = keyring.verify_jwt(db_session, token, audience=None, issuer=ISSUER, verify_exp=False)
    assert claims["aud"] == AUDIENCE  # audience=None leaves the aud check to the caller


def test_a_token_without_exp_or_iat_is_rejected(db_session: Session, keyring: Keyring) -> None:
    for missing in ("exp", "iat"):
        claims = {k: v for k, v in _claims().items() if k != missing}
        _rejected(keyring, db_session, keyring.sign_jwt(db_session, claims))


def test_a_tampered_or_malformed_token_is_rejected(db_session: Session, keyring: Keyring) -> None:
    header, payload, signature = keyring.sign_jwt(db_session, _claims()).split(".")
    other_payload = _unsigned({}, _claims(sub="citizen-2")).split(".")[1]
    for token in (f"{header}.{other_payload}.{signature}", "not-a-jwt", "a.b.c", ""):
        _rejected(keyring, db_session, token)


def test_extra_headers_cannot_override_alg_kid_or_typ(db_session: Session, keyring: Keyring) -> None:
    for name in ("alg", "kid", "typ"):
        with pytest.raises(ValueError):
            keyring.sign_jwt(db_session, _claims(), extra_headers={name: "x"})
    token = keyring.sign_jwt(db_session, _claims(), extra_headers={"x-trace": "abc"})
    assert jwt.get_unverified_header(token)["x-trace"] == "abc"


def test_signing_with_an_alg_we_do_not_hold_fails(db_session: Session, keyring: Keyring) -> None:
    with pytest.raises(NoSigningKeyError):
        keyring.sign_jwt(db_session, _claims(), alg="HS256")
