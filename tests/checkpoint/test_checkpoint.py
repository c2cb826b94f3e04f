"""Tests for jaxgd.checkpoint: exact round-trips, `like` checks, refusal of bad or
tampered checkpoints, atomic saves, the clean-up of interrupted saves, and the lock.

Multi-process saves and restores are in test_checkpoint_multiprocess.py."""

from __future__ import annotations

import collections
import json
import os
import pathlib
import pickle
import shutil
import signal
import socket
import stat
import subprocess
import sys
import textwrap
from typing import Any, NamedTuple

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from helpers import assert_same_bits
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxgd import checkpoint
from jaxgd.checkpoint._checksums import checksum
from jaxgd.checkpoint._leaves import natively_stored

# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


class AdamLikeState(NamedTuple):
    count: Any
    mu: Any
    nu: Any


class EmptyState(NamedTuple):
    pass


def nested_tree() -> dict[str, Any]:
    """A tree with every container kind and the dtypes the brief names."""
    nan_bits = np.array([0x7FC00001, 0x80000000, 0x00000001, 0x7F800000], np.uint32)
    return {
        "params": {
            "w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3) / 7,
            "b": jnp.zeros((), jnp.float32),
            "odd_floats": nan_bits.view(np.float32),  # NaN payload, -0.0, denormal, inf
        },
        "layers": [
            {"kernel": jnp.ones((3, 2), jnp.bfloat16) / 3, "mask": jnp.array([True, False])},
            (jnp.arange(4, dtype=jnp.int32), jnp.asarray(7, jnp.int32)),
        ],
        "state": AdamLikeState(
            count=jnp.asarray(3, jnp.int32),
            mu={"w": jnp.full((2, 3), -1.5, jnp.bfloat16)},
            nu={"w": jnp.full((2, 3), 0.25, jnp.float32)},
        ),
        "empty": (),
        "nothing": None,
        "scalar_bf16": jnp.asarray(1.0 / 3.0, jnp.bfloat16),
    }


def namedtuples_to_tuples(tree: Any) -> Any:
    """What `load` without `like` gives back for a tree holding NamedTuples."""
    if isinstance(tree, dict):
        return {k: namedtuples_to_tuples(v) for k, v in tree.items()}
    if isinstance(tree, list):
        return [namedtuples_to_tuples(v) for v in tree]
    if isinstance(tree, tuple):
        return tuple(namedtuples_to_tuples(v) for v in tree)
    return tree


# ----------------------------------------------------------------------------------------
# Round trips
# ----------------------------------------------------------------------------------------


def test_round_trip_without_like_is_exact(tmp_path: pathlib.Path) -> None:
    tree = nested_tree()
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path)
    # NamedTuples come back as plain tuples without `like`; everything else as saved.
    assert type(restored["state"]) is tuple
    assert type(restored["layers"]) is list
    assert type(restored["layers"][1]) is tuple
    assert restored["nothing"] is None
    assert restored["empty"] == ()
    assert_same_bits(restored, namedtuples_to_tuples(tree))
    for leaf in jax.tree_util.tree_leaves(restored):
        assert isinstance(leaf, jax.Array)


def test_round_trip_with_like_is_exact_and_keeps_namedtuples(tmp_path: pathlib.Path) -> None:
    tree = nested_tree()
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path, like=tree)
    assert type(restored["state"]) is AdamLikeState
    assert_same_bits(restored, tree)


def test_like_restores_optimizer_state_types(tmp_path: pathlib.Path) -> None:
    params = {"w": jnp.linspace(-1.0, 1.0, 5), "b": jnp.asarray(0.5)}
    zeros = jax.tree_util.tree_map(jnp.zeros_like, params)
    opt_state = (AdamLikeState(jnp.asarray(10, jnp.int32), params, zeros), EmptyState())
    tree = {"params": params, "opt_state": opt_state, "step": jnp.asarray(10, jnp.int32)}
    path = checkpoint.save(tmp_path / "run.npz", tree)
    restored = checkpoint.load(path, like=tree)
    assert type(restored["opt_state"]) is tuple
    assert type(restored["opt_state"][0]) is AdamLikeState
    assert type(restored["opt_state"][1]) is EmptyState
    assert_same_bits(restored, tree)


def test_like_may_hold_shape_dtype_structs(tmp_path: pathlib.Path) -> None:
    tree = {"w": jnp.arange(3, dtype=jnp.float32), "m": AdamLikeState(1, 2, 3)}
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    like = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree
    )
    restored = checkpoint.load(path, like=like)
    assert type(restored["m"]) is AdamLikeState
    assert_same_bits(restored, jax.tree_util.tree_map(jnp.asarray, tree))


