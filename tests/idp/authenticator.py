"""A software WebAuthn authenticator and client for tests: P-256 keys, ``none`` attestation, and
the JSON a browser's ``navigator.credentials`` gives (WebAuthn L3 §5.1.8 ``toJSON()``).

It builds what a real authenticator builds — authenticatorData (§6.1: rpIdHash, flags UP|UV|AT
and BE/BS, signCount, attested credential data with a COSE key, RFC 9053 §7.1.1), the
attestation object (§6.5), clientDataJSON (§5.8.1) and the assertion signature (§6.3.3) — and
lets a test lie in each place (origin, RP ID, counter, flags, clientDataJSON) to check refusals.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import secrets
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from tests.idp.flows import ISSUER

UP, UV, BE, BS, AT = 0x01, 0x04, 0x08, 0x10, 0x40  # WebAuthn L3 §6.1 flags
NONE_AAGUID = bytes(16)


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclasses.dataclass
class StoredCredential:
    """A discoverable credential as the authenticator keeps it (§6.2.2 "credential record")."""

    credential_id: bytes
    key: ec.EllipticCurvePrivateKey
    rp_id: str
    user_handle: bytes
    sign_count: int = 0

    @property
    def id(self) -> str:
        return b64url(self.credential_id)


@dataclasses.dataclass
class SoftAuthenticator:
    origin: str = ISSUER
    backup_eligible: bool = False  # a synced passkey when True
    counter_step: int = 1  # 0: an authenticator without a signature counter
    user_verified: bool = True
    credentials: list[StoredCredential] = dataclasses.field(default_factory=list)

    # --- navigator.credentials.create() ----------------------------------------------------
    def create(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
               client_data: dict[str, Any] | None = None, again: StoredCredential | None = None) -> dict[str, Any]:
        """A RegistrationResponseJSON for PublicKeyCredentialCreationOptionsJSON ``options``;
        ``again`` re-registers a credential it already holds (ignoring ``excludeCredentials``)."""
        rp_id = rp_id or options["rp"]["id"]
        stored = again or StoredCredential(secrets.token_bytes(32), ec.generate_private_key(ec.SECP256R1()), rp_id,
                                           unb64url(options["user"]["id"]))
        attested = NONE_AAGUID + len(stored.credential_id).to_bytes(2, "big") + stored.credential_id
        auth_data = self._authenticator_data(rp_id, AT, stored.sign_count) + attested + cose_key(stored.key)
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        data = self._client_data("webauthn.create", options["challenge"], origin, client_data)
        if again is None:
            self.credentials.append(stored)
        response = {"clientDataJSON": b64url(data), "attestationObject": b64url(attestation),
                    "transports": ["internal", "hybrid"]}
        return self._credential(stored, response)

    # --- navigator.credentials.get() -------------------------------------------------------
    def get(self, options: dict[str, Any], *, origin: str | None = None, rp_id: str | None = None,
            client_data: dict[str, Any] | None = None, tamper: bool = False,
            user_handle: bool = True, credential: StoredCredential | None = None) -> dict[str, Any]:
        """An AuthenticationResponseJSON for PublicKeyCredentialRequestOptionsJSON ``options``.
        ``tamper`` changes clientDataJSON after it was signed (§7.2 step 20 must catch it)."""
        stored = credential or self.choose(options)
        stored.sign_count += self.counter_step
        auth_data = self._authenticator_data(rp_id or stored.rp_id, 0, stored.sign_count)
        data = self._client_data("webauthn.get", options["challenge"], origin, client_data)
        signature = stored.key.sign(auth_data + hashlib.sha256(data).digest(), ec.ECDSA(hashes.SHA256()))
        if tamper:
            data = data.replace(b'"webauthn.get"', b'"webauthn.get","extra":"tampered"')
        response = {"clientDataJSON": b64url(data), "authenticatorData": b64url(auth_data),
                    "signature": b64url(signature),
                    "userHandle": b64url(stored.user_handle) if user_handle else None}
        return self._credential(stored, response)

    def choose(self, options: dict[str, Any]) -> StoredCredential:
        """§6.3.3 step 6: an allowed credential, or any discoverable one for the RP."""
        allowed = {item["id"] for item in options.get("allowCredentials") or []}
        for stored in self.credentials:
            if stored.rp_id == options.get("rpId") and (not allowed or stored.id in allowed):
                return stored
        raise LookupError("no matching credential on this authenticator")

    # --- the parts -------------------------------------------------------------------------
    def _authenticator_data(self, rp_id: str, extra_flags: int, sign_count: int) -> bytes:
        flags = UP | extra_flags | (UV if self.user_verified else 0) | (BE | BS if self.backup_eligible else 0)
        return hashlib.sha256(rp_id.encode()).digest() + bytes([flags]) + sign_count.to_bytes(4, "big")

    def _client_data(self, kind: str, challenge: str, origin: str | None, extra: dict[str, Any] | None) -> bytes:
        data = {"type": kind, "challenge": challenge, "origin": origin or self.origin, "crossOrigin": False}
        return json.dumps(data | (extra or {}), separators=(",", ":")).encode()

    @staticmethod
    def _credential(stored: StoredCredential, response: dict[str, Any]) -> dict[str, Any]:
        return {"id": stored.id, "rawId": stored.id, "type": "public-key", "response": response,
                "authenticatorAttachment": "platform", "clientExtensionResults": {}}


def cose_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    """RFC 9053 §7.1.1 / RFC 9052 §7: an EC2 P-256 public key for ES256 (alg -7, crv 1)."""
    numbers = key.public_key().public_numbers()
    return cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
