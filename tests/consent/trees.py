"""Test helpers: an in-memory tree of stored complete subtrees, built the way the ledger builds it."""

from __future__ import annotations

from consent import merkle
from consent.merkle import Node


def stored_nodes(leaves: list[bytes]) -> dict[Node, bytes]:
    """Leaf hashes at level 0 and every complete subtree ``append_leaf`` produced."""
    nodes: dict[Node, bytes] = {}
    frontier: list[bytes] = []
    for index, leaf in enumerate(leaves):
        nodes[(0, index)] = leaf
        frontier, completed = merkle.append_leaf(index, frontier, leaf)
        nodes.update(completed)
    return nodes


def inclusion_path(nodes: dict[Node, bytes], index: int, size: int) -> list[bytes]:
    return merkle.hash_ranges(merkle.inclusion_ranges(index, size), nodes)


def consistency_path(nodes: dict[Node, bytes], first: int, second: int) -> list[bytes]:
    return merkle.hash_ranges(merkle.consistency_ranges(first, second), nodes)


def root(nodes: dict[Node, bytes], size: int) -> bytes:
    return merkle.fold([nodes[node] for node in merkle.perfect_nodes(0, size)])
