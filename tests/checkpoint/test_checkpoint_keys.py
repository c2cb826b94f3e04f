"""Typed PRNG keys in checkpoints: saved as their key data and the name of their
implementation, restored as the same keys, bit for bit, with and without ``like``."""

from __future__ import annotations

import json
import pathlib
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import pytest
from helpers import assert_same_bits
from test_checkpoint import _assert_not_a_checkpoint, _rewrite_description, _step_dir

from jaxgd import checkpoint


class ModelState(NamedTuple):  # as a Flax NNX model's state holds its dropout key
    rngs: Any
    stats: Any


def _is_key(leaf: Any) -> bool:
    return isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key)


def _unkeyed(tree: Any) -> Any:
    """Each typed key as (the name of its implementation, its key data)."""
    return jax.tree.map(
        lambda a: (jax.random.key_impl(a), jax.random.key_data(a)) if _is_key(a) else a, tree
    )


def assert_same_keys_and_bits(got: Any, want: Any, *, same_containers: bool = True) -> None:
    """Same structure, and leaf by leaf the same dtype (``key<fry>`` ...) and bits."""
    assert [str(a.dtype) for a in jax.tree.leaves(got)] == [
        str(a.dtype) for a in jax.tree.leaves(want)
    ]
    assert_same_bits(_unkeyed(got), _unkeyed(want), same_containers=same_containers)


def keyed_tree() -> ModelState:
    return ModelState(
        rngs={
            "dropout": jax.random.key(7),  # threefry2x32, the default
            "rbg": jax.random.key(3, impl="rbg"),
            "batch": jax.random.split(jax.random.key(1), (2, 3)),
            "none": jax.random.split(jax.random.key(2), 0),  # empty: described, not stored
        },
        stats={
            "mean": jnp.arange(3.0),
            "half": jnp.ones(2, jnp.bfloat16),
            "raw": jax.random.key_data(jax.random.key(5)),  # a raw uint32 key stays uint32
        },
    )


def test_a_typed_key_round_trips_bit_for_bit(tmp_path: pathlib.Path) -> None:
    key = jax.random.key(0)
    path = checkpoint.save(tmp_path / "key", key)  # a tree that is a single key
    for back in (checkpoint.load(path), checkpoint.load(path, like=key)):
        assert back.dtype == key.dtype and back.shape == ()
        assert jax.random.key_impl(back) == "threefry2x32"
        assert_same_bits(jax.random.key_data(back), jax.random.key_data(key))
        # The restored key draws what the saved one draws.
        assert_same_bits(jax.random.normal(back, (4,)), jax.random.normal(key, (4,)))


def test_keys_in_a_tree_round_trip_with_and_without_like(tmp_path: pathlib.Path) -> None:
    tree = keyed_tree()
    path = checkpoint.save(tmp_path / "state", tree, metadata={"step": 3})
    assert_same_keys_and_bits(checkpoint.load(path, like=tree), tree)
    plain = checkpoint.load(path)  # the NamedTuple comes back as a tuple
    assert isinstance(plain, tuple) and not isinstance(plain, ModelState)
    assert_same_keys_and_bits(plain, tree, same_containers=False)
    abstract = jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype), tree)
    restored = checkpoint.load(path, like=abstract)
    assert isinstance(restored, ModelState)
    assert_same_keys_and_bits(restored, tree)
    assert jax.random.key_impl(restored.rngs["rbg"]) == "rbg"
    assert checkpoint.load_metadata(path) == {"step": 3}


