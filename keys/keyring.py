"""The signing-key lifecycle: ensure, rotate, publish (JWKS), sign and verify.

Lifecycle of a ``token`` key, per algorithm (one row per alg, nothing shared)::

    next ──rotate──▶ current ──rotate──▶ retired ──rotate, after retire_after──▶ removed

``ensure`` creates the ``next`` key ahead of time so that it is published in the JWKS
(RFC 7517 §5) long before it ever signs: relying parties that cache our JWKS already know
it when ``rotate`` promotes it. Retired keys stay published so tokens they signed keep
verifying; removed keys are unpublished and their encrypted private key is deleted.

Every method takes the caller's ``Session`` and only ever ``flush``es: the caller owns the
transaction. Key states are cached per keyring for ``cache_seconds`` (see ``keys.cache``),
so every node, this one included, sees a committed rotation within that bound. A key found
missing is never cached: the keyring looks again before raising ``NoSigningKeyError``.
"""

from __future__ import annotations

import builtins
import datetime as dt
import hashlib
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from keys import cache, tokens
from keys.encryption import KeyEncryptor
from keys.errors import KeyringError, NoSigningKeyError
from keys.jwk import (
    PrivateKey,
    PublicKey,
    generate_key,
    private_key_from_der,
    private_key_to_der,
    public_key_from_jwk,
    thumbprint,
)
from keys.models import ALGS, PUBLISHED_STATES, SigningKey
from store.db import utcnow

__all__ = ["KeyInfo", "Keyring", "SigningMaterial", "generate_key", "thumbprint"]

LEDGER_ALG = "EdDSA"
# A next key is published this long before the schedule may promote it: relying parties commonly
# cache a JWKS for up to a day.
NEXT_KEY_NOTICE = dt.timedelta(days=1)


@dataclass(frozen=True)
class KeyInfo:
    kid: str
    alg: str
    purpose: str
    state: str
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retired_at: dt.datetime | None
    removed_at: dt.datetime | None = None


@dataclass(frozen=True)
class SigningMaterial:
    kid: str
    alg: str
    private_key: PrivateKey = field(repr=False)


@dataclass(frozen=True)
class LedgerSigner:
    """The current ledger key as the ledger uses it: its kid, ``sign`` and ``public_key``. The private
    key stays in here (keys/ keeps every private key); consent/ only asks for signatures."""

    kid: str
    _key: Ed25519PrivateKey = field(repr=False)
    alg: ClassVar[str] = LEDGER_ALG

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()


@dataclass(frozen=True)
class _Snapshot:
    """Every key row minus private material, newest first."""

    keys: tuple[KeyInfo, ...]
    public_jwks: Mapping[str, Mapping[str, Any]]  # kid -> public JWK
    jwks_document: bytes = b""  # the published JWK Set, serialised once per snapshot (a hot path)
    jwks_etag: str = ""

    def find(self, purpose: str, alg: str, state: str) -> KeyInfo | None:
        return next((k for k in self.keys if (k.purpose, k.alg, k.state) == (purpose, alg, state)), None)

    def published(self, purpose: str) -> builtins.list[KeyInfo]:
        return [k for k in self.keys if k.purpose == purpose and k.state in PUBLISHED_STATES]


