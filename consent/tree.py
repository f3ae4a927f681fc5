"""The ledger's Merkle tree in the database (RFC 9162 §2.1): the locked head, stored complete
subtrees, roots and proofs — each an O(log n) set of primary-key lookups."""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import insert, select, tuple_, update
from sqlalchemy.orm import Session

from consent import merkle
from consent.errors import LedgerCorrupt, ProofRequestInvalid
from consent.merkle import Node
from consent.models import LedgerEntry, LedgerHead, LedgerNode

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
    already holds the database write lock (``BEGIN IMMEDIATE``, see ``idp.db``).
    """
    return _read_head(session, for_update=True)


def read_head(session: Session) -> Head:
    return _read_head(session, for_update=False)


def _read_head(session: Session, *, for_update: bool) -> Head:
    query = select(LedgerHead.size, LedgerHead.frontier, LedgerHead.checkpoint_size, LedgerHead.checkpoint_at)
    query = query.where(LedgerHead.id == HEAD_ID)
    row = session.execute(query.with_for_update() if for_update else query).one_or_none()
    if row is None:
        raise LedgerCorrupt("the ledger head row is missing (run the migrations)")
    frontier = merkle.unpack(row.frontier)
    if len(frontier) != len(merkle.frontier_levels(row.size)):
        raise LedgerCorrupt("the ledger head's frontier does not match its size")
    return Head(row.size, frontier, row.checkpoint_size, row.checkpoint_at)


def add_leaf(session: Session, head: Head, leaf_hash: bytes) -> Head:
    """Store the subtrees leaf number ``head.size`` completes; the caller inserts the entry."""
    frontier, completed = merkle.append_leaf(head.size, head.frontier, leaf_hash)
    if completed:
        session.execute(insert(LedgerNode), [{"level": level, "idx": idx, "hash": hash_}
                                             for (level, idx), hash_ in completed])
    return dataclasses.replace(head, size=head.size + 1, frontier=frontier)


def save_head(session: Session, head: Head) -> None:
    session.execute(
        update(LedgerHead).where(LedgerHead.id == HEAD_ID).values(
            size=head.size, frontier=merkle.pack(head.frontier), checkpoint_size=head.checkpoint_size,
            checkpoint_at=head.checkpoint_at,
        )
    )


def fetch_nodes(session: Session, nodes: set[Node]) -> dict[Node, bytes]:
    """Leaf hashes (level 0) and stored subtree hashes, in at most two indexed queries."""
    found: dict[Node, bytes] = {}
    leaves = sorted(index for level, index in nodes if level == 0)
    inner = sorted(node for node in nodes if node[0] > 0)
    if leaves:
        query = select(LedgerEntry.seq, LedgerEntry.leaf_hash).where(LedgerEntry.seq.in_(leaves))
        found |= {(0, seq): hash_ for seq, hash_ in session.execute(query)}
    if inner:
        query = select(LedgerNode.level, LedgerNode.idx, LedgerNode.hash)
        query = query.where(tuple_(LedgerNode.level, LedgerNode.idx).in_(inner))
        found |= {(level, idx): hash_ for level, idx, hash_ in session.execute(query)}
    missing = nodes - found.keys()
    if missing:
        raise LedgerCorrupt(f"stored tree nodes are missing: {sorted(missing)[:3]}")
    return found


def root_at(session: Session, size: int) -> bytes:
    """MTH(D[0:size]) (RFC 9162 §2.1.1) from at most log2(size) stored nodes."""
    nodes = merkle.perfect_nodes(0, size)
    found = fetch_nodes(session, set(nodes))
    return merkle.fold([found[node] for node in nodes])


def inclusion_proof(session: Session, index: int, size: int, tree_size: int) -> list[bytes]:
    """RFC 9162 §2.1.3.1 audit path of leaf ``index`` in the tree of ``size`` leaves."""
    if not 0 < size <= tree_size:
        raise ProofRequestInvalid(f"tree_size must be between 1 and {tree_size}")
    if not 0 <= index < size:
        raise ProofRequestInvalid("leaf_index must be at least 0 and less than tree_size")
    ranges = merkle.inclusion_ranges(index, size)
    return merkle.hash_ranges(ranges, fetch_nodes(session, merkle.nodes_for(ranges)))


def consistency_proof(session: Session, first: int, second: int, tree_size: int) -> list[bytes]:
    """RFC 9162 §2.1.4.1 PROOF(first, D[second])."""
    if not 0 < second <= tree_size:
        raise ProofRequestInvalid(f"second must be between 1 and {tree_size}")
    if not 0 < first <= second:
        raise ProofRequestInvalid("first must be at least 1 and at most second")
    ranges = merkle.consistency_ranges(first, second)
    return merkle.hash_ranges(ranges, fetch_nodes(session, merkle.nodes_for(ranges)))