def test_like_keeps_the_sharding_of_its_arrays(tmp_path: pathlib.Path) -> None:
    device = jax.devices()[-1]
    like = {"w": jax.device_put(jnp.ones(4), device)}
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.arange(4.0)})
    restored = checkpoint.load(path, like=like)
    assert restored["w"].sharding == like["w"].sharding
    assert np.array_equal(restored["w"], np.arange(4.0, dtype=np.float32))


def test_python_scalars_are_stored_as_jax_makes_them(tmp_path: pathlib.Path) -> None:
    tree = {"step": 3, "lr": 0.1, "flag": True}
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path)
    for key, value in tree.items():
        assert restored[key].shape == ()
        assert_same_bits(restored[key], jnp.asarray(value))
    # Python scalars in `like` are understood the same way.
    assert_same_bits(checkpoint.load(path, like=tree), jax.tree_util.tree_map(jnp.asarray, tree))


def test_float64_round_trips_exactly_without_x64(tmp_path: pathlib.Path) -> None:
    assert not jax.config.jax_enable_x64
    tree = {"x": np.array([np.pi, 1e-300, -0.0], np.float64), "i": np.arange(3, dtype=np.int64)}
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path)
    # JAX would narrow these to 32 bits, so they come back as exact numpy arrays.
    for key in tree:
        assert type(restored[key]) is np.ndarray
    assert_same_bits(restored, tree)
    assert_same_bits(checkpoint.load(path, like=tree), tree)


def test_float64_round_trips_as_jax_arrays_with_x64(tmp_path: pathlib.Path) -> None:
    with jax.enable_x64(True):
        tree = {"x": jnp.asarray([np.pi, 1e-300, -0.0], jnp.float64), "lr": 0.1}
        assert tree["x"].dtype == jnp.float64
        path = checkpoint.save(tmp_path / "ckpt.npz", tree)
        restored = checkpoint.load(path)
        assert isinstance(restored["x"], jax.Array)
        assert restored["x"].dtype == jnp.float64
        assert restored["lr"].dtype == jnp.float64  # a Python float is float64 under x64
        assert float(restored["lr"]) == 0.1
        assert_same_bits(restored, jax.tree_util.tree_map(jnp.asarray, tree))


def test_other_ml_dtypes_round_trip(tmp_path: pathlib.Path) -> None:
    tree = {
        "f8": np.linspace(-2, 2, 9).astype(jnp.float8_e4m3fn),
        "e5m2": np.linspace(-2, 2, 9).astype(jnp.float8_e5m2),
        "i4": np.arange(-8, 8).astype(jnp.int4),
    }
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    assert_same_bits(checkpoint.load(path), tree)


def _step_dir(path: os.PathLike[str]) -> pathlib.Path:
    """The one finished save inside a checkpoint directory."""
    steps = [p for p in pathlib.Path(path).iterdir() if p.name.isdigit()]
    assert len(steps) == 1, sorted(p.name for p in pathlib.Path(path).iterdir())
    return steps[0]


def test_a_checkpoint_is_a_plain_orbax_checkpoint(tmp_path: pathlib.Path) -> None:
    """The arrays are an ordinary orbax item that orbax alone can restore, bfloat16
    stored natively; the NamedTuple is stored as orbax stores one (a dict of fields)."""
    x = jnp.asarray([1.0 / 3.0, -2.5, np.inf], jnp.bfloat16)
    tree = {"x": x, "state": AdamLikeState(jnp.asarray(3), jnp.ones(2), jnp.zeros(2))}
    path = checkpoint.save(tmp_path / "run.ckpt", tree)
    with ocp.StandardCheckpointer() as orbax:
        plain = orbax.restore(_step_dir(path) / "state")
    assert plain["x"].dtype == jnp.bfloat16
    assert_same_bits(plain["x"], x)
    assert_same_bits(plain["state"], dict(tree["state"]._asdict()))


@pytest.mark.parametrize("name", ["uint4", "float8_e4m3", "float8_e4m3fn", "int4"])
def test_dtypes_orbax_lacks_are_stored_as_raw_bits(tmp_path: pathlib.Path, name: str) -> None:
    dtype = jnp.dtype(name)  # JAX's names for the ml_dtypes types
    values = np.arange(0, 4).astype(dtype)
    path = checkpoint.save(tmp_path / "ckpt", {"v": values, "j": jnp.asarray(values)})
    restored = checkpoint.load(path)
    assert_same_bits(restored, {"v": values, "j": values})
    description = json.loads((_step_dir(path) / "jaxgd" / "metadata").read_text())
    spec = description["leaves"][1]
    assert spec["dtype"] == name
    native = natively_stored(dtype)
    assert spec["stored_as"] == (name if native else "uint8")