class Keyring:
    def __init__(
        self,
        encryptor: KeyEncryptor,
        cache_seconds: int = 30,
        algs: Iterable[str] = ALGS,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._encryptor = encryptor
        self.algs: tuple[str, ...] = tuple(algs)
        unknown = set(self.algs) - set(ALGS)
        if not self.algs or unknown:
            raise ValueError(f"algs must be a non-empty subset of {ALGS}, got {self.algs}")
        self._states: cache.StateCache[_Snapshot] = cache.StateCache(cache_seconds, clock)

    # -- lifecycle (writes) ---------------------------------------------------------------

    def ensure(self, session: Session) -> None:
        """Create whatever is missing: a current and a next token key per alg, a ledger key.

        Safe when several nodes run it at once (``idp db upgrade`` on two nodes starting together):
        each key is inserted in its own SAVEPOINT, and one that loses the race for the unique
        live-state index gives way to the key the winner made."""
        now = utcnow()
        for alg in self.algs:
            self._ensure_one(session, "token", alg, "current", now)
            self._ensure_one(session, "token", alg, "next", now)
        self._ensure_one(session, "ledger", LEDGER_ALG, "current", now)
        session.flush()
        self.invalidate_cache()

    def rotate(self, session: Session, *, retire_after: dt.timedelta) -> None:
        """current → retired, next → current, new next; remove keys retired over ``retire_after`` ago.

        Keys retired by this very call are never removed by it, whatever ``retire_after``.
        Unconditional (``idp keys rotate``, e.g. after a compromise): run at the same moment as a
        scheduled rotation it rotates a second time, promoting a next key published only moments
        before. The schedule itself (``rotate_if_due``) is safe from any number of workers.
        """
        if retire_after < dt.timedelta(0):
            raise ValueError("retire_after must not be negative")
        self.ensure(session)
        now = utcnow()
        removed = self._remove_retired(session, retired_before=now - retire_after, now=now)
        for alg in self.algs:
            self._rotate_alg(session, alg, now)
        cache.forget_private_keys(removed)
        self.invalidate_cache()

    def rotate_if_due(self, session: Session, *, every: dt.timedelta, retire_after: dt.timedelta,
                      now: dt.datetime | None = None) -> bool:
        """operations.md "Keys": the automatic schedule. Rotates once a current token key has signed
        for ``every`` and every successor has been published for ``NEXT_KEY_NOTICE`` (so relying
        parties caching the JWKS already hold it). Safe from every worker at once: the current keys'
        rows are locked first, and a worker that waited finds them retired and does nothing."""
        now = now or utcnow()
        current = session.scalars(select(SigningKey).where(SigningKey.purpose == "token",
                                                           SigningKey.state == "current").with_for_update()).all()
        upcoming = {row.alg: row for row in session.scalars(
            select(SigningKey).where(SigningKey.purpose == "token", SigningKey.state == "next"))}
        signed_long_enough = any(row.activated_at is not None and row.activated_at <= now - every for row in current)
        successors_known = all(alg in upcoming and upcoming[alg].created_at <= now - NEXT_KEY_NOTICE
                               for alg in self.algs)
        if not (current and signed_long_enough and successors_known):
            return False
        self.rotate(session, retire_after=retire_after)
        return True

    def invalidate_cache(self) -> None:
        self._states.invalidate()

    def _ensure_one(self, session: Session, purpose: str, alg: str, state: str, now: dt.datetime) -> None:
        if self._row(session, purpose, alg, state) is not None:
            return
        try:
            with session.begin_nested():  # PostgreSQL waits for a racing insert, then refuses this one
                self._create(session, purpose, alg, state, now)
        except IntegrityError:
            if self._row(session, purpose, alg, state) is None:
                raise  # refused for another reason than the race

    def _rotate_alg(self, session: Session, alg: str, now: dt.datetime) -> None:
        current = self._row(session, "token", alg, "current")
        upcoming = self._row(session, "token", alg, "next")
        if current is None or upcoming is None:
            raise KeyringError(f"cannot rotate {alg}: ensure() left no current/next key")
        current.state, current.retired_at = "retired", now
        session.flush()  # the unique live-state index admits one current key at a time
        upcoming.state, upcoming.activated_at = "current", now
        session.flush()
        self._create(session, "token", alg, "next", now)
        session.flush()

    def _remove_retired(
        self, session: Session, *, retired_before: dt.datetime, now: dt.datetime
    ) -> builtins.list[str]:
        stmt = (
            select(SigningKey)
            .where(SigningKey.purpose == "token", SigningKey.state == "retired")
            .where(SigningKey.retired_at <= retired_before)
            .with_for_update()
        )
        rows = builtins.list(session.scalars(stmt))
        for row in rows:
            row.state, row.removed_at, row.private_key_encrypted = "removed", now, None
        session.flush()
        return [row.kid for row in rows]

    def _create(self, session: Session, purpose: str, alg: str, state: str, now: dt.datetime) -> None:
        private_key, jwk = generate_key(alg)
        kid = jwk["kid"]
        sealed = self._encryptor.encrypt(private_key_to_der(private_key), aad=_aad(kid))
        activated_at = now if state == "current" else None
        session.add(
            SigningKey(
                kid=kid,
                alg=alg,
                purpose=purpose,
                state=state,
                public_jwk=jwk,
                private_key_encrypted=sealed,
                activated_at=activated_at,
            )
        )

    @staticmethod
    def _row(session: Session, purpose: str, alg: str, state: str) -> SigningKey | None:
        stmt = select(SigningKey).filter_by(purpose=purpose, alg=alg, state=state).with_for_update()
        return session.scalars(stmt).first()

    # -- reads (cached) -------------------------------------------------------------------

    def list(self, session: Session) -> builtins.list[KeyInfo]:
        """Every key of every purpose and state, newest first."""
        return builtins.list(self._snapshot(session).keys)

    def jwks(self, session: Session) -> dict[str, Any]:
        """RFC 7517 §5 JWK Set of the token keys that may have signed, or will sign, a token."""
        snapshot = self._snapshot(session)
        return {"keys": [dict(snapshot.public_jwks[k.kid]) for k in snapshot.published("token")]}

    def jwks_document(self, session: Session) -> tuple[bytes, str]:
        """:meth:`jwks` as served: compact, key-sorted JSON bytes and their ETag."""
        snapshot = self._snapshot(session)
        return snapshot.jwks_document, snapshot.jwks_etag

    def signing_key(self, session: Session, alg: str) -> SigningMaterial:
        return self._current_material(session, "token", alg)

    def public_key(self, session: Session, kid: str) -> tuple[str, PublicKey] | None:
        """The alg and public key of a published token key, or None (unknown, removed, ledger)."""
        snapshot = self._snapshot(session)
        info = next((k for k in snapshot.published("token") if k.kid == kid), None)
        if info is None:
            return None
        return info.alg, self._public_key_object(snapshot, info.kid)

    def ledger_signing_key(self, session: Session) -> LedgerSigner:
        material = self._current_material(session, "ledger", LEDGER_ALG)
        if not isinstance(material.private_key, Ed25519PrivateKey):
            raise NoSigningKeyError(f"the current ledger key {material.kid} is not an Ed25519 key")
        return LedgerSigner(material.kid, material.private_key)

    def ledger_public_keys(self, session: Session) -> dict[str, Ed25519PublicKey]:
        """kid → public key of every ledger key not removed, to verify old ledger entries."""
        snapshot = self._snapshot(session)
        found = {k.kid: self._public_key_object(snapshot, k.kid) for k in snapshot.published("ledger")}
        return {kid: key for kid, key in found.items() if isinstance(key, Ed25519PublicKey)}

    # -- JWTs -----------------------------------------------------------------------------

    def sign_jwt(
        self,
        session: Session,
        claims: Mapping[str, Any],
        *,
        alg: str = "ES256",
        typ: str | None = None,
        extra_headers: Mapping[str, Any] | None = None,
    ) -> str:
        material = self.signing_key(session, alg)
        return tokens.encode(
            claims,
            kid=material.kid,
            alg=material.alg,
            private_key=material.private_key,
            typ=typ,
            extra_headers=extra_headers,
        )

    def verify_jwt(
        self,
        session: Session,
        token: str,
        *,
        audience: str | builtins.list[str] | None,
        issuer: str,
        typ: str | None = None,
        verify_exp: bool = True,
        leeway: dt.timedelta = dt.timedelta(0),
    ) -> dict[str, Any]:
        """Verify a JWT signed by one of our published token keys; TokenVerificationError otherwise.

        ``audience=None`` skips the audience check (the caller must then check ``aud``);
        ``typ=None`` accepts only untyped tokens or ``typ: JWT``.
        """
        return tokens.decode(
            token,
            resolve=lambda kid: self.public_key(session, kid),
            audience=audience,
            issuer=issuer,
            typ=typ,
            verify_exp=verify_exp,
            leeway=leeway,
        )

    # -- helpers --------------------------------------------------------------------------

    def _snapshot(self, session: Session) -> _Snapshot:
        return self._states.get(lambda: _load_snapshot(session))

    def _current_material(self, session: Session, purpose: str, alg: str) -> SigningMaterial:
        """The current key's material. "No key" is never cached: a snapshot that lacks the key (or
        names one since removed) is dropped and read again once, so keys made by another node, or
        by ``idp db upgrade`` after this node started, are used at once."""
        try:
            return self._material(session, self._current(session, purpose, alg))
        except NoSigningKeyError:
            self.invalidate_cache()
            return self._material(session, self._current(session, purpose, alg))

    def _current(self, session: Session, purpose: str, alg: str) -> KeyInfo:
        info = self._snapshot(session).find(purpose, alg, "current")
        if info is None:
            raise NoSigningKeyError(f"no current {purpose} key for {alg}")
        return info

    def _material(self, session: Session, info: KeyInfo) -> SigningMaterial:
        fingerprint = self._encryptor.fingerprint
        key = cache.private_key(fingerprint, info.kid, lambda: self._decrypt(session, info.kid))
        return SigningMaterial(kid=info.kid, alg=info.alg, private_key=key)

    def _decrypt(self, session: Session, kid: str) -> PrivateKey:
        sealed = session.scalar(select(SigningKey.private_key_encrypted).where(SigningKey.kid == kid))
        if sealed is None:
            raise NoSigningKeyError(f"private key {kid} is gone (removed, or the state cache is stale)")
        return private_key_from_der(self._encryptor.decrypt(sealed, aad=_aad(kid)))

    @staticmethod
    def _public_key_object(snapshot: _Snapshot, kid: str) -> PublicKey:
        return cache.public_key(kid, lambda: _parse_public_jwk(kid, snapshot.public_jwks[kid]))


def _aad(kid: str) -> bytes:
    # AES-GCM associated data: binds each ciphertext to its row (NIST SP 800-38D §5.2.1).
    return kid.encode("ascii")


def _parse_public_jwk(kid: str, jwk: Mapping[str, Any]) -> PublicKey:
    # The kid is the RFC 7638 thumbprint, so a row whose JWK does not match it is corrupt.
    if thumbprint(dict(jwk)) != kid:
        raise KeyringError(f"public JWK of {kid} does not match its thumbprint")
    return public_key_from_jwk(dict(jwk))


def _load_snapshot(session: Session) -> _Snapshot:
    columns = (
        SigningKey.kid,
        SigningKey.alg,
        SigningKey.purpose,
        SigningKey.state,
        SigningKey.created_at,
        SigningKey.activated_at,
        SigningKey.retired_at,
        SigningKey.removed_at,
    )
    stmt = select(*columns, SigningKey.public_jwk).order_by(SigningKey.created_at.desc(), SigningKey.kid)
    rows = session.execute(stmt).all()
    keys = tuple(KeyInfo(*row[:-1]) for row in rows)
    public_jwks = {row.kid: dict(row.public_jwk) for row in rows}
    published = {"keys": [public_jwks[k.kid] for k in keys if k.purpose == "token" and k.state in PUBLISHED_STATES]}
    document = json.dumps(published, separators=(",", ":"), sort_keys=True).encode()
    return _Snapshot(keys=keys, public_jwks=public_jwks, jwks_document=document,
                     jwks_etag=hashlib.sha256(document).hexdigest()[:32])
