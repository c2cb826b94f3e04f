"""Tests for jaxgd.checkpoint: exact round-trips, `like` checks, refusal of bad files,
atomic writes."""

from __future__ import annotations

import collections
import os
import pathlib
import pickle
import stat
import tempfile
from typing import Any, NamedTuple

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxgd import checkpoint

# ----------------------------------------------------------------------------------------
# Helpers
# ----------------------------------------------------------------------------------------


class AdamLikeState(NamedTuple):
    count: Any
    mu: Any
    nu: Any


class EmptyState(NamedTuple):
    pass


def _bits(x: Any) -> np.ndarray:
    """The raw bits of an array as unsigned integers, so NaN payloads and -0.0 count."""
    a = np.asarray(x)
    if a.dtype == np.bool_:
        return a.view(np.uint8)
    return a.view(f"uint{8 * a.dtype.itemsize}")


def assert_same_tree(got: Any, want: Any, *, same_containers: bool = True) -> None:
    """Leaves equal bit for bit with equal dtype and shape; the same tree structure."""
    got_leaves, got_def = jax.tree_util.tree_flatten(got)
    want_leaves, want_def = jax.tree_util.tree_flatten(want)
    if same_containers:
        assert got_def == want_def
    else:
        assert got_def.num_leaves == want_def.num_leaves
    for g, w in zip(got_leaves, want_leaves, strict=True):
        g_np, w_np = np.asarray(g), np.asarray(w)
        assert g_np.dtype == w_np.dtype
        assert g_np.shape == w_np.shape
        assert np.array_equal(_bits(g_np), _bits(w_np))


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
    assert_same_tree(restored, namedtuples_to_tuples(tree))
    for leaf in jax.tree_util.tree_leaves(restored):
        assert isinstance(leaf, jax.Array)


def test_round_trip_with_like_is_exact_and_keeps_namedtuples(tmp_path: pathlib.Path) -> None:
    tree = nested_tree()
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path, like=tree)
    assert type(restored["state"]) is AdamLikeState
    assert_same_tree(restored, tree)


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
    assert_same_tree(restored, tree)


def test_like_may_hold_shape_dtype_structs(tmp_path: pathlib.Path) -> None:
    tree = {"w": jnp.arange(3, dtype=jnp.float32), "m": AdamLikeState(1, 2, 3)}
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    like = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(jnp.shape(x), jnp.result_type(x)), tree
    )
    restored = checkpoint.load(path, like=like)
    assert type(restored["m"]) is AdamLikeState
    assert_same_tree(restored, jax.tree_util.tree_map(jnp.asarray, tree))


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
        expected = jnp.asarray(value)
        assert restored[key].shape == ()
        assert restored[key].dtype == expected.dtype
        assert np.array_equal(_bits(restored[key]), _bits(expected))
    # Python scalars in `like` are understood the same way.
    assert_same_tree(checkpoint.load(path, like=tree), jax.tree_util.tree_map(jnp.asarray, tree))


def test_float64_round_trips_exactly_without_x64(tmp_path: pathlib.Path) -> None:
    assert not jax.config.jax_enable_x64
    tree = {"x": np.array([np.pi, 1e-300, -0.0], np.float64), "i": np.arange(3, dtype=np.int64)}
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    restored = checkpoint.load(path)
    # JAX would narrow these to 32 bits, so they come back as exact numpy arrays.
    for key in tree:
        assert type(restored[key]) is np.ndarray
    assert_same_tree(restored, tree)
    assert_same_tree(checkpoint.load(path, like=tree), tree)


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
        assert_same_tree(restored, jax.tree_util.tree_map(jnp.asarray, tree))


