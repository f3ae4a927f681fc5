"""The consent ledger: append an event, sign its receipt, make checkpoints, read it back.

Every method takes the caller's ``Session`` and only ever writes inside it, so an event is
committed in the same transaction as the change it records, or not at all
(consent-ledger.md "Appends are serialised…"). An append is O(log n): lock the head row, insert
the entry, the subtrees it completes, its subjects and receipt, and update the head.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from consent import merkle, notes, tree
from consent.errors import ProofRequestInvalid
from consent.events import EventType, build_entry, canonical, people_in
from consent.models import LedgerCheckpoint, LedgerEntry, LedgerReceipt, LedgerSubject
from consent.pseudonyms import record_pseudonyms
from consent.verify import RECEIPT_TYP, VerifierKey, leaf_hash
from store.db import utcnow

MAX_RANGE = 1000  # entries per page of the auditors' range API


class SigningKey(notes.Signer, Protocol):
    """The current ledger key (``keys.keyring.LedgerSigner``): its kid and signatures, never the
    private key itself."""

    @property
    def kid(self) -> str: ...


class LedgerKeys(Protocol):
    """Where the ledger's Ed25519 keys come from (``keys.keyring.Keyring`` in the service).

    ``ledger_signing_key`` raises the port's own error when there is no current key (the keyring's
    ``NoSigningKeyError``, which the service answers with a 503); the ledger lets it through."""

    def ledger_signing_key(self, session: Session) -> SigningKey: ...

    def ledger_public_keys(self, session: Session) -> dict[str, Ed25519PublicKey]: ...


@dataclasses.dataclass(frozen=True)
class CheckpointPolicy:
    """consent-ledger.md: a checkpoint at least every ``entries`` entries or ``seconds`` seconds."""

    entries: int = 256
    seconds: int = 300


@dataclasses.dataclass(frozen=True)
class Appended:
    seq: int
    entry: dict[str, Any]
    leaf_hash: bytes
    receipt: str | None


@dataclasses.dataclass(frozen=True)
class PublishedKey:
    kid: str  # RFC 7638 thumbprint: the receipts' kid
    verifier_key: str  # C2SP signed-note verifier key: what checkpoints are checked with


@dataclasses.dataclass(frozen=True)
class StoredEntry:
    seq: int
    leaf: str
    leaf_hash: bytes
    receipt: str | None

    @property
    def entry(self) -> dict[str, Any]:
        return json.loads(self.leaf)  # type: ignore[no-any-return]


class Ledger:
    def __init__(self, keys: LedgerKeys, origin: str, policy: CheckpointPolicy = CheckpointPolicy(),
                 clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.keys, self.origin, self.policy, self._clock = keys, origin, policy, clock

    # -- writes ----------------------------------------------------------------------------------

    def append(self, session: Session, event: EventType, fields: Mapping[str, Any]) -> Appended:
        """Append one event as the next leaf; InvalidEvent if its fields do not fit its type."""
        head = tree.lock_head(session)
        now = self._clock()
        entry = build_entry(head.size, now, event, fields)
        leaf = canonical(entry)
        hashed = leaf_hash(leaf)
        frontier, completed = merkle.append_leaf(head.size, head.frontier, hashed)
        head = dataclasses.replace(head, size=head.size + 1, frontier=frontier)
        people = people_in(entry)
        receipt = self._sign_receipt(session, entry, hashed, now) if people else None
        if self._checkpoint_due(head, now):
            head = self._make_checkpoint(session, head, now)
        tree.write_leaf(session, tree.NewLeaf(entry["seq"], leaf.decode("utf-8"), hashed, str(event), now, completed,
                                              people, receipt, head))
        return Appended(entry["seq"], entry, hashed, receipt)

    def checkpoint(self, session: Session) -> LedgerCheckpoint | None:
        """A checkpoint of the whole tree now (``idp ledger checkpoint``); None while it is empty."""
        head = tree.lock_head(session)
        if head.size == 0:
            return None
        if head.size != head.checkpoint_size:
            head = self._make_checkpoint(session, head, self._clock())
            tree.save_head(session, head)
        return session.get(LedgerCheckpoint, head.size)

    def _sign_receipt(self, session: Session, entry: dict[str, Any], hashed: bytes, now: dt.datetime) -> str:
        key = self._signing_key(session)
        return sign_receipt(entry, hashed, self.origin, key.kid, key, now)

    def _checkpoint_due(self, head: tree.Head, now: dt.datetime) -> bool:
        if head.size - head.checkpoint_size >= self.policy.entries or head.checkpoint_at is None:
            return True
        return now - head.checkpoint_at >= dt.timedelta(seconds=self.policy.seconds)

    def _make_checkpoint(self, session: Session, head: tree.Head, now: dt.datetime) -> tree.Head:
        key = self._signing_key(session)
        note = notes.sign_note(notes.checkpoint_text(self.origin, head.size, head.root), self.origin, key)
        session.execute(insert(LedgerCheckpoint).values(tree_size=head.size, root_hash=head.root, note=note,
                                                        created_at=now))
        return dataclasses.replace(head, checkpoint_size=head.size, checkpoint_at=now)

    def _signing_key(self, session: Session) -> SigningKey:
        return self.keys.ledger_signing_key(session)  # a missing key: the keys port's own error, mapped by idp

    # -- reads -----------------------------------------------------------------------------------

    def size(self, session: Session) -> int:
        return tree.read_head(session).size

    def latest_checkpoint(self, session: Session) -> LedgerCheckpoint | None:
        query = select(LedgerCheckpoint).order_by(LedgerCheckpoint.tree_size.desc()).limit(1)
        return session.scalars(query).first()

    def published_keys(self, session: Session) -> list[PublishedKey]:
        keys = self.keys.ledger_public_keys(session)
        return [PublishedKey(kid, notes.verifier_key(self.origin, key)) for kid, key in sorted(keys.items())]

    def verifier_keys(self, session: Session) -> list[VerifierKey]:
        return [VerifierKey.parse(key.verifier_key) for key in self.published_keys(session)]

    def inclusion_proof(self, session: Session, index: int, size: int) -> list[bytes]:
        return tree.inclusion_proof(session, index, size)[0]

    def inclusion(self, session: Session, index: int, size: int) -> tuple[list[bytes], bytes]:
        """The audit path and the leaf hash, in one round trip on PostgreSQL."""
        return tree.inclusion_proof(session, index, size)

    def consistency_proof(self, session: Session, first: int, second: int) -> list[bytes]:
        return tree.consistency_proof(session, first, second)

    def entries(self, session: Session, start: int, end: int) -> list[StoredEntry]:
        """Entries ``[start, end)``, at most MAX_RANGE of them (auditors)."""
        size = self.size(session)
        if not 0 <= start < end <= size or end - start > MAX_RANGE:
            raise ProofRequestInvalid(f"need 0 <= start < end <= {size} and at most {MAX_RANGE} entries")
        return self._load(session, LedgerEntry.seq >= start, LedgerEntry.seq < end)

    def entries_of(self, session: Session, *pseudonyms: str) -> list[StoredEntry]:
        """Every entry naming any of the pseudonyms, oldest first."""
        if not pseudonyms:
            return []
        seqs = select(LedgerSubject.seq).where(LedgerSubject.pseudonym.in_(pseudonyms))
        return self._load(session, LedgerEntry.seq.in_(seqs))

    def record_of(self, session: Session, account_id: str) -> list[StoredEntry]:
        """A citizen's own record: the entries under each of their pairwise pseudonyms and their
        legacy one (docs/consent-ledger.md "Pseudonyms"); nothing once they are erased."""
        return self.entries_of(session, *record_pseudonyms(session, account_id))

    def _load(self, session: Session, *conditions: Any) -> list[StoredEntry]:
        query = (
            select(LedgerEntry.seq, LedgerEntry.leaf, LedgerEntry.leaf_hash, LedgerReceipt.token)
            .outerjoin(LedgerReceipt, LedgerReceipt.seq == LedgerEntry.seq)
            .where(*conditions)
            .order_by(LedgerEntry.seq)
        )
        return [StoredEntry(*row) for row in session.execute(query)]


def sign_receipt(entry: Mapping[str, Any], hashed: bytes, origin: str, kid: str, signer: notes.Signer,
                 now: dt.datetime) -> str:
    """A compact JWS (RFC 7515 §7.1, EdDSA per RFC 8037 §3.1) over the entry, its index and leaf hash."""
    header = {"alg": "EdDSA", "kid": kid, "typ": RECEIPT_TYP}
    claims = {"origin": origin, "iat": int(now.timestamp()), "leaf_index": entry["seq"],
              "leaf_hash": base64.b64encode(hashed).decode(), "entry": dict(entry)}
    signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
    signature = signer.sign(signing_input.encode())
    return f"{signing_input}.{_b64url(signature)}"


def _b64url_json(value: Mapping[str, Any]) -> str:
    return _b64url(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def encode_hashes(hashes: Sequence[bytes]) -> list[str]:
    return [base64.b64encode(item).decode() for item in hashes]
