"""The RFC 9162 §2.1 Merkle tree as pure functions over *stored complete subtrees*.

A tree of ``n`` leaves is the hashes of perfect subtrees: node ``(level, index)`` covers leaves
``[index·2^level, (index+1)·2^level)``. Every range the RFC's recursions (MTH, PATH, PROOF) ask
for starts at a multiple of a power of two at least its length, so its hash is a fold of at most
log2(n) perfect nodes (the set bits of its length). Proofs are therefore computed in two steps:
work out which nodes are needed, fetch them at once, then hash — O(log n) nodes per proof.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

from consent.verify import EMPTY_ROOT, node_hash

Node = tuple[int, int]  # (level, index); level 0 is a leaf hash
Range = tuple[int, int]  # [start, end) of leaf indices


def split_point(n: int) -> int:
    """RFC 9162 §2.1.1: the largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def perfect_nodes(start: int, end: int) -> list[Node]:
    """The perfect subtrees that make up ``[start, end)``, left to right (largest first)."""
    nodes, offset = [], start
    for level in reversed(range((end - start).bit_length())):
        if (end - start) >> level & 1:
            nodes.append((level, offset >> level))
            offset += 1 << level
    return nodes


def fold(hashes: Sequence[bytes]) -> bytes:
    """MTH of a range from its perfect subtrees, largest first: the split is always at the first."""
    if not hashes:
        return EMPTY_ROOT
    result = hashes[-1]
    for left in reversed(hashes[:-1]):
        result = node_hash(left, result)
    return result


def inclusion_ranges(index: int, size: int) -> list[Range]:
    """RFC 9162 §2.1.3.1 PATH(m, D[n]): the subtrees whose hashes form the audit path, bottom up."""
    ranges: list[Range] = []
    start, end = 0, size
    while end - start > 1:
        k = split_point(end - start)
        if index - start < k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start += k
    return ranges[::-1]


def consistency_ranges(first: int, second: int) -> list[Range]:
    """RFC 9162 §2.1.4.1 PROOF(m, D[n]) = SUBPROOF(m, D[n], true), bottom up."""
    ranges: list[Range] = []
    start, end, m, whole = 0, second, first, True
    while m != end - start:
        k = split_point(end - start)
        if m <= k:
            ranges.append((start + k, end))
            end = start + k
        else:
            ranges.append((start, start + k))
            start, m, whole = start + k, m - k, False
    if not whole:
        ranges.append((start, end))  # SUBPROOF(m, D[m], false) = [MTH(D[m])]
    return ranges[::-1]


def nodes_for(ranges: Iterable[Range]) -> set[Node]:
    return {node for start, end in ranges for node in perfect_nodes(start, end)}


def hash_ranges(ranges: Sequence[Range], lookup: Mapping[Node, bytes]) -> list[bytes]:
    return [fold([lookup[node] for node in perfect_nodes(start, end)]) for start, end in ranges]


# -- the frontier: the perfect subtrees of the whole tree, kept on the ledger head ------------


def frontier_levels(size: int) -> list[int]:
    """Levels of the perfect subtrees of a tree of ``size`` leaves, largest first."""
    return [level for level in reversed(range(size.bit_length())) if size >> level & 1]


def append_leaf(size: int, frontier: list[bytes], leaf: bytes) -> tuple[list[bytes], list[tuple[Node, bytes]]]:
    """Add leaf number ``size``: the new frontier and the perfect nodes (level ≥ 1) it completes."""
    frontier = [*frontier, leaf]
    completed: list[tuple[Node, bytes]] = []
    level, end = 0, size + 1
    while end >> level & 1 == 0:  # trailing zero bits of the new size: two equal subtrees merge
        right, left = frontier.pop(), frontier.pop()
        level += 1
        merged = node_hash(left, right)
        frontier.append(merged)
        completed.append(((level, (end >> level) - 1), merged))
    return frontier, completed


def pack(hashes: Sequence[bytes]) -> bytes:
    return b"".join(hashes)


def unpack(blob: bytes) -> list[bytes]:
    return [blob[i:i + 32] for i in range(0, len(blob), 32)]


def root_of_leaves(leaves: Sequence[bytes], node: Callable[[bytes, bytes], bytes] = node_hash) -> bytes:
    """MTH straight from RFC 9162 §2.1.1's definition (for tests and small trees)."""
    if not leaves:
        return EMPTY_ROOT
    if len(leaves) == 1:
        return leaves[0]
    k = split_point(len(leaves))
    return node(root_of_leaves(leaves[:k], node), root_of_leaves(leaves[k:], node))