def test_other_ml_dtypes_round_trip(tmp_path: pathlib.Path) -> None:
    tree = {
        "f8": np.linspace(-2, 2, 9).astype(ml_dtypes.float8_e4m3fn),
        "e5m2": np.linspace(-2, 2, 9).astype(ml_dtypes.float8_e5m2),
        "i4": np.arange(-8, 8).astype(ml_dtypes.int4),
    }
    path = checkpoint.save(tmp_path / "ckpt.npz", tree)
    assert_same_tree(checkpoint.load(path), tree)


def test_bfloat16_is_stored_as_raw_bits(tmp_path: pathlib.Path) -> None:
    x = jnp.asarray([1.0 / 3.0, -2.5, np.inf], jnp.bfloat16)
    path = checkpoint.save(tmp_path / "ckpt.npz", {"x": x})
    with np.load(path, allow_pickle=False) as npz:
        stored = npz["leaf_0"]
    assert stored.dtype == np.uint16
    assert np.array_equal(stored, np.asarray(x).view(np.uint16))


def test_single_array_and_empty_trees(tmp_path: pathlib.Path) -> None:
    x = jnp.arange(5, dtype=jnp.int32)
    assert_same_tree(checkpoint.load(checkpoint.save(tmp_path / "a.npz", x)), x)
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
    assert_same_tree(restored, tree)


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


def test_path_without_npz_suffix_is_kept(tmp_path: pathlib.Path) -> None:
    target = str(tmp_path / "weights.ckpt")
    returned = checkpoint.save(target, {"w": jnp.ones(2)})
    assert returned == pathlib.Path(target)
    assert isinstance(returned, pathlib.Path)
    assert sorted(os.listdir(tmp_path)) == ["weights.ckpt"]
    assert_same_tree(checkpoint.load(target), {"w": jnp.ones(2)})


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


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_new_file_gets_the_usual_permissions(tmp_path: pathlib.Path) -> None:
    old = os.umask(0o027)
    try:
        path = checkpoint.save(tmp_path / "ckpt.npz", jnp.ones(1))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


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
    assert "['params']['w']: shape (3,) in the file, (4,) expected" in str(info.value)
    assert "['params']['b']" not in str(info.value)


def test_dtype_mismatch_names_the_leaf(saved: pathlib.Path) -> None:
    like = {"params": {"w": jnp.ones(3), "b": jnp.zeros((), jnp.bfloat16)}, "step": 0.0}
    with pytest.raises(ValueError) as info:
        checkpoint.load(saved, like=like)
    message = str(info.value)
    assert "['params']['b']: dtype float32 in the file, bfloat16 expected" in message
    assert "['step']: dtype int32 in the file, float32 expected" in message


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
    assert f"leaves only in the file: {only_file}" in message
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


def _assert_not_a_checkpoint(path: os.PathLike[str]) -> None:
    for read in (checkpoint.load, checkpoint.load_metadata):
        with pytest.raises(ValueError, match="not a readable jaxgd checkpoint"):
            read(path)


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
def test_garbage_is_refused(tmp_path: pathlib.Path, content: bytes) -> None:
    path = tmp_path / "bad.npz"
    path.write_bytes(content)
    _assert_not_a_checkpoint(path)


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
    assert "not an .npz (zip) archive" in str(info.value)


@pytest.mark.parametrize("fraction", [0.5, 0.9, 0.99])
def test_truncated_checkpoint_is_refused(tmp_path: pathlib.Path, fraction: float) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", nested_tree(), metadata={"step": 1})
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    _assert_not_a_checkpoint(path)


def test_plain_npz_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "plain.npz"
    np.savez(path, w=np.ones(3), b=np.zeros(()))
    _assert_not_a_checkpoint(path)