def test_bool_and_complex_leaves_round_trip_as_jax_and_numpy(tmp_path: pathlib.Path) -> None:
    """Their checksums are taken of their bytes on device and on the host alike."""
    tree = {
        "c": jnp.asarray([1 + 2j, 3 - 1j, -0.0], jnp.complex64),
        "c_np": np.asarray([1 + 2j, np.nan], np.complex64),
        "mask": jnp.asarray([True, False, True]),
        "mask_np": np.asarray([False, True]),
    }
    path = checkpoint.save(tmp_path / "ckpt", tree)
    assert_same_bits(checkpoint.load(path), tree)
    assert_same_bits(checkpoint.load(path, like=tree), tree)
    for leaf in tree.values():  # the device and host checksums agree
        assert checksum(jnp.asarray(leaf)) == checksum(np.asarray(leaf))


def test_single_array_and_empty_trees(tmp_path: pathlib.Path) -> None:
    x = jnp.arange(5, dtype=jnp.int32)
    assert_same_bits(checkpoint.load(checkpoint.save(tmp_path / "a.npz", x)), x)
    assert checkpoint.load(checkpoint.save(tmp_path / "b.npz", None)) is None
    assert checkpoint.load(checkpoint.save(tmp_path / "c.npz", {})) == {}
    assert checkpoint.load(checkpoint.save(tmp_path / "d.npz", [])) == []


def test_dict_key_kinds_and_order(tmp_path: pathlib.Path) -> None:
    tree = {
        "ints": {2: jnp.ones(1), 10: jnp.zeros(1)},
        "ordered": collections.OrderedDict([("z", jnp.ones(2)), ("a", jnp.zeros(2))]),
    }
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path)
    assert set(restored["ints"]) == {2, 10}
    assert type(restored["ordered"]) is collections.OrderedDict
    assert list(restored["ordered"]) == ["z", "a"]
    assert_same_bits(restored, tree)


def test_like_matches_leaves_by_path_when_only_the_order_differs(tmp_path: pathlib.Path) -> None:
    saved = collections.OrderedDict([("z", jnp.ones(2)), ("a", jnp.zeros(2))])
    like = collections.OrderedDict([("a", jnp.ones(2)), ("z", jnp.ones(2))])
    path = checkpoint.save(tmp_path / "ckpt.npz", saved)
    restored = checkpoint.load(path, like=like)
    assert list(restored) == ["a", "z"]
    assert np.array_equal(restored["a"], np.zeros(2))
    assert np.array_equal(restored["z"], np.ones(2))


# ----------------------------------------------------------------------------------------
# Paths and metadata
# ----------------------------------------------------------------------------------------


def test_the_path_names_the_checkpoint_directory(tmp_path: pathlib.Path) -> None:
    target = str(tmp_path / "weights.ckpt")
    assert not checkpoint.exists(target)
    returned = checkpoint.save(target, {"w": jnp.ones(2)})
    assert returned == pathlib.Path(target)
    assert isinstance(returned, pathlib.Path)
    assert sorted(os.listdir(tmp_path)) == ["weights.ckpt"]
    assert (tmp_path / "weights.ckpt").is_dir() and checkpoint.exists(target)
    assert sorted(os.listdir(_step_dir(target))) == sorted(
        ["_CHECKPOINT_METADATA", "commit_success.txt", "jaxgd", "state"]
    )
    assert_same_bits(checkpoint.load(target), {"w": jnp.ones(2)})


