"""The ``signing_keys`` table: one row per key, through its whole lifecycle.

States (see ``keys.keyring``): ``next`` (published, not yet signing) → ``current`` (signing)
→ ``retired`` (published so older tokens still verify) → ``removed`` (unpublished, private
key destroyed). The private key is only ever stored encrypted (``keys.encryption``).
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Final, Literal

from sqlalchemy import JSON, CheckConstraint, Index, LargeBinary, String, text
from sqlalchemy.orm import Mapped, mapped_column

from store.db import Base, utcnow

Alg = Literal["ES256", "RS256", "PS256", "EdDSA"]
Purpose = Literal["token", "ledger"]
State = Literal["next", "current", "retired", "removed"]

ALGS: Final[tuple[Alg, ...]] = ("ES256", "RS256", "PS256", "EdDSA")
PURPOSES: Final[tuple[Purpose, ...]] = ("token", "ledger")
STATES: Final[tuple[State, ...]] = ("next", "current", "retired", "removed")
LIVE_STATES: Final[tuple[State, ...]] = ("next", "current")
PUBLISHED_STATES: Final[tuple[State, ...]] = ("next", "current", "retired")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class SigningKey(Base):
    __tablename__ = "signing_keys"
    __table_args__ = (
        CheckConstraint(_in("state", STATES), name="state"),
        CheckConstraint(_in("alg", ALGS), name="alg"),
        CheckConstraint(_in("purpose", PURPOSES), name="purpose"),
        CheckConstraint("purpose <> 'ledger' OR alg = 'EdDSA'", name="ledger_is_eddsa"),
        # A private key exists exactly as long as the key is not removed.
        CheckConstraint(
            "(state = 'removed' AND private_key_encrypted IS NULL)"
            " OR (state <> 'removed' AND private_key_encrypted IS NOT NULL)",
            name="private_key_until_removed",
        ),
        Index(None, "purpose", "alg", "state"),
        # At most one `next` and one `current` key per purpose and alg, even if two nodes
        # run `ensure` at once (partial index: SQLite and PostgreSQL).
        Index(
            "uq_signing_keys_live_state",
            "purpose",
            "alg",
            "state",
            unique=True,
            sqlite_where=text(_in("state", LIVE_STATES)),
            postgresql_where=text(_in("state", LIVE_STATES)),
        ),
    )

    # RFC 7638 §3: base64url SHA-256 thumbprint of the public key (43 characters).
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(String(16), default="token", server_default="token")
    state: Mapped[str] = mapped_column(String(16))
    # RFC 7517 §4: the public JWK, with "kid", "alg" and "use": "sig".
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    # AES-256-GCM(PKCS#8 DER), AAD = kid; NULL once the key is removed.
    private_key_encrypted: Mapped[bytes | None] = mapped_column(LargeBinary)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None]
    retired_at: Mapped[dt.datetime | None]
    removed_at: Mapped[dt.datetime | None]

    def __repr__(self) -> str:
        return f"SigningKey(kid={self.kid!r}, alg={self.alg!r}, state={self.state!r})"