def test_npy_file_is_refused(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "array.npy"
    np.save(path, np.ones(3))
    _assert_not_a_checkpoint(path)


def test_npz_with_object_array_is_refused_without_unpickling(tmp_path: pathlib.Path) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)})
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    trap = np.empty(1, dtype=object)
    trap[0] = PickleTrap()
    entries["leaf_0"] = trap  # a valid description, but the leaf is now a pickle
    np.savez(path, **entries)  # numpy pickles object arrays when saving
    # The trap works: numpy with allow_pickle=True would run it.
    UNPICKLED.clear()
    with np.load(path, allow_pickle=True) as npz:
        npz["leaf_0"]
    assert UNPICKLED == ["unpickled!"]

    UNPICKLED.clear()
    with pytest.raises(ValueError, match="not a readable jaxgd checkpoint"):
        checkpoint.load(path)
    assert UNPICKLED == []


def test_extra_entries_are_refused(tmp_path: pathlib.Path) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)})
    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    entries["smuggled"] = np.ones(2)
    np.savez(path, **entries)
    with pytest.raises(ValueError, match="smuggled"):
        checkpoint.load(path)


def _rewrite_description(path: pathlib.Path, edit) -> None:
    import json

    with np.load(path, allow_pickle=False) as npz:
        entries = {name: npz[name] for name in npz.files}
    meta = json.loads(entries["__jaxgd_meta__"].tobytes())
    edit(meta)
    entries["__jaxgd_meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    np.savez(path, **entries)


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(version=99),
        lambda m: m.update(format="something else"),
        lambda m: m["leaves"][0].update(shape=[4]),
        lambda m: m["leaves"][0].update(dtype="object"),
        lambda m: m["leaves"][0].update(stored_as="float64"),
        lambda m: m.update(structure={"type": "dict", "keys": [], "children": []}),
        lambda m: m.update(structure={"type": "module", "children": []}),
        lambda m: m.pop("structure"),
    ],
    ids=["version", "format", "shape", "dtype", "stored_as", "lost-leaf", "kind", "no-structure"],
)
def test_tampered_description_is_refused(tmp_path: pathlib.Path, edit) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)})
    _rewrite_description(path, edit)
    with pytest.raises(ValueError, match="not a readable jaxgd checkpoint"):
        checkpoint.load(path)


def test_missing_file_is_file_not_found(tmp_path: pathlib.Path) -> None:
    with pytest.raises(FileNotFoundError):
        checkpoint.load(tmp_path / "missing.npz")


# ----------------------------------------------------------------------------------------
# Atomic writes
# ----------------------------------------------------------------------------------------


def test_failed_rename_keeps_old_checkpoint_and_leaves_no_temp(tmp_path, monkeypatch) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)}, metadata={"step": 1})
    before = path.read_bytes()

    def crash(src, dst):
        raise OSError("simulated crash during rename")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="simulated crash"):
        checkpoint.save(path, {"w": jnp.zeros(3)}, metadata={"step": 2})
    monkeypatch.undo()

    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert path.read_bytes() == before
    assert np.array_equal(checkpoint.load(path)["w"], np.ones(3))
    assert checkpoint.load_metadata(path) == {"step": 1}


def test_failure_while_writing_leaves_no_temp(tmp_path, monkeypatch) -> None:
    path = checkpoint.save(tmp_path / "ckpt.npz", {"w": jnp.ones(3)})
    before = path.read_bytes()

    def crash_mid_write(file, *args, **kwargs):
        file.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", crash_mid_write)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save(path, {"w": jnp.zeros(3)})
    monkeypatch.undo()

    assert os.listdir(tmp_path) == ["ckpt.npz"]
    assert path.read_bytes() == before


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
    runs CI here), so the refusal the operating system would give is simulated
    where the checkpoint's temporary file is created."""
    folder = tmp_path / "locked"
    folder.mkdir()

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(folder))

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", refuse)
    target = folder / "ckpt.npz"
    with pytest.raises(PermissionError) as info:
        checkpoint.save(target, jnp.ones(2))
    assert str(target) in str(info.value) and "writable" in str(info.value)
    assert os.listdir(folder) == []


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
        return bits.view(ml_dtypes.bfloat16)
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
    assert_same_tree(checkpoint.load(path), tree)
    assert_same_tree(checkpoint.load(path, like=tree), tree)