def test_accepts_pathlike_and_relative_paths(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    checkpoint.save("plain", jnp.ones(2))  # no folder part: the current directory
    checkpoint.save(pathlib.PurePath("pure.npz"), jnp.zeros(2))
    assert sorted(os.listdir(tmp_path)) == ["plain", "pure.npz"]
    assert np.array_equal(checkpoint.load("plain"), np.ones(2))


def test_overwrite_replaces_the_old_checkpoint(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "ckpt.npz"
    checkpoint.save(path, {"w": jnp.ones(3)}, metadata={"step": 1})
    checkpoint.save(path, {"w": jnp.zeros(3)}, metadata={"step": 2})
    assert np.array_equal(checkpoint.load(path)["w"], np.zeros(3))
    assert checkpoint.load_metadata(path) == {"step": 2}
    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert sorted(os.listdir(path)) == ["1", "jaxgd-checkpoint"]  # the first save is deleted


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_new_files_get_the_usual_permissions(tmp_path: pathlib.Path) -> None:
    old = os.umask(0o027)
    try:
        path = checkpoint.save(tmp_path / "ckpt.npz", jnp.ones(1))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o750
    files = [p for p in path.rglob("*") if p.is_file()]
    assert files and {stat.S_IMODE(p.stat().st_mode) for p in files} == {0o640}


def test_metadata_round_trips(tmp_path: pathlib.Path) -> None:
    metadata = {"fingerprint": "abc123", "step": 40, "lr": 0.01, "tags": ["a", "b"]}
    path = checkpoint.save(tmp_path / "ckpt.npz", jnp.ones(2), metadata=metadata)
    assert checkpoint.load_metadata(path) == metadata
    assert checkpoint.load_metadata(checkpoint.save(tmp_path / "none.npz", jnp.ones(2))) == {}


@pytest.mark.parametrize("metadata", [{"x": object()}, {"x": jnp.ones(2)}, ["not", "a", "dict"]])
def test_bad_metadata_is_a_type_error(tmp_path: pathlib.Path, metadata: Any) -> None:
    with pytest.raises(TypeError, match="metadata"):
        checkpoint.save(tmp_path / "ckpt.npz", jnp.ones(2), metadata=metadata)
    assert os.listdir(tmp_path) == []


# ----------------------------------------------------------------------------------------
# Bad leaves
# ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("leaf", "message"),
    [
        (np.array([1, "a"], dtype=object), "object dtype"),
        (np.array(["a", "b"]), "dtype <U1"),
        ("text", "is a str"),
        (object(), "is a object"),
    ],
)
def test_bad_leaf_is_a_type_error_naming_it(tmp_path, leaf: Any, message: str) -> None:
    tree = {"params": {"good": jnp.ones(2), "bad": [jnp.ones(1), leaf]}}
    with pytest.raises(TypeError, match=message) as info:
        checkpoint.save(tmp_path / "ckpt.npz", tree)
    assert "['params']['bad'][1]" in str(info.value)
    assert os.listdir(tmp_path) == []


def test_dict_key_that_json_cannot_hold_is_a_type_error(tmp_path: pathlib.Path) -> None:
    with pytest.raises(TypeError, match=r"dict key \(1, 2\)"):
        checkpoint.save(tmp_path / "ckpt.npz", {"a": {(1, 2): jnp.ones(1)}})


# ----------------------------------------------------------------------------------------
# Mismatches against `like`
# ----------------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: pathlib.Path) -> pathlib.Path:
    tree = {"params": {"w": jnp.ones(3), "b": jnp.zeros(())}, "step": jnp.asarray(0)}
    return checkpoint.save(tmp_path / "ckpt.npz", tree)


def test_shape_mismatch_names_the_leaf(saved: pathlib.Path) -> None:
    like = {"params": {"w": jnp.ones(4), "b": jnp.zeros(())}, "step": jnp.asarray(0)}
    with pytest.raises(ValueError) as info:
        checkpoint.load(saved, like=like)
    assert "['params']['w']: shape (3,) in the checkpoint, (4,) expected" in str(info.value)
    assert "['params']['b']" not in str(info.value)


def test_dtype_mismatch_names_the_leaf(saved: pathlib.Path) -> None:
    like = {"params": {"w": jnp.ones(3), "b": jnp.zeros((), jnp.bfloat16)}, "step": 0.0}
    with pytest.raises(ValueError) as info:
        checkpoint.load(saved, like=like)
    message = str(info.value)
    assert "['params']['b']: dtype float32 in the checkpoint, bfloat16 expected" in message
    assert "['step']: dtype int32 in the checkpoint, float32 expected" in message


@pytest.mark.parametrize(
    ("like", "only_file", "only_like"),
    [
        ({"params": {"w": jnp.ones(3)}, "step": 0}, "['params']['b']", "none"),
        (
            {"params": {"w": jnp.ones(3), "b": 0.0, "c": 0.0}, "step": 0},
            "none",
            "['params']['c']",
        ),
        ({"params": {"w": jnp.ones(3), "bias": 0.0}, "step": 0}, "['params']['b']", "bias"),
        ({"params": [jnp.ones(3), 0.0], "step": 0}, "['params']['b']", "['params'][0]"),
    ],
)
def test_structure_mismatch_names_the_leaves(saved, like, only_file, only_like) -> None:
    with pytest.raises(ValueError, match="structure of `like`") as info:
        checkpoint.load(saved, like=like)
    message = str(info.value)
    assert f"leaves only in the checkpoint: {only_file}" in message
    assert only_like in message.split("leaves only in `like`:")[1]


# ----------------------------------------------------------------------------------------
# Files that are not checkpoints
# ----------------------------------------------------------------------------------------

UNPICKLED: list[str] = []


def _record_unpickling(tag: str) -> str:
    UNPICKLED.append(tag)
    return tag


class PickleTrap:
    """An object that leaves a trace if it is ever unpickled."""

    def __reduce__(self):
        return (_record_unpickling, ("unpickled!",))


def _assert_not_a_checkpoint(path: os.PathLike[str], match: str = "") -> None:
    for read in (checkpoint.load, checkpoint.load_metadata):
        with pytest.raises(ValueError, match="not a readable jaxgd checkpoint") as info:
            read(path)
        assert match in str(info.value)


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"definitely not a checkpoint" * 10,
        b"PK\x03\x04" + b"\x00" * 100,  # starts like a zip, then nothing
        pickle.dumps({"w": np.ones(3)}),
    ],
    ids=["empty", "garbage", "zip-magic-only", "pickle"],
)
def test_a_file_is_refused(tmp_path: pathlib.Path, content: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    _assert_not_a_checkpoint(path, "it is a file")


def test_pickle_file_is_refused_without_unpickling(tmp_path: pathlib.Path) -> None:
    UNPICKLED.clear()
    path = tmp_path / "bad.npz"
    path.write_bytes(pickle.dumps(PickleTrap()))
    _assert_not_a_checkpoint(path)
    assert UNPICKLED == []
    with pytest.raises(ValueError) as info:
        checkpoint.load(path)
    # The message must not invite the user to unpickle the file.
    assert "allow_pickle" not in str(info.value)
    assert "older .npz format" in str(info.value)


def test_pickle_planted_in_a_checkpoint_is_never_unpickled(tmp_path: pathlib.Path) -> None:
    path = checkpoint.save(tmp_path / "ckpt", {"w": jnp.ones(3)})
    description = _step_dir(path) / "jaxgd" / "metadata"
    description.write_bytes(pickle.dumps(PickleTrap()))
    UNPICKLED.clear()
    _assert_not_a_checkpoint(path)
    assert UNPICKLED == []


def test_old_npz_checkpoints_are_refused_clearly(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(3), b=np.zeros(()))
    _assert_not_a_checkpoint(path, "older .npz format cannot be read")
    np.save(tmp_path / "array.npy", np.ones(3))
    _assert_not_a_checkpoint(tmp_path / "array.npy", "it is a file")


def test_a_directory_without_a_finished_save_is_refused(tmp_path: pathlib.Path) -> None:
    (tmp_path / "empty").mkdir()
    _assert_not_a_checkpoint(tmp_path / "empty", "no finished save")
    assert not checkpoint.exists(tmp_path / "empty")


def test_a_plain_orbax_checkpoint_is_refused(tmp_path: pathlib.Path) -> None:
    """Orbax's own step layout without jaxgd's description of the tree."""
    with ocp.CheckpointManager(
        tmp_path / "orbax", options=ocp.CheckpointManagerOptions(enable_async_checkpointing=False)
    ) as manager:
        manager.save(0, args=ocp.args.Composite(state=ocp.args.StandardSave({"w": np.ones(3)})))
    _assert_not_a_checkpoint(tmp_path / "orbax", "no jaxgd description")


def _truncate_largest_array_file(path: pathlib.Path, fraction: float) -> None:
    files = [p for p in (_step_dir(path) / "state").rglob("*") if p.is_file()]
    data_files = [p for p in files if p.parent.name == "d"]  # tensorstore's data chunks
    target = max(data_files, key=lambda p: p.stat().st_size)
    data = target.read_bytes()
    target.write_bytes(data[: int(len(data) * fraction)])


@pytest.mark.parametrize("fraction", [0.0, 0.5, 0.9, 0.99])
def test_truncated_array_data_is_refused(tmp_path: pathlib.Path, fraction: float) -> None:
    """Truncated data is refused, never read as other values. (The last percent of
    tensorstore's data file is not all array data: cut there, the arrays may still be
    whole, and then they must come back exact.)"""
    tree = {"w": jnp.asarray(np.random.default_rng(0).normal(size=4096), jnp.float32)}
    path = checkpoint.save(tmp_path / "ckpt", tree, metadata={"step": 1})
    _truncate_largest_array_file(path, fraction)
    if fraction > 0.9:
        try:
            assert_same_bits(checkpoint.load(path, like=tree), tree)
        except ValueError as err:
            assert "not a readable jaxgd checkpoint" in str(err)
        return
    with pytest.raises(ValueError, match="not a readable jaxgd checkpoint"):
        checkpoint.load(path, like=tree)


@pytest.mark.parametrize("seed", range(5))
def test_corrupt_array_data_is_refused(tmp_path: pathlib.Path, seed: int) -> None:
    """Bytes overwritten anywhere in the data: tensorstore stores random floats
    uncompressed and unchecked, so the leaf checksums are what catch this."""
    rng = np.random.default_rng(seed)
    tree = {"w": jnp.asarray(rng.normal(size=(64, 64)), jnp.float32), "b": jnp.ones(3)}
    path = checkpoint.save(tmp_path / "ckpt", tree)
    files = [p for p in (_step_dir(path) / "state").rglob("*") if p.parent.name == "d"]
    target = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(target.read_bytes())
    start = int(rng.integers(0, len(data) - 4))
    data[start : start + 4] = bytes(255 - b for b in data[start : start + 4])
    target.write_bytes(bytes(data))
    for like in (tree, None):
        with pytest.raises(ValueError, match="not a readable jaxgd checkpoint"):
            checkpoint.load(path, like=like)


def _rewrite_description(path: pathlib.Path, edit) -> None:
    file = _step_dir(path) / "jaxgd" / "metadata"
    meta = json.loads(file.read_text())
    edit(meta)
    file.write_text(json.dumps(meta))


def test_arrays_the_description_does_not_list_are_refused(tmp_path: pathlib.Path) -> None:
    path = checkpoint.save(tmp_path / "ckpt", {"smuggled": jnp.zeros(2), "w": jnp.ones(3)})

    def drop_smuggled(meta):  # as if the description came from a save of {"w": ...}
        meta["leaves"] = meta["leaves"][1:]
        meta["leaves"][0]["index"] = 0
        meta["structure"] = {
            "type": "dict",
            "keys": [["str", "w"]],
            "children": [{"type": "leaf", "index": 0}],
        }

    _rewrite_description(path, drop_smuggled)
    _assert_not_a_checkpoint(path, "stored but not described: smuggled")


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(version=99),
        lambda m: m.update(format="something else"),
        lambda m: m["leaves"][0].update(shape=[4]),
        lambda m: m["leaves"][0].update(dtype="object"),
        lambda m: m["leaves"][0].update(dtype="int32", stored_as="int32"),
        lambda m: m["leaves"][0].update(stored_as="float64"),
        lambda m: m["leaves"][0].update(name=["v"]),
        lambda m: m.update(structure={"type": "dict", "keys": [], "children": []}),
        lambda m: m.update(structure={"type": "module", "children": []}),
        lambda m: m.update(structure={"type": "dict", "children": []}),
        lambda m: m.pop("structure"),
        lambda m: m.pop("metadata"),
    ],
    ids=[
        "version",
        "format",
        "shape",
        "dtype",
        "dtype-consistent",
        "stored_as",
        "name",
        "lost-leaf",
        "kind",
        "no-keys",
        "no-structure",
        "no-metadata",
    ],
)
def test_tampered_description_is_refused(tmp_path: pathlib.Path, edit) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)})
    _rewrite_description(path, edit)
    _assert_not_a_checkpoint(path)


