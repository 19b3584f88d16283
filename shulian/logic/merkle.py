"""A SHA-256 Merkle tree with inclusion proofs (audit paths). Pure.

One signature over a tree's root vouches for every leaf; each leaf carries its proof, so a
leaf is checked alone with its proof, the root's signature and nothing else.

* Leaf hash: ``SHA-256(0x00 || data)``; node hash: ``SHA-256(0x01 || left || right)``. The
  prefixes keep a leaf from passing for a node and a node for a leaf (RFC 6962, section 2.1).
* Shape: levels are built bottom-up, pairing neighbours; an unpaired last node moves up a level
  unchanged (never hashed with itself, so no two leaf lists give the same root by repeating a
  last leaf, CVE-2012-2459). This is RFC 6962's tree: ``MTH(D[n]) = node(MTH(D[:k]),
  MTH(D[k:]))`` with ``k`` the largest power of two below ``n``.
* A proof is the audit path from the leaf up, one 33-byte step per level where the node has a
  sibling: the byte ``L`` (the sibling is on the left) or ``R`` (on the right), then the
  sibling's 32-byte hash. A one-leaf tree's root is its leaf hash and its proof is empty.
  A proof has at most :data:`MAX_STEPS` steps (a tree of up to 2**64 leaves).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

__all__ = ["LEFT", "MAX_STEPS", "RIGHT", "STEP", "Tree", "leaf_hash", "node_hash", "root_of"]

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
LEFT = b"L"
RIGHT = b"R"
STEP = 33
"""Bytes per proof step: side, then the sibling's SHA-256."""
MAX_STEPS = 64

_sha256 = hashlib.sha256


def leaf_hash(data: bytes) -> bytes:
    return _sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return _sha256(NODE_PREFIX + left + right).digest()


class Tree:
    """The tree over ``leaves`` (leaf hashes, at least one), its root and every leaf's proof."""

    __slots__ = ("_levels",)

    def __init__(self, leaves: Sequence[bytes]) -> None:
        if not leaves:
            raise ValueError("a Merkle tree needs at least one leaf")
        levels = [list(leaves)]
        while len(levels[-1]) > 1:
            prev = levels[-1]
            up = [_sha256(NODE_PREFIX + prev[i] + prev[i + 1]).digest()
                  for i in range(0, len(prev) - 1, 2)]
            if len(prev) % 2:
                up.append(prev[-1])  # unpaired: moves up unchanged
            levels.append(up)
        self._levels = levels

    @property
    def root(self) -> bytes:
        return self._levels[-1][0]

    def __len__(self) -> int:
        return len(self._levels[0])

    def proof(self, index: int) -> bytes:
        """The audit path of leaf ``index`` (see the module's docstring)."""
        if not 0 <= index < len(self._levels[0]):
            raise IndexError(f"leaf {index} of a tree of {len(self)}")
        steps: list[bytes] = []
        for level in self._levels[:-1]:
            sibling = index ^ 1
            if sibling < len(level):
                steps.append((LEFT if sibling < index else RIGHT) + level[sibling])
            index >>= 1
        return b"".join(steps)


def root_of(leaf: bytes, proof: bytes) -> bytes | None:
    """The root that ``proof`` leads to from leaf hash ``leaf``; None when the proof is not
    well formed (not whole steps, too long, a side other than ``L``/``R``)."""
    if len(proof) % STEP or len(proof) > STEP * MAX_STEPS:
        return None
    node = leaf
    for i in range(0, len(proof), STEP):
        side, sibling = proof[i:i + 1], proof[i + 1:i + STEP]
        if side == LEFT:
            node = _sha256(NODE_PREFIX + sibling + node).digest()
        elif side == RIGHT:
            node = _sha256(NODE_PREFIX + node + sibling).digest()
        else:
            return None
    return node
