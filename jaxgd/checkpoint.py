"""Saving and restoring pytrees of arrays, safely.

A checkpoint holds any pytree of arrays: parameters, optimizer states (NamedTuples of
arrays), nested dicts, tuples and lists, and 0-d arrays for scalars. It never uses
pickle, and a crash while saving never leaves half a file behind.

File format
-----------
A checkpoint is an ordinary ``.npz`` archive written by :func:`numpy.savez`:

* ``leaf_0``, ``leaf_1``, ... hold the leaves in :func:`jax.tree_util.tree_flatten`
  order. Types numpy cannot store natively (``bfloat16`` and the other ``ml_dtypes``
  types such as ``float8_e4m3fn``) are stored as their raw bits, as unsigned integers of
  the same width, so they round-trip exactly.
* ``__jaxgd_meta__`` is a 1-d ``uint8`` array holding UTF-8 JSON::

      {"format": "jaxgd.checkpoint", "version": 1,
       "structure": {"type": "dict", "keys": [["str", "w"]], "children": [...]},
       "leaves": [{"path": "['w']", "dtype": "bfloat16", "stored_as": "uint16",
                   "shape": [3]}, ...],
       "metadata": {...}}

  ``structure`` describes the containers (``dict``, ``ordereddict``, ``list``, ``tuple``,
  ``namedtuple``, ``none``, ``leaf``, or ``node`` for any other registered pytree
  node), ``leaves`` gives each leaf's key path (:func:`jax.tree_util.keystr`), dtype and
  shape, and ``metadata`` is the caller's JSON-serialisable dict.

Saving writes to a temporary file in the target's folder, flushes it and syncs it to disk,
then renames it onto the target with :func:`os.replace`, so the target is always
either the old checkpoint or the new one. Loading opens the archive with
``allow_pickle=False`` and checks it against the JSON before trusting any of it.

Dtypes
------
Leaves come back with the dtype they were saved with. They are returned as
:class:`jax.Array`, except for 64-bit dtypes (``float64``, ``int64``, ``uint64``,
``complex128``) while JAX's 64-bit mode is off: converting those to JAX would silently
narrow them to 32 bits, so they are returned as :class:`numpy.ndarray` with their exact
values instead (turn on ``jax_enable_x64`` to get JAX arrays). Python scalars in the
saved tree are stored as the 0-d array JAX makes of them (``jnp.asarray``), so a Python
``float`` is saved as ``float32`` unless 64-bit mode is on.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import pathlib
import tempfile
from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np

__all__ = ["load", "load_metadata", "save"]

_META_KEY = "__jaxgd_meta__"
_FORMAT = "jaxgd.checkpoint"
_VERSION = 1

# Dtypes numpy stores natively in an .npz file; they are written as they are.
_NATIVE_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name)
    for name in (
        "bool",
        "int8",
        "int16",
        "int32",
        "int64",
        "uint8",
        "uint16",
        "uint32",
        "uint64",
        "float16",
        "float32",
        "float64",
        "complex64",
        "complex128",
    )
}

# Dtypes from ml_dtypes that JAX understands; they are written as their raw bits.
_BITS_DTYPES: dict[str, np.dtype] = {
    name: np.dtype(getattr(ml_dtypes, name))
    for name in (
        "bfloat16",
        "float8_e3m4",
        "float8_e4m3",
        "float8_e4m3b11fnuz",
        "float8_e4m3fn",
        "float8_e4m3fnuz",
        "float8_e5m2",
        "float8_e5m2fnuz",
        "float8_e8m0fnu",
        "float4_e2m1fn",
        "float6_e2m3fn",
        "float6_e3m2fn",
        "int2",
        "int4",
        "uint2",
        "uint4",
    )
    if hasattr(ml_dtypes, name)
}


_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip's first entry, or an empty zip


class _NotACheckpointError(Exception):
    """Internal: the file's contents are not a valid jaxgd checkpoint."""


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save(
    path: str | os.PathLike[str],
    tree: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Saves a pytree of arrays to ``path``, atomically and without pickle.

    The arrays go into an ``.npz`` archive together with a JSON description of the
    tree (containers, key paths, dtypes and shapes) and ``metadata``. The archive is
    written to a temporary file in the same folder, flushed to disk, then renamed onto
    ``path``: an existing checkpoint at ``path`` is replaced only once the new one is
    complete, and on any failure the temporary file is removed.

    Args:
        path: Where to write. Used exactly as given: no ``.npz`` suffix is added. Its
            folder must exist and be writable.
        tree: Any pytree (nested dicts, lists, tuples, NamedTuples, ``None``, or other
            registered nodes) whose leaves are JAX or numpy arrays or Python scalars.
            ``bfloat16`` and the other ``ml_dtypes`` types are stored bit for bit.
            JAX arrays must be fully addressable from this process.
        metadata: An optional JSON-serialisable mapping stored alongside the arrays
            (for example a run fingerprint); read it back with :func:`load_metadata`.
            It round-trips through JSON, so tuples come back as lists.

    Returns:
        The path written, as a :class:`pathlib.Path`.

    Raises:
        TypeError: A leaf is not an array or scalar, has the ``object`` dtype or
            another dtype a checkpoint cannot store (the message names the leaf), a
            dict key is not a ``str`` or ``int``, or ``metadata`` is not a
            JSON-serialisable mapping.
        OSError: The folder does not exist or cannot be written (the message names the
            path), or writing failed.

    Example:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> params = {"w": jnp.arange(3.0), "b": jnp.zeros(())}
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = checkpoint.save(os.path.join(folder, "params.npz"), params)
        ...     restored = checkpoint.load(path, like=params)
        >>> restored["w"]
        Array([0., 1., 2.], dtype=float32)
    """
    target = pathlib.Path(os.fspath(path))
    meta_json = _metadata_json(metadata)

    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    arrays: dict[str, np.ndarray] = {}
    leaf_specs: list[dict[str, Any]] = []
    for index, (key_path, leaf) in enumerate(flat):
        where = _where(key_path)
        array = _leaf_to_numpy(leaf, where)
        stored = _to_storable(array, where)
        arrays[f"leaf_{index}"] = stored
        leaf_specs.append(
            {
                "path": jax.tree_util.keystr(key_path),
                "dtype": array.dtype.name,
                "stored_as": stored.dtype.name,
                "shape": list(array.shape),
            }
        )
    counter = iter(range(len(flat)))
    structure = _encode_structure(treedef, counter, "")
    meta = {
        "format": _FORMAT,
        "version": _VERSION,
        "structure": structure,
        "leaves": leaf_specs,
        "metadata": json.loads(meta_json),
    }
    meta_bytes = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    arrays[_META_KEY] = np.frombuffer(meta_bytes, dtype=np.uint8)

    _atomic_write(target, arrays)
    return target


def _metadata_json(metadata: Mapping[str, Any] | None) -> str:
    """Validates ``metadata`` and returns it as a JSON string."""
    if metadata is None:
        return "{}"
    if not isinstance(metadata, Mapping):
        raise TypeError(f"metadata must be a JSON-serialisable dict, got {type(metadata).__name__}")
    try:
        return json.dumps(dict(metadata))
    except (TypeError, ValueError) as err:
        raise TypeError(f"metadata must be JSON-serialisable: {err}") from err


def _where(key_path: tuple[Any, ...]) -> str:
    """A human-readable name for a leaf's key path."""
    return jax.tree_util.keystr(key_path) or "<root>"


def _leaf_to_numpy(leaf: Any, where: str) -> np.ndarray:
    """Converts one leaf to a numpy array, rejecting anything that is not numeric."""
    if isinstance(leaf, (bool, int, float, complex)) and not isinstance(leaf, np.generic):
        try:
            leaf = jnp.asarray(leaf)
        except OverflowError as err:
            raise TypeError(f"leaf {where}: {err}") from err
    elif not isinstance(leaf, (jax.Array, np.ndarray, np.generic)):
        raise TypeError(
            f"leaf {where} is a {type(leaf).__name__}; checkpoint leaves must be JAX or "
            "numpy arrays or Python scalars"
        )
    array = np.asarray(leaf)
    if array.dtype == object:
        raise TypeError(
            f"leaf {where} has the object dtype, which a checkpoint cannot store "
            "(it would need pickle); convert it to a numeric array"
        )
    if array.dtype.name not in _NATIVE_DTYPES and array.dtype.name not in _BITS_DTYPES:
        raise TypeError(
            f"leaf {where} has dtype {array.dtype}, which a checkpoint cannot store; "
            "use a boolean, integer, floating or complex dtype"
        )
    return array


def _to_storable(array: np.ndarray, where: str) -> np.ndarray:
    """Returns the array numpy will write: native dtypes as they are, others as bits."""
    if array.dtype.name in _BITS_DTYPES:
        return np.asarray(array, order="C").view(f"uint{8 * array.dtype.itemsize}")
    # Store in native byte order so the recorded dtype name describes the bytes.
    return np.asarray(array, dtype=array.dtype.newbyteorder("="), order="C")


def _encode_structure(treedef: Any, counter: Any, where: str) -> dict[str, Any]:
    """Describes a PyTreeDef as JSON, numbering leaves in flattening order."""
    node_data = treedef.node_data()
    if node_data is None:
        return {"type": "leaf", "index": next(counter)}
    node_type, aux = node_data
    children = treedef.children()
    if node_type is type(None):
        return {"type": "none"}
    if node_type in (dict, collections.OrderedDict, collections.defaultdict):
        keys = aux[1] if node_type is collections.defaultdict else aux
        encoded_keys = []
        for key in keys:
            if isinstance(key, str):
                encoded_keys.append(["str", key])
            elif isinstance(key, int) and not isinstance(key, bool):
                encoded_keys.append(["int", key])
            else:
                raise TypeError(
                    f"dict key {key!r} at {where or '<root>'} is a {type(key).__name__}; "
                    "checkpoint dict keys must be str or int"
                )
        return {
            "type": "ordereddict" if node_type is collections.OrderedDict else "dict",
            "keys": encoded_keys,
            "children": [
                _encode_structure(child, counter, f"{where}[{key!r}]")
                for key, child in zip(keys, children, strict=True)
            ],
        }
    encoded_children = [
        _encode_structure(child, counter, f"{where}[{i}]") for i, child in enumerate(children)
    ]
    if node_type is list:
        return {"type": "list", "children": encoded_children}
    if node_type is tuple:
        return {"type": "tuple", "children": encoded_children}
    name = f"{node_type.__module__}.{node_type.__qualname__}"
    if issubclass(node_type, tuple) and hasattr(node_type, "_fields"):
        return {
            "type": "namedtuple",
            "name": name,
            "fields": list(node_type._fields),
            "children": encoded_children,
        }
    return {"type": "node", "name": name, "children": encoded_children}


def _atomic_write(target: pathlib.Path, arrays: dict[str, np.ndarray]) -> None:
    """Writes ``arrays`` as an .npz to a temporary file, then renames it onto ``target``."""
    folder = target.parent
    try:
        tmp = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed below, kept on success
            mode="wb",
            dir=folder,
            prefix=f".{target.name}.",
            suffix=".tmp",
            delete=False,
        )
    except OSError as err:
        reason = err.strerror or str(err)
        message = (
            f"cannot write checkpoint {str(target)!r}: cannot create a file in the folder "
            f"{str(folder)!r} ({reason}); check that it exists and is writable"
        )
        raise type(err)(message) from err
    try:
        with tmp:
            np.savez(tmp, **arrays)
            tmp.flush()
            os.fsync(tmp.fileno())
        _set_default_mode(tmp.name, target)
        os.replace(tmp.name, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp.name)
        raise
    _fsync_folder(folder)