def test_missing_path_is_file_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.ckpt")
    assert not checkpoint.exists(tmp_path / "missing.ckpt")


# ----------------------------------------------------------------------------------------
# Atomic saves, and the clean-up of interrupted ones
# ----------------------------------------------------------------------------------------


def _temporaries(path: os.PathLike[str]) -> list[str]:
    return sorted(p.name for p in pathlib.Path(path).iterdir() if "tmp" in p.name)


@pytest.mark.parametrize("error", [OSError("simulated crash"), KeyboardInterrupt()])
def test_a_failed_save_keeps_the_old_checkpoint(tmp_path, monkeypatch, error) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)}, metadata={"step": 1})
    real = ocp.JsonCheckpointHandler.async_save

    async def crash_mid_save(self, *args, **kwargs):  # the arrays are being written
        raise error

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", crash_mid_save)
    with pytest.raises(type(error)):
        checkpoint.save(path, {"w": jnp.zeros(3)}, metadata={"step": 2})
    assert _temporaries(path) == []  # issue 23: the failed save is cleaned at once
    monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", real)

    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert np.array_equal(checkpoint.load(path)["w"], np.ones(3))
    assert checkpoint.load_metadata(path) == {"step": 1}
    checkpoint.save(path, {"w": jnp.full(3, 2.0)}, metadata={"step": 3})
    assert _temporaries(path) == [] and len(os.listdir(path)) == 2  # a save and the marker
    assert checkpoint.load_metadata(path) == {"step": 3}


