"""The ledger's Merkle tree in the database (RFC 9162 §2.1): the locked head, stored complete
subtrees, roots and proofs — each an O(log n) set of primary-key lookups."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence

from sqlalchemy import insert, select, text, tuple_, update
from sqlalchemy.orm import Session

from consent import merkle
from consent.errors import LedgerCorrupt, ProofRequestInvalid
from consent.merkle import Node
from consent.models import LedgerEntry, LedgerHead, LedgerNode, LedgerReceipt, LedgerSubject
from store.db import run

HEAD_ID = 1


@dataclasses.dataclass(frozen=True)
class Head:
    size: int
    frontier: list[bytes]
    checkpoint_size: int
    checkpoint_at: dt.datetime | None

    @property
    def root(self) -> bytes:
        return merkle.fold(self.frontier)


def lock_head(session: Session) -> Head:
    """Take the ledger's write lock: appends are serialised on this one row.

    PostgreSQL: ``SELECT … FOR UPDATE`` waits for the previous appender to commit and then reads
    its size, so two writers never take the same sequence number. SQLite: every transaction
    already holds the database write lock (``BEGIN IMMEDIATE``, see ``store.db``).
    """
    return _read_head(session, for_update=True)


def read_head(session: Session) -> Head:
    return _read_head(session, for_update=False)


def _read_head(session: Session, *, for_update: bool) -> Head:
    row = run(session, _LOCK_HEAD if for_update else _READ_HEAD).one_or_none()
    if row is None:
        raise LedgerCorrupt("the ledger head row is missing (run the migrations)")
    frontier = merkle.unpack(row.frontier)
    if len(frontier) != len(merkle.frontier_levels(row.size)):
        raise LedgerCorrupt("the ledger head's frontier does not match its size")
    return Head(row.size, frontier, row.checkpoint_size, row.checkpoint_at)


_READ_HEAD = (select(LedgerHead.size, LedgerHead.frontier, LedgerHead.checkpoint_size, LedgerHead.checkpoint_at)
              .where(LedgerHead.id == HEAD_ID))
_LOCK_HEAD = _READ_HEAD.with_for_update()


def add_leaf(session: Session, head: Head, leaf_hash: bytes) -> Head:
    """Store the subtrees leaf number ``head.size`` completes; the caller inserts the entry."""
    frontier, completed = merkle.append_leaf(head.size, head.frontier, leaf_hash)
    if completed:
        session.execute(insert(LedgerNode), [{"level": level, "idx": idx, "hash": hash_}
                                             for (level, idx), hash_ in completed])
    return dataclasses.replace(head, size=head.size + 1, frontier=frontier)


@dataclasses.dataclass(frozen=True)
class NewLeaf:
    """Everything one append writes: the entry, the subtrees it completes, its subjects and
    receipt, and the head after it."""

    seq: int
    leaf: str
    leaf_hash: bytes
    type: str
    created_at: dt.datetime
    completed: list[tuple[Node, bytes]]
    people: list[str]
    receipt: str | None
    head: Head


def write_leaf(session: Session, new: NewLeaf) -> None:
    """One statement on PostgreSQL (the append's second and last round trip after ``lock_head``)."""
    if session.get_bind().dialect.name == "postgresql":
        run(session, _WRITE_PG, {
            "seq": new.seq, "leaf": new.leaf, "leaf_hash": new.leaf_hash, "type": new.type,
            "created_at": new.created_at, "levels": [level for (level, _), _h in new.completed],
            "idxs": [idx for (_, idx), _h in new.completed], "hashes": [hash_ for _node, hash_ in new.completed],
            "people": new.people, "token": new.receipt, "size": new.head.size,
            "frontier": merkle.pack(new.head.frontier), "checkpoint_size": new.head.checkpoint_size,
            "checkpoint_at": new.head.checkpoint_at,
        })
        return
    session.execute(insert(LedgerEntry).values(seq=new.seq, leaf=new.leaf, leaf_hash=new.leaf_hash, type=new.type,
                                               created_at=new.created_at))
    if new.completed:
        session.execute(insert(LedgerNode), [{"level": level, "idx": idx, "hash": hash_}
                                             for (level, idx), hash_ in new.completed])
    if new.people:
        session.execute(insert(LedgerSubject), [{"pseudonym": who, "seq": new.seq} for who in new.people])
    if new.receipt is not None:
        session.execute(insert(LedgerReceipt).values(seq=new.seq, token=new.receipt))
    save_head(session, new.head)


# Data-modifying CTEs: foreign keys are checked at the end of the statement, after the entry exists.
_WRITE_PG = text(
    "WITH entry AS (INSERT INTO ledger_entries (seq, leaf, leaf_hash, type, created_at) "
    "VALUES (:seq, :leaf, :leaf_hash, :type, :created_at)), "
    "nodes AS (INSERT INTO ledger_nodes (level, idx, hash) SELECT * FROM unnest(CAST(:levels AS SMALLINT[]), "
    "CAST(:idxs AS BIGINT[]), CAST(:hashes AS BYTEA[]))), "
    "subjects AS (INSERT INTO ledger_subjects (pseudonym, seq) "
    "SELECT who, :seq FROM unnest(CAST(:people AS VARCHAR[])) AS who), "
    "receipt AS (INSERT INTO ledger_receipts (seq, token) SELECT :seq, CAST(:token AS TEXT) "
    "WHERE CAST(:token AS TEXT) IS NOT NULL) "
    "UPDATE ledger_head SET size = :size, frontier = :frontier, checkpoint_size = :checkpoint_size, "
    "checkpoint_at = :checkpoint_at WHERE id = 1"
)


def save_head(session: Session, head: Head) -> None:
    session.execute(
        update(LedgerHead).where(LedgerHead.id == HEAD_ID).values(
            size=head.size, frontier=merkle.pack(head.frontier), checkpoint_size=head.checkpoint_size,
            checkpoint_at=head.checkpoint_at,
        )
    )


def fetch_nodes(session: Session, nodes: set[Node]) -> dict[Node, bytes]:
    """Leaf hashes (level 0) and stored subtree hashes; LedgerCorrupt if any is missing."""
    found, _size = fetch_with_size(session, nodes)
    _check_found(nodes, found)
    return found


def fetch_with_size(session: Session, nodes: set[Node]) -> tuple[dict[Node, bytes], int]:
    """The nodes that exist, and the tree size, in one round trip on PostgreSQL."""
    leaves = sorted(index for level, index in nodes if level == 0)
    inner = sorted(node for node in nodes if node[0] > 0)
    rows: Sequence[tuple[int, int, bytes]]
    if session.get_bind().dialect.name == "postgresql":
        rows = session.execute(_FETCH_PG, {"leaves": leaves, "levels": [level for level, _ in inner],
                                           "idxs": [idx for _, idx in inner]}).all()
    else:
        rows = _fetch_portable(session, leaves, inner)
    size = next(idx for level, idx, _hash in rows if level == -1)
    return {(level, idx): bytes(hash_) for level, idx, hash_ in rows if level >= 0}, size


# A join against the wanted (level, idx) pairs plans and runs ~3x faster than a long OR of pairs.
_FETCH_PG = text(
    "SELECT 0, seq, leaf_hash FROM ledger_entries WHERE seq = ANY(CAST(:leaves AS BIGINT[])) "
    "UNION ALL SELECT n.level, n.idx, n.hash FROM ledger_nodes n "
    "JOIN unnest(CAST(:levels AS SMALLINT[]), CAST(:idxs AS BIGINT[])) AS w(level, idx) "
    "ON n.level = w.level AND n.idx = w.idx "
    "UNION ALL SELECT -1, size, NULL FROM ledger_head WHERE id = 1"
)


def _fetch_portable(session: Session, leaves: list[int], inner: list[Node]) -> list[tuple[int, int, bytes]]:
    rows: list[tuple[int, int, bytes]] = [(-1, read_head(session).size, b"")]
    if leaves:
        query = select(LedgerEntry.seq, LedgerEntry.leaf_hash).where(LedgerEntry.seq.in_(leaves))
        rows += [(0, seq, hash_) for seq, hash_ in session.execute(query)]
    if inner:
        node_query = select(LedgerNode.level, LedgerNode.idx, LedgerNode.hash)
        node_query = node_query.where(tuple_(LedgerNode.level, LedgerNode.idx).in_(inner))
        rows += [(level, idx, hash_) for level, idx, hash_ in session.execute(node_query)]
    return rows


def _check_found(nodes: set[Node], found: dict[Node, bytes]) -> None:
    missing = nodes - found.keys()
    if missing:
        raise LedgerCorrupt(f"stored tree nodes are missing: {sorted(missing)[:3]}")


def root_at(session: Session, size: int) -> bytes:
    """MTH(D[0:size]) (RFC 9162 §2.1.1) from at most log2(size) stored nodes."""
    nodes = merkle.perfect_nodes(0, size)
    found = fetch_nodes(session, set(nodes))
    return merkle.fold([found[node] for node in nodes])


def inclusion_proof(session: Session, index: int, size: int) -> tuple[list[bytes], bytes]:
    """RFC 9162 §2.1.3.1 audit path of leaf ``index`` in the tree of ``size`` leaves, and its leaf hash."""
    if size < 1:
        raise ProofRequestInvalid("tree_size must be at least 1")
    if not 0 <= index < size:
        raise ProofRequestInvalid("leaf_index must be at least 0 and less than tree_size")
    ranges = merkle.inclusion_ranges(index, size)
    wanted = merkle.nodes_for(ranges) | {(0, index)}
    found, tree_size = fetch_with_size(session, wanted)
    if size > tree_size:
        raise ProofRequestInvalid(f"tree_size must be at most {tree_size}, the size of the tree")
    _check_found(wanted, found)
    return merkle.hash_ranges(ranges, found), found[(0, index)]


def consistency_proof(session: Session, first: int, second: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[second])."""
    if not 0 < first <= second:
        raise ProofRequestInvalid("first must be at least 1 and at most second")
    ranges = merkle.consistency_ranges(first, second)
    wanted = merkle.nodes_for(ranges)
    found, tree_size = fetch_with_size(session, wanted)
    if second > tree_size:
        raise ProofRequestInvalid(f"second must be at most {tree_size}, the size of the tree")
    _check_found(wanted, found)
    return merkle.hash_ranges(ranges, found)
