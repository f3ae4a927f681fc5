"""``idp ledger verify``: recompute the whole tree from the stored entries and check every stored
subtree hash, the head and every stored checkpoint (signature and root), naming the first bad entry.

What each tamper trips (consent-ledger.md, RFC 9162 §2.1):

* an entry edited without its leaf hash → the recomputed leaf hash differs;
* an entry and its stored hashes edited together → the root of a signed checkpoint differs; the
  entry is then named by its receipt, whose signed leaf hash no longer matches;
* an entry deleted, inserted or reordered → ``seq`` gap, or an entry whose own ``seq`` is elsewhere;
* a forged or re-signed checkpoint → its signature does not verify with the ledger's keys.
"""

from __future__ import annotations

import bisect
import dataclasses
import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from consent import merkle, tree
from consent.errors import LedgerCorrupt
from consent.ledger import Ledger
from consent.models import LedgerCheckpoint, LedgerReceipt
from consent.verify import VerificationError, VerifierKey, verify_checkpoint, verify_receipt

BATCH = 20_000


@dataclasses.dataclass(frozen=True)
class Problem:
    seq: int  # the first entry it concerns (the tree size, for problems past the last entry)
    message: str


@dataclasses.dataclass
class AuditReport:
    size: int = 0
    checkpoints: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)
    bad_leaves: list[int] = dataclasses.field(default_factory=list)  # entries already found bad themselves

    def first_bad_leaf(self, start: int, end: int) -> int:
        """The first entry in [start, end) found bad itself, else ``start``: where a subtree went wrong."""
        position = bisect.bisect_left(self.bad_leaves, start)
        found = self.bad_leaves[position] if position < len(self.bad_leaves) else end
        return found if found < end else start

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first(self) -> Problem | None:
        return min(self.problems, key=lambda problem: problem.seq, default=None)  # ties: the first found


def audit(session: Session, ledger: Ledger) -> AuditReport:
    report = AuditReport()
    levels = [_check_entries(session, report)]
    report.bad_leaves = sorted(problem.seq for problem in report.problems)
    report.size = len(levels[0])
    sha256 = hashlib.sha256
    while len(levels[-1]) > 1:  # RFC 9162 §2.1.1: every complete subtree, level by level
        below = levels[-1]
        levels.append([sha256(b"\x01" + below[i] + below[i + 1]).digest() for i in range(0, len(below) - 1, 2)])
    _check_nodes(session, levels, report)
    _check_head(session, levels, report)
    _check_checkpoints(session, ledger, levels, report)
    return report


def _rows(session: Session, sql: str) -> Iterator[tuple]:  # type: ignore[type-arg]
    """Rows straight from the driver — on PostgreSQL through a server-side cursor — because a
    million rows through the ORM would take most of the time budget."""
    connection = session.connection()
    raw: Any = connection.connection.driver_connection
    if connection.dialect.name == "postgresql":
        with raw.cursor(name="ledger_audit") as cursor:
            cursor.itersize = BATCH
            cursor.execute(sql)
            yield from cursor
        return
    cursor = raw.cursor()
    try:
        cursor.execute(sql)
        while batch := cursor.fetchmany(BATCH):
            yield from batch
    finally:
        cursor.close()


def _check_entries(session: Session, report: AuditReport) -> list[bytes]:
    """Leaf hashes recomputed from the entries themselves, in stored order."""
    hashes: list[bytes] = []
    sha256 = hashlib.sha256
    rows = _rows(session, "SELECT seq, leaf, leaf_hash FROM ledger_entries ORDER BY seq")
    for position, (seq, leaf, stored) in enumerate(rows):
        computed = sha256(b"\x00" + leaf.encode("utf-8")).digest()  # RFC 9162 §2.1.1 leaf hash
        hashes.append(computed)
        if seq != position or computed != bytes(stored) or not _says_seq(leaf, position):
            report.problems.append(_entry_problem(position, seq, leaf, computed, bytes(stored)))
    return hashes


def _entry_problem(position: int, seq: int, leaf: str, computed: bytes, stored: bytes) -> Problem:
    if seq != position:
        return Problem(position, f"entry {position} is missing: the next stored entry is {seq} "
                                 "(an entry was deleted or inserted)")
    if not _says_seq(leaf, position):
        return Problem(position, f"entry {position} says it is entry {_own_seq(leaf)} "
                                 "(entries were reordered, inserted or deleted)")
    return Problem(position, f"entry {position} does not match its stored leaf hash (the entry was modified)")


def _says_seq(leaf: str, position: int) -> bool:
    """Does the entry's own ``seq`` equal its position? Fast path for the usual entry, whose text
    holds ``"seq":`` once (inside a JSON string a quote is escaped, so that can only be the key)."""
    marker = f'"seq":{position}'
    at = leaf.find(marker)
    if at != -1 and leaf[at + len(marker):at + len(marker) + 1] in (",", "}") and leaf.count('"seq":') == 1:
        return True
    return _own_seq(leaf) == position