ROOT = pathlib.Path(__file__).resolve().parents[2]
_CHILD_ENV = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}

KILLED_MID_SAVE = textwrap.dedent(
    """
    import sys, time
    import jax.numpy as jnp
    import orbax.checkpoint as ocp
    from jaxgd import checkpoint

    path, saves_before = sys.argv[1], int(sys.argv[2])
    for i in range(saves_before):
        checkpoint.save(path, {"w": jnp.full(1000, float(i))}, metadata={"save": i})

    async def stall(self, *args, **kwargs):  # inside orbax's temporary directory
        print("IN_SAVE", flush=True)
        time.sleep(600)

    ocp.JsonCheckpointHandler.async_save = stall
    checkpoint.save(path, {"w": jnp.full(1000, -1.0)}, metadata={"save": "killed"})
    """
)


def _kill_mid_save(tmp_path: pathlib.Path, path: pathlib.Path, saves_before: int) -> None:
    """Run a process that saves, then SIGKILL it while its next save is being written."""
    script = tmp_path / "killed_mid_save.py"
    script.write_text(KILLED_MID_SAVE)
    child = subprocess.Popen(
        [sys.executable, str(script), str(path), str(saves_before)],
        stdout=subprocess.PIPE,
        text=True,
        env=_CHILD_ENV,
    )
    try:
        assert child.stdout.readline().strip() == "IN_SAVE"
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=60) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_a_save_killed_mid_way_leaves_the_old_checkpoint_and_is_cleaned_up(tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    _kill_mid_save(tmp_path, path, saves_before=2)
    assert len(_temporaries(path)) == 1  # the interrupted save's directory
    assert checkpoint.load_metadata(path) == {"save": 1}
    assert np.array_equal(checkpoint.load(path)["w"], np.full(1000, 1.0, np.float32))
    with checkpoint.lock(path):  # the next run cleans up first
        assert _temporaries(path) == []
    assert checkpoint.load_metadata(path) == {"save": 1}


def test_a_first_save_killed_mid_way_is_cleaned_up_by_the_next_save(tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    _kill_mid_save(tmp_path, path, saves_before=0)
    assert len(_temporaries(path)) == 1 and not checkpoint.exists(path)
    checkpoint.check_path(path)  # what an interrupted save leaves is jaxgd's own
    checkpoint.save(path, {"w": jnp.ones(2)})
    assert _temporaries(path) == [] and checkpoint.exists(path)


def test_a_kill_while_the_previous_save_is_deleted_is_harmless(tmp_path) -> None:
    """Orbax deletes the previous save after the new one is in place; a kill in that
    deletion leaves part of the older step directory, which the next save removes."""
    path = checkpoint.save(tmp_path / "run.ckpt", {"w": jnp.ones(3)})
    shutil.copytree(path / "0", tmp_path / "older")
    checkpoint.save(path, {"w": jnp.full(3, 2.0)})  # deletes save 0
    (tmp_path / "older").rename(path / "0")  # as if the kill came during that deletion
    for part in ("state", "_CHECKPOINT_METADATA"):  # deleted before the kill
        target = path / "0" / part
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    assert sorted(os.listdir(path)) == ["0", "1", "jaxgd-checkpoint"]
    assert np.array_equal(checkpoint.load(path)["w"], np.full(3, 2.0, np.float32))
    checkpoint.save(path, {"w": jnp.full(3, 3.0)})
    assert sorted(os.listdir(path)) == ["2", "jaxgd-checkpoint"]
    assert np.array_equal(checkpoint.load(path)["w"], np.full(3, 3.0, np.float32))


def test_missing_folder_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "no" / "such" / "folder" / "ckpt.npz"
    with pytest.raises(FileNotFoundError) as info:
        checkpoint.save(target, jnp.ones(2))
    assert str(target) in str(info.value)
    assert "cannot write checkpoint" in str(info.value)


def test_folder_that_is_a_file_is_a_clear_error(tmp_path: pathlib.Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    target = blocker / "ckpt.npz"
    with pytest.raises(OSError) as info:
        checkpoint.save(target, jnp.ones(2))
    assert str(target) in str(info.value)


def test_read_only_folder_is_a_clear_error(tmp_path: pathlib.Path, monkeypatch) -> None:
    """A folder the user may not write to. Permission bits do not stop root (who
    runs CI here), so the answer the operating system would give is simulated."""
    folder = tmp_path / "locked"
    folder.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: p != folder and real_access(p, mode))
    target = folder / "ckpt.npz"
    with pytest.raises(PermissionError) as info:
        checkpoint.save(target, jnp.ones(2))
    assert str(target) in str(info.value) and "writable" in str(info.value)
    assert os.listdir(folder) == []


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda p: p.write_bytes(b"PK\x03\x04 an old checkpoint"), "is a file"),
        (lambda p: (p.mkdir(), (p / "notes.txt").write_text("mine")), "notes.txt"),
        (lambda p: [(p / n).mkdir(parents=True) for n in ("1", "2")], "1, 2"),
    ],
    ids=["a-file", "a-folder-of-the-users", "a-folder-named-like-steps"],
)
def test_a_path_that_is_not_jaxgds_is_never_written(tmp_path, setup, message) -> None:
    path = tmp_path / "run.ckpt"
    setup(path)
    before = sorted(str(p) for p in tmp_path.rglob("*"))
    for call in (
        lambda: checkpoint.check_path(path),
        lambda: checkpoint.save(path, jnp.ones(2)),
        lambda: checkpoint.lock(path).__enter__(),
    ):
        with pytest.raises(ValueError, match=message):
            call()
    assert sorted(str(p) for p in tmp_path.rglob("*")) == before


