"""Standalone verifier for the consent ledger: standard library and ``cryptography`` only.

Checks, with nothing from the rest of the project (consent-ledger.md "A standalone verifier"):

* a checkpoint: C2SP ``tlog-checkpoint`` text on a C2SP ``signed-note`` with an Ed25519 signature;
* a receipt (compact JWS, EdDSA) and its inclusion in a checkpoint (RFC 9162 §2.1.3.2);
* the consistency of two checkpoints (RFC 9162 §2.1.4.2).

Usage::

    python -m consent.verify checkpoint  --key VKEY CHECKPOINT
    python -m consent.verify inclusion   --key VKEY --checkpoint CHECKPOINT --proof PROOF.json RECEIPT
    python -m consent.verify consistency --key VKEY --proof PROOF.json OLD_CHECKPOINT NEW_CHECKPOINT

``VKEY`` is the note verifier key published at ``/ledger/key`` (``name+keyhash+base64``);
``--key`` may be repeated. A checkpoint file holds the note text or the JSON of ``/ledger/checkpoint``.
Exit status 0 means verified; 1 prints the reason the verification failed.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import json
import sys
from collections.abc import Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 9162 §2.1.1: MTH({}) = HASH()
SIGNATURE_DASH = "\u2014 "  # C2SP signed-note: signature lines start with an em dash and a space
ED25519_TYPE = b"\x01"  # C2SP signed-note: signature type of Ed25519 keys
RECEIPT_TYP = "consent-receipt+jwt"
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 §3.2.2.3: integers beyond this lose precision


class VerificationError(Exception):
    """A proof, signature, checkpoint or receipt did not verify; the message says why."""


# -- RFC 9162 §2.1.1 hashing -------------------------------------------------------------------


def leaf_hash(leaf: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + leaf).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


# -- RFC 9162 §2.1.3.2 and §2.1.4.2 ------------------------------------------------------------


def verify_inclusion(hash_: bytes, index: int, size: int, path: Sequence[bytes], root: bytes) -> None:
    """RFC 9162 §2.1.3.2, step by step; raises VerificationError on failure."""
    if not 0 <= index < size:
        raise VerificationError(f"leaf index {index} is not inside a tree of size {size}")
    fn, sn, r = index, size - 1, hash_
    for p in path:
        if sn == 0:
            raise VerificationError("inclusion proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("inclusion proof is shorter than the tree is deep")
    if r != root:
        raise VerificationError("inclusion proof does not lead to the root hash")


def verify_consistency(first: int, second: int, first_root: bytes, second_root: bytes,
                       path: Sequence[bytes]) -> None:
    """RFC 9162 §2.1.4.2; equal sizes need an empty proof and equal roots."""
    if not 0 < first <= second:
        raise VerificationError(f"sizes must satisfy 0 < first <= second, got {first} and {second}")
    if first == second:
        if path:
            raise VerificationError("a proof between equal sizes must be empty")
        if first_root != second_root:
            raise VerificationError("two checkpoints of the same size have different roots")
        return
    if not path:
        raise VerificationError("consistency proof is empty")
    nodes = list(path)
    if first & (first - 1) == 0:  # an exact power of two: the old root is itself a node
        nodes.insert(0, first_root)
    fn, sn = first - 1, second - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = nodes[0]
    for c in nodes[1:]:
        if sn == 0:
            raise VerificationError("consistency proof is longer than the tree is deep")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise VerificationError("consistency proof is shorter than the tree is deep")
    if fr != first_root:
        raise VerificationError("consistency proof does not lead to the first root hash")
    if sr != second_root:
        raise VerificationError("consistency proof does not lead to the second root hash")


# -- C2SP signed-note and tlog-checkpoint ----------------------------------------------------


@dataclasses.dataclass(frozen=True)
class VerifierKey:
    """A C2SP signed-note verifier key: ``name+hex(key hash)+base64(0x01 || Ed25519 key)``."""

    name: str
    key_hash: bytes
    public_key: bytes

    @classmethod
    def parse(cls, text: str) -> VerifierKey:
        name, sep1, rest = text.strip().partition("+")
        hash_hex, sep2, encoded = rest.partition("+")
        if not (sep1 and sep2 and name and len(hash_hex) == 8):
            raise VerificationError("a verifier key reads name+keyhash+base64key")
        raw = _b64(encoded, "verifier key")
        if len(raw) != 33 or raw[:1] != ED25519_TYPE:
            raise VerificationError("the verifier key is not an Ed25519 key")
        key = cls(name, bytes.fromhex(hash_hex), raw[1:])
        if key_hash(name, key.public_key) != key.key_hash:
            raise VerificationError("the verifier key's hash does not match its name and key")
        return key

    def verify(self, message: bytes, signature: bytes) -> bool:
        try:
            Ed25519PublicKey.from_public_bytes(self.public_key).verify(signature, message)
        except (InvalidSignature, ValueError):
            return False
        return True

    @property
    def jwk_thumbprint(self) -> str:
        """RFC 7638 §3 thumbprint of the same key as an OKP JWK (RFC 8037 §2): the receipts' ``kid``."""
        members = {"crv": "Ed25519", "kty": "OKP", "x": _b64url(self.public_key)}
        canonical = json.dumps(members, sort_keys=True, separators=(",", ":")).encode()
        return _b64url(hashlib.sha256(canonical).digest())


