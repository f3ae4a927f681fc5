"""Private keys are only ever stored sealed with AES-256-GCM under the KEK, bound to their row."""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from keys.encryption import KeyEncryptor
from keys.errors import KeyDecryptionError
from keys.jwk import PrivateKey, private_key_to_der
from keys.keyring import Keyring
from keys.models import SigningKey


def _raw_table_bytes(session: Session) -> bytes:
    """Everything the database holds for the table, as a thief with a dump would see it."""
    rows = session.execute(text("SELECT * FROM signing_keys")).all()
    return b"".join(value if isinstance(value, bytes) else str(value).encode() for row in rows for value in row)


def _secrets_of(private_key: PrivateKey) -> list[bytes]:
    pem = private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    secrets = [private_key_to_der(private_key), pem, b"PRIVATE KEY"]
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        secrets.append(private_key.private_bytes_raw())
    return secrets


def _swap_ciphertexts(session: Session, first: SigningKey, second: SigningKey) -> None:
    blobs = first.private_key_encrypted, second.private_key_encrypted
    for kid, blob in ((first.kid, blobs[1]), (second.kid, blobs[0])):
        session.execute(update(SigningKey).where(SigningKey.kid == kid).values(private_key_encrypted=blob))


def test_a_kek_must_be_exactly_32_bytes() -> None:
    for bad in (b"", os.urandom(16), os.urandom(33)):
        with pytest.raises(ValueError, match="32 bytes"):
            KeyEncryptor(bad)


def test_a_blob_opens_with_the_same_kek_and_aad() -> None:
    encryptor = KeyEncryptor(os.urandom(32))
    blob = encryptor.encrypt(b"secret", aad=b"kid-1")
    assert len(blob) == 12 + len(b"secret") + 16
    assert encryptor.decrypt(blob, aad=b"kid-1") == b"secret"


def test_the_same_plaintext_never_encrypts_to_the_same_blob() -> None:
    encryptor = KeyEncryptor(os.urandom(32))
    assert encryptor.encrypt(b"secret", aad=b"k") != encryptor.encrypt(b"secret", aad=b"k")


def test_a_blob_does_not_open_with_another_kek_another_aad_or_after_tampering() -> None:
    encryptor = KeyEncryptor(os.urandom(32))
    blob = encryptor.encrypt(b"secret", aad=b"kid-1")
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    attempts: list[Callable[[], bytes]] = [
        lambda: KeyEncryptor(os.urandom(32)).decrypt(blob, aad=b"kid-1"),
        lambda: encryptor.decrypt(blob, aad=b"kid-2"),
        lambda: encryptor.decrypt(tampered, aad=b"kid-1"),
        lambda: encryptor.decrypt(blob[:20], aad=b"kid-1"),
    ]
    for attempt in attempts:
        with pytest.raises(KeyDecryptionError):
            attempt()


def test_the_encryptor_never_shows_its_kek() -> None:
    kek = os.urandom(32)
    encryptor = KeyEncryptor(kek)
    assert kek.hex() not in repr(encryptor) and repr(kek) not in repr(encryptor)


def test_the_database_reveals_no_private_key(db_session: Session, keyring: Keyring) -> None:
    keys = {material.alg: material.private_key for material in (keyring.signing_key(db_session, alg)
                                                                  for alg in keyring.algs)}
    keys["ledger"] = keyring.ledger_signing_key(db_session)._key  # the key keys/ keeps, read by its own tests
    dump = _raw_table_bytes(db_session)
    for alg, private_key in keys.items():
        for secret in _secrets_of(private_key):
            assert secret not in dump, f"{alg} private key leaked into the table"


def test_another_kek_cannot_open_the_stored_keys(db_session: Session, keyring: Keyring) -> None:
    keyring.signing_key(db_session, "ES256")  # already decrypted and cached by the right KEK
    impostor = Keyring(KeyEncryptor(os.urandom(32)), cache_seconds=0)
    for alg in impostor.algs:
        with pytest.raises(KeyDecryptionError):
            impostor.signing_key(db_session, alg)


def test_a_ciphertext_moved_to_another_row_does_not_decrypt(db_session: Session, keyring: Keyring) -> None:
    rows = {row.state: row for row in db_session.scalars(select(SigningKey).filter_by(alg="ES256"))}
    _swap_ciphertexts(db_session, rows["current"], rows["next"])
    with pytest.raises(KeyDecryptionError):
        keyring.signing_key(db_session, "ES256")

