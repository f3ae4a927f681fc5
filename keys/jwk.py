"""JSON Web Keys: generating key pairs, public JWKs, RFC 7638 thumbprints, parsing.

Only the four signing algorithms the provider publishes are supported:
ES256 (P-256), RS256 and PS256 (RSA 2048, one key per alg) and EdDSA (Ed25519).
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any, TypeAlias

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from keys.models import ALGS

PrivateKey: TypeAlias = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
PublicKey: TypeAlias = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey

RSA_BITS = 2048
RSA_PUBLIC_EXPONENT = 65537

# RFC 7638 §3.2 (EC, RSA) and RFC 8037 §2 (OKP): the required members of each key type.
_THUMBPRINT_MEMBERS: dict[str, tuple[str, ...]] = {
    "EC": ("crv", "kty", "x", "y"),
    "RSA": ("e", "kty", "n"),
    "OKP": ("crv", "kty", "x"),
}


def b64url(data: bytes) -> str:
    # RFC 7515 §2: base64url without padding.
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(value: str) -> bytes:
    return base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))


def _uint(value: int, length: int | None = None) -> str:
    # RFC 7518 §6.3.1.1: big-endian, minimal length (or fixed length for EC coordinates, §6.2.1.2).
    size = length if length is not None else max(1, (value.bit_length() + 7) // 8)
    return b64url(value.to_bytes(size, "big"))


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 §3: SHA-256 over the required members, sorted, without whitespace; base64url."""
    members = _THUMBPRINT_MEMBERS.get(jwk.get("kty", ""))
    if members is None:
        raise ValueError(f"unsupported JWK key type: {jwk.get('kty')!r}")
    missing = [name for name in members if not isinstance(jwk.get(name), str)]
    if missing:
        raise ValueError(f"JWK lacks required members: {missing}")
    # RFC 7638 §3.3: lexicographic order of member names, no insignificant whitespace.
    canonical = json.dumps({name: jwk[name] for name in members}, sort_keys=True, separators=(",", ":"))
    return b64url(hashlib.sha256(canonical.encode("utf-8")).digest())


def public_jwk_members(public_key: PublicKey) -> dict[str, Any]:
    """The key-type members of a public JWK (RFC 7518 §6, RFC 8037 §2)."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        numbers = public_key.public_numbers()
        return {"kty": "EC", "crv": "P-256", "x": _uint(numbers.x, 32), "y": _uint(numbers.y, 32)}
    if isinstance(public_key, rsa.RSAPublicKey):
        rsa_numbers = public_key.public_numbers()
        return {"kty": "RSA", "n": _uint(rsa_numbers.n), "e": _uint(rsa_numbers.e)}
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return {"kty": "OKP", "crv": "Ed25519", "x": b64url(raw)}


def _new_private_key(alg: str) -> PrivateKey:
    if alg == "ES256":
        return ec.generate_private_key(ec.SECP256R1())
    if alg in ("RS256", "PS256"):
        return rsa.generate_private_key(public_exponent=RSA_PUBLIC_EXPONENT, key_size=RSA_BITS)
    if alg == "EdDSA":
        return ed25519.Ed25519PrivateKey.generate()
    raise ValueError(f"unsupported signing algorithm: {alg!r} (expected one of {ALGS})")


def generate_key(alg: str) -> tuple[PrivateKey, dict[str, Any]]:
    """A fresh key pair for ``alg`` and its public JWK, with ``kid`` (thumbprint), ``alg``, ``use``."""
    private_key = _new_private_key(alg)
    jwk = public_jwk_members(private_key.public_key())
    jwk["kid"] = thumbprint(jwk)
    jwk["alg"] = alg
    jwk["use"] = "sig"  # RFC 7517 §4.2
    return private_key, jwk


def public_key_from_jwk(jwk: dict[str, Any]) -> PublicKey:
    """Parse one of our own public JWKs back into a key object."""
    kty = jwk.get("kty")
    if kty == "EC" and jwk.get("crv") == "P-256":
        x, y = (int.from_bytes(b64url_decode(jwk[m]), "big") for m in ("x", "y"))
        return ec.EllipticCurvePublicNumbers(x, y, ec.SECP256R1()).public_key()
    if kty == "RSA":
        n, e = (int.from_bytes(b64url_decode(jwk[m]), "big") for m in ("n", "e"))
        return rsa.RSAPublicNumbers(e, n).public_key()
    if kty == "OKP" and jwk.get("crv") == "Ed25519":
        return ed25519.Ed25519PublicKey.from_public_bytes(b64url_decode(jwk["x"]))
    raise ValueError(f"unsupported JWK: kty={kty!r} crv={jwk.get('crv')!r}")


def private_key_to_der(private_key: PrivateKey) -> bytes:
    # RFC 5208 / RFC 5958: PKCS#8, unencrypted here; keys.encryption seals it.
    return private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def private_key_from_der(der: bytes) -> PrivateKey:
    key = serialization.load_der_private_key(der, password=None)
    if not isinstance(key, (ec.EllipticCurvePrivateKey, rsa.RSAPrivateKey, ed25519.Ed25519PrivateKey)):
        raise ValueError(f"unexpected private key type: {type(key).__name__}")
    return key