def key_hash(name: str, public_key: bytes) -> bytes:
    """C2SP signed-note: the first four bytes of SHA-256(name || 0x0A || 0x01 || key)."""
    return hashlib.sha256(name.encode() + b"\n" + ED25519_TYPE + public_key).digest()[:4]


@dataclasses.dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    text: str  # the signed note, as verified


def open_note(note: str, keys: Sequence[VerifierKey]) -> str:
    """C2SP signed-note: the note's text, once one signature by a known key verifies."""
    text, sep, signatures = note.rpartition("\n\n")
    if not sep or not signatures.endswith("\n"):
        raise VerificationError("not a signed note: no blank line before the signatures")
    text += "\n"
    for line in signatures.splitlines():
        if not line.startswith(SIGNATURE_DASH):
            raise VerificationError("malformed signature line in the note")
        name, _, encoded = line.removeprefix(SIGNATURE_DASH).partition(" ")
        blob = _b64(encoded, "note signature")
        for key in keys:
            if key.name == name and blob[:4] == key.key_hash and key.verify(text.encode(), blob[4:]):
                return text
    raise VerificationError("no signature on the note verifies with the given keys")


def parse_checkpoint(text: str) -> tuple[str, int, bytes]:
    """C2SP tlog-checkpoint: origin, decimal tree size, base64 root hash, optional extension lines."""
    lines = text.split("\n")
    if len(lines) < 4 or not lines[0]:
        raise VerificationError("a checkpoint needs an origin, a tree size and a root hash line")
    origin, size_text, root_text = lines[:3]
    if not size_text.isdigit() or (size_text.startswith("0") and size_text != "0") or not size_text.isascii():
        raise VerificationError("the checkpoint's tree size is not a decimal number")
    root = _b64(root_text, "checkpoint root hash")
    if len(root) != 32:
        raise VerificationError("the checkpoint's root hash is not 32 bytes")
    return origin, int(size_text), root


def verify_checkpoint(note: str, keys: Sequence[VerifierKey]) -> Checkpoint:
    origin, size, root = parse_checkpoint(open_note(note, keys))
    if not any(key.name == origin for key in keys):
        raise VerificationError(f"the checkpoint's origin {origin!r} is not the name of a given key")
    return Checkpoint(origin, size, root, note)


# -- receipts ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Receipt:
    entry: dict[str, Any]
    leaf_index: int
    leaf_hash: bytes
    claims: dict[str, Any]


