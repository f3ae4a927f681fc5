"""RFC 7638 JWK thumbprints, which are also our ``kid`` values."""

from __future__ import annotations

import pytest
from joserfc.jwk import JWKRegistry

from keys.keyring import generate_key, thumbprint

# RFC 7638 §3.1: the example RSA key, with its non-required members "alg" and "kid".
RFC7638_JWK = {
    "kty": "RSA",
    "n": (
        "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECP"
        "ebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY"
        "368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0f"
        "M4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
    ),
    "e": "AQAB",
    "alg": "RS256",
    "kid": "2011-04-29",
}
RFC7638_THUMBPRINT = "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"

# RFC 8037 Appendix A.3: the example Ed25519 public key and its thumbprint.
RFC8037_JWK = {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}
RFC8037_THUMBPRINT = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"

def test_the_rfc_7638_example_key_has_the_published_thumbprint() -> None:
    assert thumbprint(RFC7638_JWK) == RFC7638_THUMBPRINT


def test_members_that_are_not_required_do_not_change_the_thumbprint() -> None:
    bare = {name: RFC7638_JWK[name] for name in ("kty", "n", "e")}
    assert thumbprint(bare) == thumbprint({**RFC7638_JWK, "use": "sig"}) == RFC7638_THUMBPRINT


def test_the_rfc_8037_ed25519_example_has_the_published_thumbprint() -> None:
    assert thumbprint(RFC8037_JWK) == RFC8037_THUMBPRINT


@pytest.mark.parametrize("alg", ["ES256", "RS256", "PS256", "EdDSA"])
def test_a_generated_key_uses_its_thumbprint_as_kid(alg: str) -> None:
    _, jwk = generate_key(alg)
    expected = JWKRegistry.import_key(jwk).thumbprint()  # an independent implementation
    assert jwk["kid"] == thumbprint(jwk) == expected
    assert len(jwk["kid"]) == 43 and "=" not in jwk["kid"]


def test_a_jwk_missing_a_required_member_has_no_thumbprint() -> None:
    with pytest.raises(ValueError, match="required members"):
        thumbprint({"kty": "RSA", "n": RFC7638_JWK["n"]})


def test_an_unknown_key_type_has_no_thumbprint() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        thumbprint({"kty": "oct", "k": "c2VjcmV0"})