def _set_default_mode(tmp_name: str, target: pathlib.Path) -> None:
    """Gives the new file the mode of the file it replaces, or the umask default.

    ``NamedTemporaryFile`` creates files readable by their owner only; a checkpoint
    should get the same permissions as any other file the user writes.
    """
    if os.name != "posix":
        return
    try:
        mode = target.stat().st_mode & 0o7777
    except OSError:
        mode = 0o666 & ~_umask()
    os.chmod(tmp_name, mode)


def _umask() -> int:
    """The process umask, read without changing it where the platform allows."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_folder(folder: pathlib.Path) -> None:
    """Flushes the rename to disk (best effort; not possible on every platform)."""
    if os.name != "posix":
        return
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], like: Any = None) -> Any:
    """Loads a checkpoint written by :func:`save`.

    Without ``like``, the tree is rebuilt from the structure stored in the file: dicts,
    lists, tuples and ``None`` come back as they were saved; NamedTuples and other
    registered pytree nodes come back as plain tuples of their children (the file
    does not import or trust Python classes). Pass ``like`` to get the original
    container types back.

    With ``like``, the result has exactly ``like``'s structure and container types
    (for example an optimizer's NamedTuple state). Leaves are matched by key path and
    every leaf's shape and dtype must equal ``like``'s; ``like``'s leaves may be arrays,
    :class:`jax.ShapeDtypeStruct` or Python scalars, and a JAX array's sharding is
    reused for the restored leaf.

    Leaves come back as :class:`jax.Array` with the dtype they were saved with, except
    64-bit dtypes while JAX's 64-bit mode is off, which come back as exact
    :class:`numpy.ndarray` (see the module docstring).

    Args:
        path: The checkpoint file.
        like: Optional pytree giving the expected structure, shapes and dtypes.

    Returns:
        The restored pytree.

    Raises:
        FileNotFoundError: There is no file at ``path``.
        ValueError: The file is not a readable jaxgd checkpoint (not an ``.npz``,
            truncated, without the jaxgd description, or holding pickled objects;
            nothing is ever unpickled), or it does not match ``like``: the message
            lists each leaf that differs, with its key path and what differs.

    Example:
        >>> import os, tempfile
        >>> from typing import NamedTuple
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> class State(NamedTuple):
        ...     count: jnp.ndarray
        ...     mu: dict
        >>> state = State(jnp.zeros((), jnp.int32), {"w": jnp.ones(2, jnp.bfloat16)})
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = checkpoint.save(os.path.join(folder, "state.npz"), state)
        ...     plain = checkpoint.load(path)
        ...     typed = checkpoint.load(path, like=state)
        >>> type(plain).__name__, type(typed).__name__
        ('tuple', 'State')
        >>> typed.mu["w"]
        Array([1, 1], dtype=bfloat16)
    """
    meta, arrays = _read(path)
    if like is None:
        leaves = [_to_jax(array) for array in arrays]
        return _decode_structure(meta["structure"], leaves)
    return _restore_like(path, meta, arrays, like)


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Returns the ``metadata`` dict stored by :func:`save` (``{}`` if none was given).

    Args:
        path: The checkpoint file.

    Returns:
        The metadata, as decoded from JSON.

    Raises:
        FileNotFoundError: There is no file at ``path``.
        ValueError: The file is not a readable jaxgd checkpoint.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from jaxgd import checkpoint
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     path = os.path.join(folder, "run.npz")
        ...     _ = checkpoint.save(path, np.zeros(3), metadata={"step": 100, "lr": 0.1})
        ...     checkpoint.load_metadata(path)
        {'step': 100, 'lr': 0.1}
    """
    meta, _ = _read(path, leaves=False)
    return meta["metadata"]


def _read(
    path: str | os.PathLike[str], *, leaves: bool = True
) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Reads and validates a checkpoint; returns its description and its leaves.

    Leaves are returned with their logical dtype (bits reinterpreted as bfloat16, ...).
    """
    name = os.fspath(path)
    with open(name, "rb") as file:  # a missing file stays a FileNotFoundError
        try:
            return _parse(file, leaves)
        except _NotACheckpointError as err:
            raise ValueError(f"{str(name)!r} is not a readable jaxgd checkpoint: {err}") from None
        except Exception as err:  # numpy, zipfile and zlib raise many kinds
            raise ValueError(
                f"{str(name)!r} is not a readable jaxgd checkpoint: {type(err).__name__}: {err}"
            ) from err


def _parse(file: Any, leaves: bool) -> tuple[dict[str, Any], list[np.ndarray]]:
    """Parses an open checkpoint file; raises on anything unexpected."""
    # An .npz is a zip archive; anything else (a pickle, an .npy, garbage) is refused
    # before numpy looks at it.
    if file.read(4) not in _ZIP_MAGIC:
        raise _NotACheckpointError("it is not an .npz (zip) archive")
    file.seek(0)
    loaded = np.load(file, allow_pickle=False)
    if not isinstance(loaded, np.lib.npyio.NpzFile):
        raise _NotACheckpointError("it is not an .npz archive")
    with loaded as npz:
        if _META_KEY not in npz.files:
            raise _NotACheckpointError(f"no {_META_KEY!r} entry (a plain .npz archive?)")
        raw = npz[_META_KEY]
        if raw.dtype != np.uint8 or raw.ndim != 1:
            raise _NotACheckpointError(f"the {_META_KEY!r} entry is not JSON bytes")
        meta = json.loads(raw.tobytes().decode("utf-8"))
        _check_meta(meta)
        specs = meta["leaves"]
        expected = {_META_KEY} | {f"leaf_{i}" for i in range(len(specs))}
        if set(npz.files) != expected:
            raise _NotACheckpointError(
                f"the archive holds {sorted(npz.files)}, the description expects {sorted(expected)}"
            )
        if not leaves:
            return meta, []
        arrays = []
        for index, spec in enumerate(specs):
            stored = npz[f"leaf_{index}"]
            arrays.append(_from_stored(stored, spec, index))
    _check_structure(meta["structure"], len(arrays))
    return meta, arrays


def _check_meta(meta: Any) -> None:
    """Checks the JSON description's top level and leaf entries."""
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise _NotACheckpointError("the description is not a jaxgd checkpoint's")
    version = meta.get("version")
    if not isinstance(version, int) or version > _VERSION or version < 1:
        raise _NotACheckpointError(
            f"format version {version!r} is not supported (this jaxgd reads version "
            f"{_VERSION}; was it written by a newer jaxgd?)"
        )
    if not isinstance(meta.get("leaves"), list) or not isinstance(meta.get("metadata"), dict):
        raise _NotACheckpointError("the description is incomplete")
    if "structure" not in meta:
        raise _NotACheckpointError("the description has no structure")
    for index, spec in enumerate(meta["leaves"]):
        ok = (
            isinstance(spec, dict)
            and isinstance(spec.get("path"), str)
            and spec.get("dtype") in (_NATIVE_DTYPES.keys() | _BITS_DTYPES.keys())
            and spec.get("stored_as") in _NATIVE_DTYPES
            and isinstance(spec.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in spec["shape"])
        )
        if not ok:
            raise _NotACheckpointError(f"leaf {index}'s description is malformed")


def _from_stored(stored: np.ndarray, spec: dict[str, Any], index: int) -> np.ndarray:
    """Checks a stored array against its description and restores its logical dtype."""
    stored_as = _NATIVE_DTYPES[spec["stored_as"]]
    shape = tuple(spec["shape"])
    if stored.dtype != stored_as or stored.shape != shape:
        raise _NotACheckpointError(
            f"leaf {index} ({spec['path']}) is {stored.dtype} with shape {stored.shape}, "
            f"the description says {stored_as} with shape {shape}"
        )
    dtype_name = spec["dtype"]
    if dtype_name in _BITS_DTYPES:
        dtype = _BITS_DTYPES[dtype_name]
        if dtype.itemsize != stored_as.itemsize:
            raise _NotACheckpointError(f"leaf {index} ({spec['path']}) has the wrong width")
        return stored.view(dtype)
    if dtype_name != spec["stored_as"]:
        raise _NotACheckpointError(f"leaf {index} ({spec['path']}) has inconsistent dtypes")
    return stored


def _check_structure(structure: Any, num_leaves: int) -> None:
    """Checks that the structure is well formed and uses each leaf exactly once."""
    seen: list[int] = []

    def visit(node: Any) -> None:
        kind = node["type"]
        if kind == "leaf":
            seen.append(node["index"])
        elif kind == "none":
            pass
        elif kind in ("dict", "ordereddict"):
            if len(node["keys"]) != len(node["children"]):
                raise _NotACheckpointError("a dict's keys and values differ in number")
            for key_kind, key in node["keys"]:
                if (key_kind, type(key)) not in (("str", str), ("int", int)):
                    raise _NotACheckpointError(f"a dict key is malformed: {key!r}")
            for child in node["children"]:
                visit(child)
        elif kind in ("list", "tuple", "namedtuple", "node"):
            for child in node["children"]:
                visit(child)
        else:
            raise _NotACheckpointError(f"unknown container type {kind!r}")

    visit(structure)
    if seen != list(range(num_leaves)):
        raise _NotACheckpointError("the structure does not match the leaves")


def _decode_structure(node: dict[str, Any], leaves: list[Any]) -> Any:
    """Rebuilds a tree from its (already checked) JSON structure."""
    kind = node["type"]
    if kind == "leaf":
        return leaves[node["index"]]
    if kind == "none":
        return None
    children = [_decode_structure(child, leaves) for child in node["children"]]
    if kind in ("dict", "ordereddict"):
        container = collections.OrderedDict if kind == "ordereddict" else dict
        keys = [key for _, key in node["keys"]]
        return container(zip(keys, children, strict=True))
    if kind == "list":
        return children
    return tuple(children)  # tuples, NamedTuples and other nodes


def _to_jax(array: np.ndarray, sharding: Any = None) -> Any:
    """A JAX array, unless JAX would narrow the dtype (64-bit types with x64 off)."""
    if jax.dtypes.canonicalize_dtype(array.dtype) != array.dtype:
        return array
    if sharding is not None:
        return jax.device_put(array, sharding)
    return jnp.asarray(array)


def _restore_like(
    path: str | os.PathLike[str],
    meta: dict[str, Any],
    arrays: list[np.ndarray],
    like: Any,
) -> Any:
    """Rebuilds the file's leaves into ``like``'s structure, checking each leaf."""
    name = str(os.fspath(path))
    like_flat, like_treedef = jax.tree_util.tree_flatten_with_path(like)
    like_paths = [jax.tree_util.keystr(key_path) for key_path, _ in like_flat]
    file_paths = [spec["path"] for spec in meta["leaves"]]

    if like_paths != file_paths:
        like_set, file_set = set(like_paths), set(file_paths)
        only_file = [p for p in file_paths if p not in like_set]
        only_like = [p for p in like_paths if p not in file_set]
        unique = len(set(file_paths)) == len(file_paths) == len(like_paths)
        if only_file or only_like or not unique:
            raise ValueError(
                f"checkpoint {name!r} does not have the structure of `like`: "
                f"leaves only in the file: {_listing(only_file)}; "
                f"leaves only in `like`: {_listing(only_like)}"
            )
        # Same leaves in another order (an OrderedDict with reordered keys): match by path.
        position = {p: i for i, p in enumerate(file_paths)}
        arrays = [arrays[position[p]] for p in like_paths]

    problems = []
    for (key_path, like_leaf), array in zip(like_flat, arrays, strict=True):
        shape, dtype = _shape_dtype(like_leaf)
        where = _where(key_path)
        if array.shape != shape:
            problems.append(f"{where}: shape {array.shape} in the file, {shape} expected")
        if array.dtype != dtype:
            problems.append(f"{where}: dtype {array.dtype} in the file, {dtype} expected")
    if problems:
        raise ValueError(f"checkpoint {name!r} does not match `like`:\n  " + "\n  ".join(problems))

    leaves = [
        _to_jax(array, _sharding_of(like_leaf))
        for (_, like_leaf), array in zip(like_flat, arrays, strict=True)
    ]
    return jax.tree_util.tree_unflatten(like_treedef, leaves)


def _listing(paths: list[str]) -> str:
    """Formats a list of key paths for an error message."""
    if not paths:
        return "none"
    return ", ".join(p or "<root>" for p in paths)


def _shape_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype ``leaf`` stands for (without copying its data)."""
    if isinstance(leaf, (bool, int, float, complex)) and not isinstance(leaf, np.generic):
        leaf = jnp.asarray(leaf)
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), np.dtype(leaf.dtype)
    array = np.asarray(leaf)
    return array.shape, array.dtype


def _sharding_of(leaf: Any) -> Any:
    """The sharding of a JAX array or ShapeDtypeStruct in ``like``, if it has one."""
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return getattr(leaf, "sharding", None)
    return None
