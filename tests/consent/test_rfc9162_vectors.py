"""RFC 9162 §2.1.5: the seven-leaf example's audit paths and consistency proofs, and the
Certificate Transparency reference hashes (RFC 6962 test data) for roots and proofs."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from consent import merkle, tree
from consent.models import LedgerEntry
from consent.verify import EMPTY_ROOT, leaf_hash, node_hash, verify_consistency, verify_inclusion
from store.db import utcnow
from tests.consent.trees import consistency_path, inclusion_path, root, stored_nodes

DATA = [bytes.fromhex(h) for h in ("", "00", "10", "2021", "3031", "40414243", "5051525354555657",
                                    "606162636465666768696a6b6c6d6e6f")]
LEAVES = [leaf_hash(item) for item in DATA]
ROOTS = [bytes.fromhex(h) for h in (
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
)]


def _h(*hexes: str) -> list[bytes]:
    return [bytes.fromhex(item) for item in hexes]


# The seven-leaf tree of RFC 9162 §2.1.5, its nodes named as in the RFC's figure.
a, b, c, d, e, f, j = LEAVES[:7]
g, h, i = node_hash(a, b), node_hash(c, d), node_hash(e, f)
k, l = node_hash(g, h), node_hash(i, j)  # noqa: E741 (the RFC's name)
SEVEN = stored_nodes(LEAVES[:7])


def test_empty_tree_hash_is_sha256_of_nothing() -> None:
    assert EMPTY_ROOT.hex() == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert merkle.fold([]) == EMPTY_ROOT


def test_roots_of_every_size_match_the_reference_hashes() -> None:
    nodes = stored_nodes(LEAVES)
    for size in range(1, 9):
        assert root(nodes, size) == ROOTS[size - 1] == merkle.root_of_leaves(LEAVES[:size])


@pytest.mark.parametrize(("index", "expected"), [(0, [b, h, l]), (3, [c, g, l]), (4, [f, j, k]), (6, [i, k])])
def test_seven_leaf_audit_paths_are_those_of_the_rfc(index: int, expected: list[bytes]) -> None:
    assert inclusion_path(SEVEN, index, 7) == expected
    verify_inclusion(LEAVES[index], index, 7, expected, ROOTS[6])


@pytest.mark.parametrize(("first", "expected"), [(3, [c, d, g, l]), (4, [l]), (6, [i, j, k])])
def test_seven_leaf_consistency_proofs_are_those_of_the_rfc(first: int, expected: list[bytes]) -> None:
    assert consistency_path(SEVEN, first, 7) == expected
    verify_consistency(first, 7, ROOTS[first - 1], ROOTS[6], expected)


def test_eight_leaf_proofs_match_the_reference_hashes() -> None:
    nodes = stored_nodes(LEAVES)
    assert inclusion_path(nodes, 0, 8) == _h("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                                             "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                                             "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")
    assert inclusion_path(nodes, 5, 8) == _h("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                                             "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                                             "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7")
    assert consistency_path(nodes, 2, 8) == _h("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                                               "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4")


def test_the_database_tree_serves_the_same_proofs(db_session: Session) -> None:
    head = tree.lock_head(db_session)
    start = head.size
    for offset, hashed in enumerate(LEAVES[:7]):
        db_session.add(LedgerEntry(seq=start + offset, leaf=f"vector {offset}", leaf_hash=hashed, type="test",
                                   created_at=utcnow()))
        db_session.flush()
        head = tree.add_leaf(db_session, head, hashed)
    tree.save_head(db_session, head)
    if start == 0:  # the vectors hold for a tree of exactly these seven leaves
        assert tree.root_at(db_session, 7) == ROOTS[6] == tree.read_head(db_session).root
        assert tree.inclusion_proof(db_session, 3, 7) == ([c, g, l], d)
        assert tree.consistency_proof(db_session, 3, 7) == [c, d, g, l]
    assert tree.read_head(db_session).size == start + 7