def verify_receipt(token: str, keys: Sequence[VerifierKey]) -> Receipt:
    """A receipt is a compact JWS (RFC 7515 §7.1), EdDSA (RFC 8037 §3.1), by a ledger key."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise VerificationError("a receipt is a compact JWS of three parts")
    header, claims = (_json_object(_b64url_decode(part), "receipt") for part in parts[:2])
    if header.get("alg") != "EdDSA" or header.get("typ") != RECEIPT_TYP:
        raise VerificationError("the receipt's header is not an EdDSA consent receipt")
    signing_input = f"{parts[0]}.{parts[1]}".encode()
    signature = _b64url_decode(parts[2])
    if not any(key.jwk_thumbprint == header.get("kid") and key.verify(signing_input, signature) for key in keys):
        raise VerificationError("the receipt's signature does not verify with the given keys")
    return _receipt_from(claims)


def _receipt_from(claims: dict[str, Any]) -> Receipt:
    entry, index = claims.get("entry"), claims.get("leaf_index")
    if not isinstance(entry, dict) or not isinstance(index, int) or isinstance(index, bool) or index < 0:
        raise VerificationError("the receipt lacks its entry or leaf index")
    stated = _b64(str(claims.get("leaf_hash", "")), "receipt leaf hash")
    if leaf_hash(canonical_json(entry)) != stated:
        raise VerificationError("the receipt's leaf hash is not the hash of its entry")
    if entry.get("seq") != index:
        raise VerificationError("the receipt's entry and leaf index disagree")
    return Receipt(entry, index, stated, claims)


def canonical_json(value: Any) -> bytes:
    """RFC 8785 (JCS) for the values ledger entries hold: strings, integers, booleans, null,
    arrays and objects. Floats are refused: entries never hold them (§3.2.2.3 would apply)."""
    return _jcs(value).encode("utf-8")


def _jcs(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, int):
        if abs(value) > MAX_SAFE_INTEGER:
            raise VerificationError("an integer in the entry is outside the I-JSON range")
        return str(value)
    if isinstance(value, str):
        _check_scalar_values(value)
        return json.dumps(value, ensure_ascii=False)  # RFC 8785 §3.2.2.2: the ES6 escapes
    if isinstance(value, list):
        return "[" + ",".join(_jcs(item) for item in value) + "]"
    if isinstance(value, dict):
        # RFC 8785 §3.2.3: members sorted by the UTF-16 code units of their names.
        names = sorted(value, key=lambda name: name.encode("utf-16-be"))
        return "{" + ",".join(_jcs(name) + ":" + _jcs(value[name]) for name in names) + "}"
    raise VerificationError(f"an entry may not hold a {type(value).__name__}")


def _check_scalar_values(text: str) -> None:
    if any(0xD800 <= ord(char) <= 0xDFFF for char in text):
        raise VerificationError("a string in the entry holds a lone surrogate")


# -- encodings ---------------------------------------------------------------------------------


def _b64(text: str, what: str) -> bytes:
    try:
        data = base64.b64decode(text, validate=True)
    except ValueError:
        raise VerificationError(f"the {what} is not valid base64") from None
    if base64.b64encode(data).decode() != text:  # unused bits set: a second spelling of the same bytes
        raise VerificationError(f"the {what} is not canonical base64")
    return data


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes:
    if not text or any(char not in _B64URL for char in text) or len(text) % 4 == 1:
        raise VerificationError("the receipt holds a part that is not base64url")
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64url(data) != text:  # RFC 7515 §2: unpadded, and no second spelling of the same bytes
        raise VerificationError("the receipt holds a part that is not canonical base64url")
    return data


_B64URL = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        value = json.loads(data)
    except ValueError:
        raise VerificationError(f"the {what} holds invalid JSON") from None
    if not isinstance(value, dict):
        raise VerificationError(f"the {what} holds JSON that is not an object")
    return value


def decode_path(items: Any, what: str) -> list[bytes]:
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise VerificationError(f"the {what} must be a list of base64 hashes")
    hashes = [_b64(item, what) for item in items]
    if any(len(item) != 32 for item in hashes):
        raise VerificationError(f"every hash in the {what} must be 32 bytes")
    return hashes


# -- command line ------------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.read()
    except OSError as error:
        raise VerificationError(f"cannot read {path}: {error.strerror}") from None


def _read_checkpoint(path: str, keys: Sequence[VerifierKey]) -> Checkpoint:
    text = _read(path)
    if text.lstrip().startswith("{"):  # the JSON of /ledger/checkpoint
        text = str(_json_object(text.encode(), "checkpoint file").get("checkpoint", ""))
    return verify_checkpoint(text, keys)


def _size(document: dict[str, Any], name: str) -> int:
    value = document.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise VerificationError(f"the proof lacks an integer {name!r}")
    return value


def check_inclusion(receipt: Receipt, checkpoint: Checkpoint, proof: dict[str, Any]) -> None:
    if _size(proof, "leaf_index") != receipt.leaf_index or _size(proof, "tree_size") != checkpoint.size:
        raise VerificationError("the proof is not for this receipt's leaf in this checkpoint's tree")
    path = decode_path(proof.get("inclusion_path"), "inclusion path")
    verify_inclusion(receipt.leaf_hash, receipt.leaf_index, checkpoint.size, path, checkpoint.root_hash)


def check_consistency(old: Checkpoint, new: Checkpoint, proof: dict[str, Any]) -> None:
    if old.origin != new.origin:
        raise VerificationError("the two checkpoints come from different logs")
    if _size(proof, "first") != old.size or _size(proof, "second") != new.size:
        raise VerificationError("the proof is not between these two checkpoints' sizes")
    path = decode_path(proof.get("consistency_path"), "consistency path")
    verify_consistency(old.size, new.size, old.root_hash, new.root_hash, path)


def _run(args: argparse.Namespace) -> str:
    keys = [VerifierKey.parse(text) for text in args.key]
    if args.command == "checkpoint":
        checkpoint = _read_checkpoint(args.checkpoint, keys)
        return f"checkpoint of {checkpoint.origin} at size {checkpoint.size} is signed"
    proof = _json_object(_read(args.proof).encode(), "proof file")
    if args.command == "inclusion":
        receipt = verify_receipt(_read(args.receipt), keys)
        checkpoint = _read_checkpoint(args.checkpoint, keys)
        check_inclusion(receipt, checkpoint, proof)
        return f"entry {receipt.leaf_index} ({receipt.entry.get('type')}) is in the log at size {checkpoint.size}"
    old, new = _read_checkpoint(args.old, keys), _read_checkpoint(args.new, keys)
    check_consistency(old, new, proof)
    return f"the log at size {new.size} extends the log at size {old.size}"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m consent.verify", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    checkpoint = commands.add_parser("checkpoint", help="verify a checkpoint's signature")
    checkpoint.add_argument("checkpoint")
    inclusion = commands.add_parser("inclusion", help="verify a receipt and its inclusion in a checkpoint")
    inclusion.add_argument("--checkpoint", required=True)
    inclusion.add_argument("--proof", required=True)
    inclusion.add_argument("receipt")
    consistency = commands.add_parser("consistency", help="verify that a newer checkpoint extends an older one")
    consistency.add_argument("--proof", required=True)
    consistency.add_argument("old")
    consistency.add_argument("new")
    for command in (checkpoint, inclusion, consistency):
        command.add_argument("--key", action="append", required=True, help="note verifier key (repeatable)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        print(f"OK: {_run(args)}")
    except VerificationError as error:
        print(f"FAILED: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