def _own_seq(leaf: str) -> object:
    try:
        return json.loads(leaf).get("seq")
    except (ValueError, AttributeError):
        return "unreadable"


def _check_nodes(session: Session, levels: Sequence[Sequence[bytes]], report: AuditReport) -> None:
    if session.get_bind().dialect.name == "postgresql":
        _check_nodes_by_level(session, levels, report)
        return
    expected = sum(len(level) for level in levels[1:])
    seen = 0
    for level, idx, hash_ in _rows(session, "SELECT level, idx, hash FROM ledger_nodes ORDER BY level, idx"):
        seen += 1
        if level >= len(levels) or idx >= len(levels[level]) or levels[level][idx] != bytes(hash_):
            report.problems.append(_node_problem(report, level, idx))
            return
    if seen != expected:
        report.problems.append(Problem(report.size, f"{expected - seen} stored subtree hashes are missing"))


def _check_nodes_by_level(session: Session, levels: Sequence[Sequence[bytes]], report: AuditReport) -> None:
    """PostgreSQL: each level's stored hashes concatenated in index order, compared in one go."""
    query = ("SELECT level, count(*), min(idx), string_agg(hash, ''::bytea ORDER BY idx) "
             "FROM ledger_nodes GROUP BY level ORDER BY level")
    stored = {level: (count, first, bytes(blob)) for level, count, first, blob in _rows(session, query)}
    for level in range(1, max(len(levels), max(stored, default=0) + 1)):
        computed = levels[level] if level < len(levels) else []
        count, first, blob = stored.get(level, (0, 0, b""))
        if blob != b"".join(computed) or first != 0 or count != len(computed):
            report.problems.append(_node_problem(report, level, _first_difference(blob, computed, first)))
            return


def _first_difference(blob: bytes, computed: Sequence[bytes], first: int) -> int:
    if first != 0:
        return 0
    for idx, expected in enumerate(computed):
        if blob[idx * 32:(idx + 1) * 32] != expected:
            return idx
    return len(computed)


def _node_problem(report: AuditReport, level: int, idx: int) -> Problem:
    start = min(idx << level, report.size)
    return Problem(report.first_bad_leaf(start, (idx + 1) << level),
                   f"stored subtree ({level}, {idx}) does not match the entries (the tree was modified)")


def _check_head(session: Session, levels: Sequence[Sequence[bytes]], report: AuditReport) -> None:
    try:
        head = tree.read_head(session)
    except LedgerCorrupt as error:
        report.problems.append(Problem(report.size, str(error)))
        return
    if head.size != report.size or head.root != root_from_levels(levels, report.size):
        report.problems.append(Problem(min(head.size, report.size), f"the ledger head (size {head.size}) does not "
                                       f"match the {report.size} stored entries"))


def root_from_levels(levels: Sequence[Sequence[bytes]], size: int) -> bytes:
    return merkle.fold([levels[level][idx] for level, idx in merkle.perfect_nodes(0, size)])


def _check_checkpoints(session: Session, ledger: Ledger, levels: Sequence[Sequence[bytes]],
                       report: AuditReport) -> None:
    keys = ledger.verifier_keys(session)
    good_size = 0  # every entry before it is vouched for by a signed checkpoint that matches
    query = select(LedgerCheckpoint.tree_size, LedgerCheckpoint.note).order_by(LedgerCheckpoint.tree_size)
    for stored_size, note in session.execute(query).all():
        report.checkpoints += 1
        try:
            checkpoint = verify_checkpoint(note, keys)
        except VerificationError as error:
            report.problems.append(Problem(min(stored_size, report.size),
                                           f"checkpoint at size {stored_size} is forged: {error}"))
            continue
        if checkpoint.size != stored_size or checkpoint.size > report.size:
            report.problems.append(Problem(min(checkpoint.size, report.size), f"checkpoint at size {checkpoint.size} "
                                           f"covers entries that are not stored (there are {report.size})"))
        elif root_from_levels(levels, checkpoint.size) != checkpoint.root_hash:
            report.problems.append(_locate(session, keys, levels[0], good_size, checkpoint.size))
        else:
            good_size = max(good_size, checkpoint.size)


def _locate(session: Session, keys: list[VerifierKey], leaves: Sequence[bytes], start: int, end: int) -> Problem:
    """The first entry in [start, end) whose signed receipt disagrees with the entry as stored."""
    query = select(LedgerReceipt.seq, LedgerReceipt.token).where(LedgerReceipt.seq >= start,
                                                                   LedgerReceipt.seq < end).order_by(LedgerReceipt.seq)
    for seq, token in session.execute(query):
        try:
            receipt = verify_receipt(token, keys)
        except VerificationError as error:
            return Problem(seq, f"entry {seq}'s receipt does not verify ({error}): entry or receipt modified")
        if receipt.leaf_index != seq or receipt.leaf_hash != leaves[seq]:
            return Problem(seq, f"entry {seq} is not the entry its signed receipt describes (the entry was modified)")
    return Problem(start, f"the entries in [{start}, {end}) are not those the checkpoint at size {end} signed")