# ----------------------------------------------------------------------------------------
# The lock
# ----------------------------------------------------------------------------------------

HOLD_THE_LOCK = textwrap.dedent(
    """
    import sys
    from jaxgd import checkpoint

    with checkpoint.lock(sys.argv[1]):
        print("LOCKED", flush=True)
        sys.stdin.readline()  # hold it until told (or killed)
    print("RELEASED", flush=True)
    """
)


def _holder(tmp_path: pathlib.Path, path: pathlib.Path) -> subprocess.Popen:
    script = tmp_path / "hold_the_lock.py"
    script.write_text(HOLD_THE_LOCK)
    child = subprocess.Popen(
        [sys.executable, str(script), str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_CHILD_ENV,
    )
    assert child.stdout.readline().strip() == "LOCKED"
    return child


def test_a_second_live_run_is_refused_naming_the_holder(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.ckpt"
    checkpoint.save(path, {"w": jnp.ones(2)})
    child = _holder(tmp_path, path)
    try:
        with pytest.raises(checkpoint.CheckpointInUseError) as info, checkpoint.lock(path):
            pass
        message = str(info.value)
        assert isinstance(info.value, ValueError)
        assert f"in use by process {child.pid} on {socket.gethostname()}" in message
        assert "another checkpoint path" in message
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "RELEASED"
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert not (path / "jaxgd.lock").exists()  # a released lock leaves nothing behind
    with checkpoint.lock(path):  # and the next run takes it
        assert json.loads((path / "jaxgd.lock").read_text())["pid"] == os.getpid()


def test_the_lock_of_a_killed_run_does_not_block_a_resume(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.ckpt"
    child = _holder(tmp_path, path)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    stale = json.loads((path / "jaxgd.lock").read_text())
    assert stale["pid"] == child.pid  # the dead run's lock file is still there
    with checkpoint.lock(path) as directory:
        assert directory == path
        assert json.loads((path / "jaxgd.lock").read_text())["pid"] == os.getpid()
        checkpoint.save(path, {"w": jnp.ones(2)})
    assert checkpoint.exists(path)


def test_the_lock_is_held_for_the_whole_block_and_only_there(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "run.ckpt"
    refused = pytest.raises(checkpoint.CheckpointInUseError, match=str(os.getpid()))
    with checkpoint.lock(path), refused:
        checkpoint.lock(path).__enter__()
    with checkpoint.lock(path):  # released on leaving, also after an error inside
        pass
    with pytest.raises(RuntimeError), checkpoint.lock(path):
        raise RuntimeError("the run failed")
    with checkpoint.lock(path):
        pass


# ----------------------------------------------------------------------------------------
# Property: save then load is exact for random nested trees
# ----------------------------------------------------------------------------------------

_SHAPES = st.sampled_from([(), (1,), (3,), (0,), (2, 3), (1, 2, 1)])


@st.composite
def _leaves(draw) -> Any:
    kind = draw(st.sampled_from(["float32", "float64", "bfloat16", "jax-float32"]))
    shape = draw(_SHAPES)
    if kind == "bfloat16":
        bits = draw(hnp.arrays(np.uint16, shape))
        return bits.view(jnp.bfloat16)
    width = np.uint64 if kind == "float64" else np.uint32
    floats = draw(hnp.arrays(width, shape)).view(np.float64 if kind == "float64" else np.float32)
    return jnp.asarray(floats) if kind == "jax-float32" else floats


_KEYS = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
_TREES = st.recursive(
    _leaves() | st.none(),
    lambda children: (
        st.dictionaries(_KEYS, children, max_size=3)
        | st.lists(children, max_size=3)
        | st.lists(children, max_size=3).map(tuple)
    ),
    max_leaves=8,
)


@settings(max_examples=30, deadline=None)
@given(tree=_TREES)
def test_save_load_is_exact_for_random_trees(tmp_path_factory, tree) -> None:
    path = tmp_path_factory.mktemp("prop") / "ckpt"
    checkpoint.save(path, tree)
    assert_same_bits(checkpoint.load(path), tree)
    assert_same_bits(checkpoint.load(path, like=tree), tree)


def test_a_path_starting_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch) -> None:
    """issue 23: "~/run" is not a folder literally named "~"."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    assert checkpoint.check_path("~/run.ckpt") == tmp_path / "run.ckpt"
    checkpoint.save("~/run.ckpt", {"w": jnp.ones(2)})
    with checkpoint.lock("~/run.ckpt"):
        assert checkpoint.exists("~/run.ckpt")
        assert np.array_equal(checkpoint.load("~/run.ckpt")["w"], np.ones(2))
    assert sorted(os.listdir(tmp_path)) == ["run.ckpt"]
