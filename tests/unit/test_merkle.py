"""The Merkle tree of per-batch egress signatures (shulian.logic.merkle): every leaf's proof
leads to the root, and nothing else does; the shape is RFC 6962's for every size."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shulian.logic.merkle import MAX_STEPS, STEP, Tree, leaf_hash, node_hash, root_of


def _rfc6962(data: list[bytes]) -> bytes:
    """RFC 6962's MTH, written from its definition (an independent reference)."""
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + _rfc6962(data[:k]) + _rfc6962(data[k:])).digest()


def _data(n: int, tag: bytes = b"r") -> list[bytes]:
    return [tag + str(i).encode() for i in range(n)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7, 8, 9, 13, 16, 17, 31, 33, 100])
def test_every_proof_leads_to_the_root_and_the_root_is_rfc6962s(n: int) -> None:
    data = _data(n)
    tree = Tree([leaf_hash(d) for d in data])
    assert tree.root == _rfc6962(data)
    for i, d in enumerate(data):
        proof = tree.proof(i)
        assert len(proof) % STEP == 0 and len(proof) <= STEP * max(1, (n - 1).bit_length())
        assert root_of(leaf_hash(d), proof) == tree.root


def test_single_leaf_tree_root_is_the_leaf_and_its_proof_is_empty() -> None:
    tree = Tree([leaf_hash(b"only")])
    assert tree.root == leaf_hash(b"only") and tree.proof(0) == b""
    assert root_of(leaf_hash(b"only"), b"") == tree.root
    assert root_of(leaf_hash(b"other"), b"") != tree.root
    with pytest.raises(ValueError):
        Tree([])
    with pytest.raises(IndexError):
        tree.proof(1)


def test_tampered_leaf_swapped_proof_other_tree_and_truncation_all_fail() -> None:
    data = _data(7)
    tree = Tree([leaf_hash(d) for d in data])
    other = Tree([leaf_hash(d) for d in _data(7, b"s")])
    p3 = tree.proof(3)
    assert root_of(leaf_hash(data[3] + b"x"), p3) != tree.root  # tampered leaf
    assert root_of(leaf_hash(data[3]), tree.proof(4)) != tree.root  # another leaf's proof
    assert root_of(leaf_hash(data[3]), other.proof(3)) != tree.root  # another tree's proof
    assert root_of(leaf_hash(data[3]), p3[:-STEP]) != tree.root  # a step cut off
    assert root_of(leaf_hash(data[3]), p3[:-1]) is None  # not whole steps
    assert root_of(leaf_hash(data[3]), b"X" + p3[1:]) is None  # a side other than L/R
    flipped = (b"R" if p3[:1] == b"L" else b"L") + p3[1:]
    assert root_of(leaf_hash(data[3]), flipped) != tree.root  # sides swapped
    assert root_of(leaf_hash(b""), b"L" * STEP * (MAX_STEPS + 1)) is None  # too long


def test_a_node_does_not_pass_for_a_leaf() -> None:
    """Domain separation: the two children of a node, given as one leaf's data, hash to
    something else than the node (a forger cannot present an inner node as a record)."""
    a, b = leaf_hash(b"a"), leaf_hash(b"b")
    assert leaf_hash(a + b) != node_hash(a, b)
    tree = Tree([a, b])
    assert tree.root == node_hash(a, b)
    assert root_of(leaf_hash(a + b), b"") != tree.root


@given(st.lists(st.binary(max_size=40), min_size=1, max_size=70, unique=True), st.data())
def test_property_a_proof_vouches_for_its_own_leaf_only(leaves: list[bytes],
                                                        draw: st.DataObject) -> None:
    tree = Tree([leaf_hash(x) for x in leaves])
    assert tree.root == _rfc6962(leaves)
    i = draw.draw(st.integers(0, len(leaves) - 1))
    j = draw.draw(st.integers(0, len(leaves) - 1))
    proof = tree.proof(i)
    assert root_of(leaf_hash(leaves[i]), proof) == tree.root
    if j != i:  # unique leaves: another leaf never verifies with i's proof
        assert root_of(leaf_hash(leaves[j]), proof) != tree.root
    other = draw.draw(st.binary(max_size=40))
    if other != leaves[i]:
        assert root_of(leaf_hash(other), proof) != tree.root