def test_a_key_is_described_by_its_data_and_implementation(tmp_path: pathlib.Path) -> None:
    path = checkpoint.save(tmp_path / "state", keyed_tree())
    description = json.loads((_step_dir(path) / "jaxgd" / "metadata").read_text())
    assert description["version"] == 3  # a jaxgd that cannot restore keys refuses it
    entries = {spec["path"]: spec for spec in description["leaves"]}
    assert entries[".rngs['dropout']"]["key"] == "threefry2x32"
    assert entries[".rngs['dropout']"]["shape"] == [2]
    assert entries[".rngs['rbg']"]["key"] == "rbg"
    assert entries[".rngs['batch']"]["shape"] == [2, 3, 2]
    assert entries[".rngs['batch']"]["dtype"] == entries[".rngs['batch']"]["stored_as"] == "uint32"
    assert "key" not in entries[".stats['raw']"]
    # A tree without keys is described as before (version 2, no "key"): older jaxgd reads it.
    plain = checkpoint.save(tmp_path / "plain", {"raw": jax.random.key_data(jax.random.key(5))})
    description = json.loads((_step_dir(plain) / "jaxgd" / "metadata").read_text())
    assert description["version"] == 2 and "key" not in description["leaves"][0]


SAVED = {"k": jax.random.key(0), "d": jax.random.key_data(jax.random.key(1))}


@pytest.mark.parametrize(
    ("like", "message"),
    [
        (  # the same batch shape () and another implementation: only the dtype differs
            {**SAVED, "k": jax.random.key(0, impl="rbg")},
            r"does not match `like`:\n  \['k'\]: dtype key<fry> in the checkpoint, key<rbg> "
            r"expected$",
        ),
        (
            {**SAVED, "d": jax.random.key(1)},
            r"\['d'\]: shape \(2,\) in the checkpoint, \(\) expected\n  \['d'\]: dtype uint32 "
            r"in the checkpoint, key<fry> expected$",
        ),
        (
            {**SAVED, "k": jax.random.key_data(jax.random.key(0))},
            r"\['k'\]: shape \(\) in the checkpoint, \(2,\) expected\n  \['k'\]: dtype key<fry> "
            r"in the checkpoint, uint32 expected$",
        ),
    ],
    ids=["other-implementation", "key-for-data", "data-for-key"],
)
def test_like_of_another_key_kind_is_refused_naming_the_leaf(tmp_path, like, message) -> None:
    path = checkpoint.save(tmp_path / "ckpt", SAVED)
    with pytest.raises(ValueError, match=message):
        checkpoint.load(path, like=like)
    assert_same_keys_and_bits(checkpoint.load(path, like=SAVED), SAVED)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda spec: spec.update(key="no_such_prng"),
            "implementation 'no_such_prng', which this JAX does not know",
        ),
        (lambda spec: spec.update(key=7), "malformed"),
        (lambda spec: spec.update(key="rbg"), "not the key data of a rbg key"),
    ],
    ids=["unknown-implementation", "not-a-name", "data-of-another-implementation"],
)
def test_a_tampered_key_description_is_refused(tmp_path: pathlib.Path, edit, message) -> None:
    path = checkpoint.save(tmp_path / "ckpt", {"k": jax.random.key(0)})
    _rewrite_description(path, lambda meta: edit(meta["leaves"][0]))
    _assert_not_a_checkpoint(path, message)


def test_a_key_in_a_version_2_description_is_refused(tmp_path: pathlib.Path) -> None:
    path = checkpoint.save(tmp_path / "ckpt", {"k": jax.random.key(0)})
    _rewrite_description(path, lambda meta: meta.update(version=2))
    _assert_not_a_checkpoint(path, "malformed")


def test_a_key_of_an_unnamed_implementation_is_a_type_error_naming_it(tmp_path) -> None:
    from jax.extend import random as jex_random

    fry = jex_random.threefry_prng_impl
    mine = jex_random.define_prng_impl(
        key_shape=fry.key_shape,
        seed=fry.seed,
        split=fry.split,
        random_bits=fry.random_bits,
        fold_in=fry.fold_in,
        name="mine",
        tag="mine",
    )
    tree = {"w": jnp.ones(2), "k": jax.random.key(0, impl=mine)}
    with pytest.raises(TypeError, match=r"leaf \['k'\] is a PRNG key.*key_data instead"):
        checkpoint.save(tmp_path / "ckpt", tree)
    assert not (tmp_path / "ckpt").exists()  # nothing is written
