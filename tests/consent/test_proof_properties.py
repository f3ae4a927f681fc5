"""Hypothesis: every proof for every size verifies, and flipping any bit of a proof, a leaf, a
root, a checkpoint or a receipt makes verification fail (RFC 9162 §2.1.3.2, §2.1.4.2)."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from consent import notes
from consent.ledger import sign_receipt
from consent.verify import (
    VerificationError,
    VerifierKey,
    canonical_json,
    leaf_hash,
    verify_checkpoint,
    verify_consistency,
    verify_inclusion,
    verify_receipt,
)
from tests.consent.trees import consistency_path, inclusion_path, root, stored_nodes

MAX_LEAVES = 300
LEAVES = [leaf_hash(hashlib.sha256(str(n).encode()).digest()) for n in range(MAX_LEAVES)]
NODES = stored_nodes(LEAVES)
KEY = Ed25519PrivateKey.generate()
ORIGIN = "id.example/consent-ledger"
VKEY = VerifierKey.parse(notes.verifier_key(ORIGIN, KEY.public_key()))
FEW = settings(max_examples=60, deadline=None)


def _flip(data: bytes, bit: int) -> bytes:
    bit %= len(data) * 8
    changed = bytearray(data)
    changed[bit // 8] ^= 1 << (bit % 8)
    return bytes(changed)


@st.composite
def leaf_in_tree(draw: st.DrawFn) -> tuple[int, int]:
    size = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(0, size - 1)), size


@st.composite
def two_sizes(draw: st.DrawFn) -> tuple[int, int]:
    second = draw(st.integers(1, MAX_LEAVES))
    return draw(st.integers(1, second)), second


@FEW
@given(leaf_in_tree())
def test_every_inclusion_proof_verifies(case: tuple[int, int]) -> None:
    index, size = case
    verify_inclusion(LEAVES[index], index, size, inclusion_path(NODES, index, size), root(NODES, size))


@FEW
@given(two_sizes())
def test_every_consistency_proof_verifies(case: tuple[int, int]) -> None:
    first, second = case
    verify_consistency(first, second, root(NODES, first), root(NODES, second), consistency_path(NODES, first, second))


@FEW
@given(leaf_in_tree(), st.integers(0, 2**20), st.sampled_from(["proof", "leaf", "root"]))
def test_flipping_any_bit_of_an_inclusion_proof_leaf_or_root_fails(case: tuple[int, int], bit: int,
                                                                    where: str) -> None:
    index, size = case
    leaf, path, top = LEAVES[index], inclusion_path(NODES, index, size), root(NODES, size)
    if where == "proof":
        if not path:
            return  # a one-leaf tree has no path to flip
        position = bit % len(path)
        path[position] = _flip(path[position], bit // len(path))
    elif where == "leaf":
        leaf = _flip(leaf, bit)
    else:
        top = _flip(top, bit)
    with pytest.raises(VerificationError):
        verify_inclusion(leaf, index, size, path, top)


@FEW
@given(two_sizes(), st.integers(0, 2**20), st.sampled_from(["proof", "first", "second"]))
def test_flipping_any_bit_of_a_consistency_proof_or_root_fails(case: tuple[int, int], bit: int, where: str) -> None:
    first, second = case
    path = consistency_path(NODES, first, second)
    old, new = root(NODES, first), root(NODES, second)
    if where == "proof":
        if not path:
            return  # equal sizes: an empty proof
        position = bit % len(path)
        path[position] = _flip(path[position], bit // len(path))
    elif where == "first":
        old = _flip(old, bit)
    else:
        new = _flip(new, bit)
    with pytest.raises(VerificationError):
        verify_consistency(first, second, old, new, path)


@FEW
@given(leaf_in_tree())
def test_a_proof_for_another_index_fails(case: tuple[int, int]) -> None:
    index, size = case
    path, top = inclusion_path(NODES, index, size), root(NODES, size)
    with pytest.raises(VerificationError):
        verify_inclusion(LEAVES[index], index, size, path[:-1] if path else [top], top)
    if size > 1:
        other = (index + 1) % size
        with pytest.raises(VerificationError):
            verify_inclusion(LEAVES[index], other, size, path, top)


def _checkpoint(size: int) -> str:
    return notes.sign_note(notes.checkpoint_text(ORIGIN, size, root(NODES, size)), ORIGIN, KEY)


@FEW
@given(st.integers(1, MAX_LEAVES), st.integers(0, 2**20))
def test_flipping_any_bit_of_a_signed_checkpoint_fails(size: int, bit: int) -> None:
    note = _checkpoint(size)
    assert verify_checkpoint(note, [VKEY]).root_hash == root(NODES, size)
    raw = note.encode()
    changed = _flip(raw, bit)
    try:
        text = changed.decode()
    except UnicodeDecodeError:
        return  # not text any more: nothing a verifier would even read
    with pytest.raises(VerificationError):
        verify_checkpoint(text, [VKEY])


JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=20)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)


@FEW
@given(JSON_VALUES)
def test_the_verifiers_jcs_agrees_with_rfc8785(value: object) -> None:
    try:
        expected = rfc8785.dumps(value)
    except rfc8785.CanonicalizationError:
        with pytest.raises(VerificationError):
            canonical_json(value)
        return
    assert canonical_json(value) == expected


@FEW
@given(st.integers(0, 2**20))
def test_flipping_any_bit_of_a_receipt_fails(bit: int) -> None:
    entry = {"v": 1, "seq": 7, "time": "2026-11-30T10:00:00.000Z", "type": "consent.withdrawn", "subject": "p",
             "agency": "a", "scopes": ["email"]}
    now = dt.datetime.now(dt.UTC)
    token = sign_receipt(entry, leaf_hash(rfc8785.dumps(entry)), ORIGIN, VKEY.jwk_thumbprint, KEY, now)
    assert verify_receipt(token, [VKEY]).leaf_index == 7
    changed = _flip(token.encode(), bit).decode("latin-1")
    if changed == token:
        return
    with pytest.raises(VerificationError):
        verify_receipt(changed, [VKEY])
