"""Saving and restoring pytrees of arrays, safely, with orbax-checkpoint.

A checkpoint holds any pytree of arrays: parameters, optimizer states (NamedTuples of
arrays), nested dicts, tuples and lists, and 0-d arrays for scalars. Arrays may be
sharded over the devices of several processes. It never uses pickle, a kill at any
moment leaves either the previous checkpoint or the new one, and a run holds a lock on
its checkpoint so that a second live run cannot write over it.

Layout
------
A checkpoint is a directory that jaxgd owns; the user names it (``"run.ckpt"``) and
jaxgd creates it. Inside, `orbax-checkpoint <https://orbax.readthedocs.io>`_'s
:class:`~orbax.checkpoint.CheckpointManager` keeps one numbered step directory, the
latest save (the number counts saves)::

    run.ckpt/
      jaxgd-checkpoint         an empty file: jaxgd made this directory and owns it
      jaxgd.lock               held by the live run using the checkpoint (see lock())
      7/                       the checkpoint, written by the 8th save
        state/                 the arrays: orbax's StandardCheckpointHandler (tensorstore)
        jaxgd/metadata         JSON: format, version, tree structure, leaves, metadata
        _CHECKPOINT_METADATA   orbax's own bookkeeping
      8.orbax-checkpoint-tmp-1712345678/   a save in progress

A save writes the next step into orbax's temporary directory and renames it into place
once complete; only then is the previous step deleted. A save that was interrupted
leaves its temporary directory behind, and the next :func:`save` or :func:`lock`
removes it. ``state/`` is an ordinary orbax checkpoint of the pytree (NamedTuples as
dicts of their fields), readable by plain orbax too; ``jaxgd/metadata`` describes the
tree so that it comes back with its containers, dtypes and shapes checked::

    {"format": "jaxgd.checkpoint", "version": 2,
     "structure": {"type": "dict", "keys": [["str", "w"]], "children": [...]},
     "leaves": [{"path": "['w']", "name": ["w"], "dtype": "bfloat16",
                 "stored_as": "bfloat16", "shape": [3], "checksum": 2918273645}, ...],
     "metadata": {...}}

``structure`` describes the containers (``dict``, ``ordereddict``, ``list``, ``tuple``,
``namedtuple``, ``none``, ``leaf``, or ``node`` for any other registered pytree node);
``leaves`` gives each leaf's key path (:func:`jax.tree_util.keystr`), its name in orbax's
item, dtype, shape and a 32-bit checksum of its bytes (tensorstore checks none for
uncompressed data); ``metadata`` is the caller's JSON-serialisable dict. Loading checks
the description against what orbax stored, and both against ``like``, before restoring
anything, and the checksums after. Empty arrays, which orbax cannot write, are restored
from the description alone.

Multi-process runs
------------------
In a run of several processes (``jax.process_count() > 1``) every process calls
:func:`save`, :func:`load` and :func:`lock` with the same path on a file system they
share (they are collective, as orbax's are). Orbax writes each process's shards of the
arrays; process 0 writes the description and holds the lock. Sharded and replicated
arrays come back with the shardings of ``like``. Python scalars, numpy arrays and JAX
arrays held by one process alone are taken to be the same on every process and are
written once, from process 0.

Dtypes
------
Leaves come back with the dtype they were saved with. ``bfloat16``, ``float8`` and the
other ``ml_dtypes`` types are stored natively where tensorstore knows them and as their
raw bits (``uint8``) otherwise, so they round-trip exactly. Leaves are returned as
:class:`jax.Array`, except for 64-bit dtypes (``float64``, ``int64``, ``uint64``,
``complex128``) while JAX's 64-bit mode is off: converting those to JAX would silently
narrow them to 32 bits, so they are returned as :class:`numpy.ndarray` with their exact
values instead. Python scalars in the saved tree are stored as the 0-d array JAX makes
of them (``jnp.asarray``), so a Python ``float`` is saved as ``float32`` unless 64-bit
mode is on.
"""

from __future__ import annotations

import collections
import contextlib
import json
import math
import os
import pathlib
import re
import shutil
import socket
import time
from collections.abc import Iterator, Mapping
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import tensorstore

__all__ = [
    "CheckpointInUseError",
    "check_path",
    "exists",
    "load",
    "load_metadata",
    "lock",
    "save",
]

_FORMAT = "jaxgd.checkpoint"
_VERSION = 2
_STATE = "state"  # orbax item holding the arrays
_DESCRIPTION = "jaxgd"  # orbax item holding the JSON description
_LOCK_NAME = "jaxgd.lock"
_MARKER = "jaxgd-checkpoint"  # created with the directory: jaxgd owns what is inside
_ROOT = "array"  # orbax's name for a tree that is a single array
# What may sit in a checkpoint directory beside the marker: the lock, orbax's step
# directories, and the temporary directories of saves in progress (or interrupted).
_INTERRUPTED = re.compile(r"\d+\.orbax-checkpoint-tmp.*")  # orbax's TMP_DIR_SUFFIX
_OURS = re.compile(rf"{_MARKER}|jaxgd\.lock|\d+|{_INTERRUPTED.pattern}")


class CheckpointInUseError(ValueError):
    """Another live run holds the checkpoint (see :func:`lock`)."""


class _NotACheckpointError(Exception):
    """Internal: the directory's contents are not a valid jaxgd checkpoint."""


# --------------------------------------------------------------------------------------
# The directory
# --------------------------------------------------------------------------------------


def check_path(path: str | os.PathLike[str]) -> pathlib.Path:
    """Checks that ``path`` can hold a jaxgd checkpoint, without writing anything.

    It can if it does not exist yet (its folder must exist and be writable), if it is an
    empty directory, or if it is a directory jaxgd made (it holds the ``jaxgd-checkpoint``
    marker) holding only what jaxgd writes there. jaxgd replaces and deletes what is in
    such a directory, so a directory of the user's own is never taken (even if its
    entries are named like orbax's steps).

    Args:
        path: The checkpoint directory.

    Returns:
        ``path`` as an absolute :class:`pathlib.Path`.

    Raises:
        ValueError: ``path`` is a file (a checkpoint of the older ``.npz`` format, for
            example), a directory holding files jaxgd did not write, or a path in a
            folder that does not exist or cannot be written. The message says what to
            do.

    Example:
        >>> import os, tempfile
        >>> from jaxgd import checkpoint
        >>> folder = tempfile.mkdtemp()
        >>> checkpoint.check_path(os.path.join(folder, "run.ckpt")).name
        'run.ckpt'
        >>> checkpoint.check_path(folder + "/missing/run.ckpt")
        Traceback (most recent call last):
        ...
        ValueError: checkpoint path '.../missing/run.ckpt' must be in an existing folder; ...
    """
    directory = pathlib.Path(os.path.abspath(os.fspath(path)))
    problem = _path_problem(directory)
    if problem is not None:
        raise ValueError(problem[1])
    return directory


def _path_problem(directory: pathlib.Path) -> tuple[type[Exception], str] | None:
    """Why ``directory`` cannot hold a checkpoint, with the exception a save raises."""
    shown = str(directory)
    if directory.is_dir():
        names = sorted(p.name for p in directory.iterdir())
        if names and _MARKER in names:
            foreign = [name for name in names if not _OURS.fullmatch(name)]
        else:  # not made by jaxgd: only an empty directory is taken over
            foreign = names
        if foreign:
            return ValueError, (
                f"checkpoint path {shown!r} is a directory holding files jaxgd did not write "
                f"({', '.join(foreign[:3])}{', ...' if len(foreign) > 3 else ''}); jaxgd owns "
                "its checkpoint directory, so pass a new path (jaxgd creates it)."
            )
        folder = directory
    elif directory.exists():
        return ValueError, (
            f"checkpoint path {shown!r} is a file, not a checkpoint directory (checkpoints "
            "are directories; a file of the older .npz format cannot be resumed); pass a "
            "new path (jaxgd creates it) or delete the file."
        )
    else:
        folder = directory.parent
        if not folder.is_dir():
            return FileNotFoundError, (
                f"checkpoint path {shown!r} must be in an existing folder; create "
                f"{str(folder)!r} first."
            )
    if not os.access(folder, os.W_OK):
        return PermissionError, (
            f"cannot write checkpoints in {str(folder)!r} (it is not writable); pick another path."
        )
    return None


def exists(path: str | os.PathLike[str]) -> bool:
    """Whether a complete checkpoint is at ``path`` (a save finished there).

    Args:
        path: The checkpoint directory.

    Returns:
        True if ``path`` is a directory holding at least one finished save.

    Example:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
        >>> checkpoint.exists(path)
        False
        >>> _ = checkpoint.save(path, {"w": jnp.ones(2)})
        >>> checkpoint.exists(path)
        True
    """
    directory = pathlib.Path(os.path.abspath(os.fspath(path)))
    return directory.is_dir() and _latest_step(directory) is not None


def _handlers() -> dict[str, Any]:
    return {_STATE: ocp.StandardCheckpointHandler(), _DESCRIPTION: ocp.JsonCheckpointHandler()}


def _manager(directory: pathlib.Path) -> ocp.CheckpointManager:
    """Orbax's manager of ``directory``, for saving: it keeps one save, and removes what
    interrupted saves left before it saves."""
    options = ocp.CheckpointManagerOptions(
        enable_async_checkpointing=False,
        max_to_keep=1,
        cleanup_tmp_directories=True,
        create=True,
    )
    return ocp.CheckpointManager(directory, options=options, item_handlers=_handlers())


def _reader() -> ocp.Checkpointer:
    """Orbax's reader of one save (a step directory)."""
    return ocp.Checkpointer(ocp.CompositeCheckpointHandler(**_handlers()))


def _latest_step(directory: pathlib.Path) -> int | None:
    """The number of the latest finished save in ``directory`` (None if there is none)."""
    steps = [int(p.name) for p in directory.iterdir() if p.is_dir() and p.name.isdigit()]
    return max(steps, default=None)


def _agree(value: int) -> int:
    """Process 0's ``value``, on every process (a collective in a multi-process run)."""
    if jax.process_count() == 1:
        return value
    from jax.experimental import multihost_utils

    return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def _barrier(name: str) -> None:
    """Waits for every process of a multi-process run to get here."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


# --------------------------------------------------------------------------------------
# The lock
# --------------------------------------------------------------------------------------


@contextlib.contextmanager
def lock(path: str | os.PathLike[str]) -> Iterator[pathlib.Path]:
    """Holds the checkpoint at ``path`` for a run: a second live run is refused.

    Creates the directory if needed, takes the lock (an exclusive :func:`fcntl.flock`
    on ``path/jaxgd.lock``, which records the holder's pid and host), then removes what
    an interrupted save left (orbax's temporary directories). The operating system drops
    the lock when the holder's process ends, however it ends, so a lock left by a killed
    run never blocks a resume. ``flock`` is not re-entrant across file descriptions: a
    second ``lock`` of the same path in the same process is refused too. (``flock`` is
    POSIX; across hosts it holds where the shared file system supports it, as NFSv4
    does.) :func:`save` does not take the lock: a run holds it around all its saves.

    In a multi-process run every process enters ``lock`` (it is collective): process 0
    takes the one lock of the run and tells the others whether it got it, so all
    processes go on, or all raise; on leaving the block normally, process 0 releases
    the lock once every process has left it.

    Args:
        path: The checkpoint directory (see :func:`check_path`).

    Yields:
        The checkpoint directory, as an absolute :class:`pathlib.Path`.

    Raises:
        CheckpointInUseError: Another live process holds the lock; the message names
            its pid and host. It is a :class:`ValueError`.
        ValueError: ``path`` cannot hold a checkpoint (see :func:`check_path`).

    Example:
        >>> import os, tempfile
        >>> from jaxgd import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
        >>> with checkpoint.lock(path):
        ...     with checkpoint.lock(path):  # a second run of the same path
        ...         pass
        Traceback (most recent call last):
        ...
        jaxgd.checkpoint.CheckpointInUseError: checkpoint '.../run.ckpt' is in use by process ...
    """
    directory = check_path(path)
    fd, error = None, None
    if jax.process_index() == 0:
        try:
            fd = _acquire(directory)
        except Exception as err:  # every process must learn that process 0 failed
            error = err
    if not _agree(int(fd is not None)):
        if error is not None:
            raise error
        raise CheckpointInUseError(
            f"checkpoint {str(directory)!r} could not be locked by process 0 of this run: "
            f"{_holder(directory)}"
        )
    try:
        if fd is not None:
            for entry in directory.iterdir():  # what interrupted saves left
                if _INTERRUPTED.fullmatch(entry.name):
                    shutil.rmtree(entry, ignore_errors=True)
        yield directory
        _barrier("jaxgd.checkpoint.lock")  # every process is done before the lock goes
    finally:
        if fd is not None:
            _release(directory, fd)


def _acquire(directory: pathlib.Path) -> int:
    """Takes the lock file's flock and writes who holds it; returns its descriptor."""
    import fcntl

    _claim(directory)
    lock_path = directory / _LOCK_NAME
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise CheckpointInUseError(
                f"checkpoint {str(directory)!r} is in use by {_holder(directory)}; wait "
                "for that run to end (or stop it), or pass another checkpoint path."
            ) from None
        # The holder before us may have unlinked the file between our open and flock.
        try:
            same = os.stat(lock_path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    holder = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(holder).encode())
    return fd


def _holder(directory: pathlib.Path) -> str:
    """Who holds the lock, from the lock file (the holder may still be writing it)."""
    for _ in range(20):
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            holder = json.loads((directory / _LOCK_NAME).read_text())
            since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder["since"]))
            return f"process {int(holder['pid'])} on {holder['host']} (since {since})"
        time.sleep(0.05)
    return "another process"


def _release(directory: pathlib.Path, fd: int) -> None:
    """Removes the lock file, then drops the flock (a waiter sees the file is gone)."""
    with contextlib.suppress(OSError):
        os.unlink(directory / _LOCK_NAME)
    os.close(fd)


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def save(
    path: str | os.PathLike[str],
    tree: Any,
    *,
    metadata: Mapping[str, Any] | None = None,
) -> pathlib.Path:
    """Saves a pytree of arrays to the checkpoint directory ``path``, atomically.

    The arrays go to orbax-checkpoint, the tree's description and ``metadata`` to a JSON
    item beside them, together in the next step directory; orbax writes it to a temporary
    directory and renames it into place once complete, then deletes the previous save.
    So ``path`` always holds either the old checkpoint or the new one. Nothing is
    pickled. In a multi-process run every process calls ``save`` (it is collective).

    Args:
        path: The checkpoint directory; created if it does not exist (its folder must).
        tree: Any pytree (nested dicts, lists, tuples, NamedTuples, ``None``, or other
            registered nodes) whose leaves are JAX or numpy arrays or Python scalars.
            JAX arrays may be sharded over devices and processes.
        metadata: An optional JSON-serialisable mapping stored alongside the arrays
            (for example a run fingerprint); read it back with :func:`load_metadata`.
            It round-trips through JSON, so tuples come back as lists.

    Returns:
        The checkpoint directory, as an absolute :class:`pathlib.Path`.

    Raises:
        TypeError: A leaf is not an array or scalar, has the ``object`` dtype or
            another dtype a checkpoint cannot store (the message names the leaf), a
            dict key is not a ``str`` or ``int``, or ``metadata`` is not a
            JSON-serialisable mapping. Nothing is written.
        ValueError: ``path`` cannot hold a checkpoint (see :func:`check_path`).
        OSError: Writing failed (the message names the path).

    Example:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> params = {"w": jnp.arange(3.0), "b": jnp.zeros(())}
        >>> path = checkpoint.save(os.path.join(tempfile.mkdtemp(), "params.ckpt"), params)
        >>> checkpoint.load(path, like=params)["w"]
        Array([0., 1., 2.], dtype=float32)
    """
    meta_json = _metadata_json(metadata)
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    stored, leaf_specs = [], []
    for key_path, leaf in flat:
        where = _where(key_path)
        array, stored_as = _storable(leaf, where)
        stored.append(array)
        leaf_specs.append(
            {
                "path": jax.tree_util.keystr(key_path),
                "dtype": jnp.dtype(array.dtype if stored_as is None else stored_as).name,
                "stored_as": array.dtype.name,
                "shape": list(array.shape),
                "checksum": _checksum(array),
            }
        )
    description = {
        "format": _FORMAT,
        "version": _VERSION,
        "structure": _encode_structure(treedef, iter(range(len(flat))), ""),
        "leaves": leaf_specs,
        "metadata": json.loads(meta_json),
    }
    # Orbax cannot write empty arrays: the description alone restores them.
    state = jax.tree_util.tree_unflatten(treedef, [a if a.size else None for a in stored])
    if treedef.num_nodes == 1 and stored:  # a single array: orbax saves only containers
        state = {_ROOT: state}
    for spec, name in zip(leaf_specs, _orbax_names(flat), strict=True):
        spec["name"] = list(name)

    directory = _directory_for_writing(path)
    items = {_DESCRIPTION: ocp.args.JsonSave(description)}
    if any(a.size for a in stored):
        items[_STATE] = ocp.args.StandardSave(state)
    with _manager(directory) as manager:
        step = _agree(-1 if (latest := manager.latest_step()) is None else latest) + 1
        manager.save(step, args=ocp.args.Composite(**items), force=True)
    return directory


def _directory_for_writing(path: str | os.PathLike[str]) -> pathlib.Path:
    """Checks ``path`` and creates the directory; an OSError names the path."""
    directory = pathlib.Path(os.path.abspath(os.fspath(path)))
    problem = _path_problem(directory)
    if problem is not None:
        kind, message = problem
        if kind is ValueError:
            raise ValueError(message)
        raise kind(f"cannot write checkpoint {str(directory)!r}: {message}")
    if jax.process_index() == 0:
        try:
            _claim(directory)
        except OSError as err:
            raise type(err)(
                f"cannot write checkpoint {str(directory)!r}: {err.strerror or err}; check "
                "that its folder exists and is writable"
            ) from err
    return directory


def _claim(directory: pathlib.Path) -> None:
    """Creates the directory (if needed) and marks it as jaxgd's, before anything else
    goes in: a directory with the marker is one whose contents jaxgd may replace."""
    directory.mkdir(exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(directory / _MARKER, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


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


def _natively_stored(dtype: np.dtype) -> bool:
    """Whether tensorstore (under orbax) stores this dtype as it is."""
    try:
        tensorstore.dtype(dtype.name)
    except (ValueError, TypeError):
        return False
    return True


def _storable(leaf: Any, where: str) -> tuple[Any, np.dtype | None]:
    """The array orbax will write for ``leaf``, and its logical dtype if stored as bits.

    Python scalars and numpy values become numpy arrays (orbax writes those once, from
    process 0); JAX arrays stay JAX arrays (each process writes its shards), except
    arrays local to one process of a multi-process run, which are written as numpy.
    """
    if isinstance(leaf, (bool, int, float, complex)) and not isinstance(leaf, np.generic):
        try:
            leaf = np.asarray(jnp.asarray(leaf))
        except OverflowError as err:
            raise TypeError(f"leaf {where}: {err}") from err
    elif isinstance(leaf, jax.Array):
        if jax.process_count() > 1 and leaf.is_fully_addressable:
            leaf = np.asarray(leaf)
    elif isinstance(leaf, (np.ndarray, np.generic)):
        leaf = np.asarray(leaf)
    else:
        raise TypeError(
            f"leaf {where} is a {type(leaf).__name__}; checkpoint leaves must be JAX or "
            "numpy arrays or Python scalars"
        )
    dtype = np.dtype(leaf.dtype)
    if dtype.kind == "O":
        raise TypeError(
            f"leaf {where} has the object dtype, which a checkpoint cannot store "
            "(it would need pickle); convert it to a numeric array"
        )
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, np.bool_)):
        raise TypeError(
            f"leaf {where} has dtype {dtype}, which a checkpoint cannot store; "
            "use a boolean, integer, floating or complex dtype"
        )
    if isinstance(leaf, np.ndarray):
        leaf = np.asarray(leaf, dtype=dtype.newbyteorder("="))  # native byte order
    if _natively_stored(dtype):
        return leaf, None
    if isinstance(leaf, jax.Array):
        if not leaf.is_fully_addressable:
            raise TypeError(
                f"leaf {where} has dtype {dtype}, which orbax stores only as raw bytes, "
                "from a whole array; gather it to one process first or cast it"
            )
        leaf = np.asarray(leaf)
    return leaf.view(f"uint{8 * dtype.itemsize}"), dtype


def _fold(xp: Any, data: Any) -> Any:
    """A 32-bit checksum of a flat ``uint8`` array: each byte mixed with its position,
    summed (modulo 2**32); the same with numpy and JAX (``xp``)."""
    position = xp.arange(data.size, dtype=xp.uint32)
    h = data.astype(xp.uint32) * xp.uint32(0x9E3779B1) + position * xp.uint32(0x85EBCA77)
    h = (h ^ (h >> 15)) * xp.uint32(0xC2B2AE3D)
    return xp.sum(h ^ (h >> 13), dtype=xp.uint32)


@jax.jit
def _device_checksum(x: jax.Array) -> jax.Array:
    """:func:`_fold` of a JAX array's bytes, computed where its shards are."""
    data = x.astype(jnp.uint8) if x.dtype == jnp.bool_ else x
    if jnp.iscomplexobj(data):  # numpy's layout: real and imaginary parts interleaved
        data = jnp.stack([data.real, data.imag], axis=-1)
    if data.dtype != jnp.uint8:
        data = jax.lax.bitcast_convert_type(data, jnp.uint8)
    return _fold(jnp, data.reshape(-1))


def _checksum(array: Any) -> int | None:
    """A checksum of a leaf's bytes, the same for its numpy and JAX forms; None for a
    sub-byte dtype sharded over processes (JAX has no byte view of it)."""
    if isinstance(array, jax.Array) and not _sub_byte(array):
        return int(_device_checksum(array))
    if isinstance(array, jax.Array):
        if not array.is_fully_addressable:
            return None
        array = np.asarray(array)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return int(_fold(np, data))


def _sub_byte(array: Any) -> bool:
    """Whether JAX packs the dtype below a byte (int4, float4_e2m1fn, ...)."""
    return jax.dtypes.itemsize_bits(array.dtype) < 8


def _orbax_names(flat: list[tuple[Any, Any]]) -> list[tuple[str, ...]]:
    """The names orbax gives the leaves (their keys as strings), checked to be distinct:
    ``{1: .., "1": ..}`` would collide."""
    names = [ocp.tree.str_keypath(key_path) or (_ROOT,) for key_path, _ in flat]
    seen: set[tuple[str, ...]] = set()
    for (key_path, _), name in zip(flat, names, strict=True):
        if name in seen:
            raise TypeError(
                f"leaf {_where(key_path)} has the same name as another leaf once its keys "
                "are written as strings; use keys that differ as strings"
            )
        seen.add(name)
    return names


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


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


def load(path: str | os.PathLike[str], like: Any = None) -> Any:
    """Loads the checkpoint at ``path`` (the latest finished :func:`save`).

    Without ``like``, the tree is rebuilt from the structure stored in the checkpoint:
    dicts, lists, tuples and ``None`` come back as they were saved; NamedTuples and other
    registered pytree nodes come back as plain tuples of their children (the checkpoint
    does not import or trust Python classes). Pass ``like`` to get the original container
    types back.

    With ``like``, the result has exactly ``like``'s structure and container types (for
    example an optimizer's NamedTuple state). Leaves are matched by key path and every
    leaf's shape and dtype must equal ``like``'s; ``like``'s leaves may be arrays,
    :class:`jax.ShapeDtypeStruct` or Python scalars. A leaf comes back placed with the
    sharding of ``like``'s leaf (a JAX array's, or a ShapeDtypeStruct's), so a
    multi-process run restores its sharded and replicated arrays; other leaves go to
    this process's first device.

    Leaves come back as :class:`jax.Array` with the dtype they were saved with, except
    64-bit dtypes while JAX's 64-bit mode is off, which come back as exact
    :class:`numpy.ndarray` (see the module docstring).

    Args:
        path: The checkpoint directory.
        like: Optional pytree giving the expected structure, shapes and dtypes.

    Returns:
        The restored pytree.

    Raises:
        FileNotFoundError: There is nothing at ``path``.
        ValueError: ``path`` is not a readable jaxgd checkpoint (a file, a directory
            without a finished save, or a checkpoint whose description or arrays are
            missing, tampered with or corrupt; nothing is ever unpickled), or it does not
            match ``like``: the message lists each leaf that differs, with its key path
            and what differs.

    Example:
        >>> import os, tempfile
        >>> from typing import NamedTuple
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> class State(NamedTuple):
        ...     count: jnp.ndarray
        ...     mu: dict
        >>> state = State(jnp.zeros((), jnp.int32), {"w": jnp.ones(2, jnp.bfloat16)})
        >>> path = checkpoint.save(os.path.join(tempfile.mkdtemp(), "state.ckpt"), state)
        >>> plain = checkpoint.load(path)
        >>> typed = checkpoint.load(path, like=state)
        >>> type(plain).__name__, type(typed).__name__
        ('tuple', 'State')
        >>> typed.mu["w"]
        Array([1, 1], dtype=bfloat16)
    """
    found = _read(path)
    specs = found.description["leaves"]
    if like is None:
        decoded = _decode_structure(found.description["structure"], list(range(len(specs))))
        indices, treedef = jax.tree_util.tree_flatten(decoded)
        chosen = [specs[i] for i in indices]
        shardings = [None] * len(chosen)
    else:
        like_flat, treedef = jax.tree_util.tree_flatten_with_path(like)
        chosen = _match_like(found.directory, specs, like_flat)
        shardings = [_sharding_of(leaf) for _, leaf in like_flat]
    targets = {
        tuple(spec["name"]): _target(spec, sharding)
        for spec, sharding in zip(chosen, shardings, strict=True)
        if _in_orbax(spec)
    }
    restored = _restore(found, targets) if targets else {}
    _verify_checksums(found.directory, chosen, restored)
    leaves = [
        _from_stored(
            restored[tuple(spec["name"])] if _in_orbax(spec) else _target(spec, None),
            spec,
            sharding,
        )
        for spec, sharding in zip(chosen, shardings, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _verify_checksums(directory: pathlib.Path, specs: list[dict], restored: dict) -> None:
    """Each restored leaf's bytes have the checksum its save recorded."""
    for spec in filter(_in_orbax, specs):
        expected = spec.get("checksum")
        if expected is not None and _checksum(restored[tuple(spec["name"])]) != expected:
            raise _not_readable(
                directory,
                f"the data of leaf {spec['path']} does not match its checksum (corrupt or "
                "tampered with)",
            )


def load_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Returns the ``metadata`` dict stored by :func:`save` (``{}`` if none was given).

    Args:
        path: The checkpoint directory.

    Returns:
        The metadata, as decoded from JSON.

    Raises:
        FileNotFoundError: There is nothing at ``path``.
        ValueError: ``path`` is not a readable jaxgd checkpoint.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from jaxgd import checkpoint
        >>> path = os.path.join(tempfile.mkdtemp(), "run.ckpt")
        >>> _ = checkpoint.save(path, np.zeros(3), metadata={"step": 100, "lr": 0.1})
        >>> checkpoint.load_metadata(path)
        {'step': 100, 'lr': 0.1}
    """
    return _read(path).description["metadata"]


def _not_readable(directory: Any, why: str) -> ValueError:
    return ValueError(f"{str(directory)!r} is not a readable jaxgd checkpoint: {why}")


class _Found(NamedTuple):
    """A checkpoint as found on disk, its description checked against orbax's metadata."""

    directory: pathlib.Path
    step: int
    description: dict[str, Any]
    stored: Any  # orbax's tree of ArrayMetadata (None when the tree has no leaves)


def _read(path: str | os.PathLike[str]) -> _Found:
    """Finds the latest save at ``path`` and checks its description and stored arrays."""
    directory = pathlib.Path(os.path.abspath(os.fspath(path)))
    if not directory.exists():
        raise FileNotFoundError(f"no checkpoint at {str(directory)!r}")
    if not directory.is_dir():
        raise _not_readable(
            directory,
            "it is a file, and jaxgd checkpoints are directories (a checkpoint of the older "
            ".npz format cannot be read)",
        )
    step = _latest_step(directory)
    if step is None:
        raise _not_readable(directory, "it holds no finished save")
    try:
        if not (directory / str(step) / _DESCRIPTION).is_dir():
            raise _NotACheckpointError(f"save {step} has no jaxgd description (plain orbax?)")
        with _reader() as reader:
            restored = reader.restore(
                directory / str(step),
                args=ocp.args.Composite(**{_DESCRIPTION: ocp.args.JsonRestore()}),
            )
            description = restored[_DESCRIPTION]
            _check_description(description)
            stored = None
            if any(map(_in_orbax, description["leaves"])):
                metadata = reader.metadata(directory / str(step)).item_metadata[_STATE]
                if metadata is None:
                    raise _NotACheckpointError(f"save {step} has no arrays")
                stored = getattr(metadata, "tree", metadata)
        _check_against_orbax(description, stored)
    except _NotACheckpointError as err:
        raise _not_readable(directory, str(err)) from None
    except Exception as err:  # orbax, tensorstore and json raise many kinds
        raise _not_readable(directory, f"{type(err).__name__}: {err}") from err
    return _Found(directory, step, description, stored)


def _check_description(meta: Any) -> None:
    """Checks the JSON description's top level, leaf entries and structure."""
    if not isinstance(meta, dict) or meta.get("format") != _FORMAT:
        raise _NotACheckpointError("the description is not a jaxgd checkpoint's")
    version = meta.get("version")
    if not isinstance(version, int) or version != _VERSION:
        raise _NotACheckpointError(
            f"format version {version!r} is not supported (this jaxgd reads version "
            f"{_VERSION}; was it written by another jaxgd?)"
        )
    if not isinstance(meta.get("leaves"), list) or not isinstance(meta.get("metadata"), dict):
        raise _NotACheckpointError("the description is incomplete")
    if "structure" not in meta:
        raise _NotACheckpointError("the description has no structure")
    for index, spec in enumerate(meta["leaves"]):
        ok = (
            isinstance(spec, dict)
            and isinstance(spec.get("path"), str)
            and _known_dtype(spec.get("dtype"))
            and _known_dtype(spec.get("stored_as"))
            and isinstance(spec.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in spec["shape"])
            and (spec.get("checksum") is None or type(spec["checksum"]) is int)
            and isinstance(spec.get("name"), list)
            and all(isinstance(part, str) for part in spec["name"])
        )
        if not ok:
            raise _NotACheckpointError(f"leaf {index}'s description is malformed")
        dtype, stored_as = jnp.dtype(spec["dtype"]), jnp.dtype(spec["stored_as"])
        if dtype != stored_as and (stored_as.kind != "u" or stored_as.itemsize != dtype.itemsize):
            raise _NotACheckpointError(f"leaf {index} ({spec['path']}) has inconsistent dtypes")
    _check_structure(meta["structure"], len(meta["leaves"]))


def _known_dtype(name: Any) -> bool:
    """Whether ``name`` names a numeric or boolean dtype JAX knows."""
    if not isinstance(name, str):
        return False
    try:
        dtype = jnp.dtype(name)
    except TypeError:
        return False
    return bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, np.bool_))


def _check_against_orbax(description: dict[str, Any], stored: Any) -> None:
    """The arrays orbax stored are exactly the described ones, with their shapes and dtypes."""
    stored_flat = {} if stored is None else ocp.tree.to_flat_dict(stored)
    in_orbax = list(filter(_in_orbax, description["leaves"]))
    described = {tuple(spec["name"]): spec for spec in in_orbax}
    if len(described) != len(in_orbax) or set(described) != set(stored_flat):
        extra = sorted(".".join(k) for k in set(stored_flat) - set(described))
        missing = sorted(".".join(k) for k in set(described) - set(stored_flat))
        raise _NotACheckpointError(
            f"the stored arrays differ from the description (stored but not described: "
            f"{_listing(extra)}; described but not stored: {_listing(missing)})"
        )
    for name, spec in described.items():
        array = stored_flat[name]
        shape, dtype = tuple(getattr(array, "shape", ())), getattr(array, "dtype", None)
        if (
            shape != tuple(spec["shape"])
            or dtype is None
            or np.dtype(dtype) != jnp.dtype(spec["stored_as"])
        ):
            raise _NotACheckpointError(
                f"leaf {spec['path']} is stored as {dtype} with shape {shape}, the "
                f"description says {spec['stored_as']} with shape {tuple(spec['shape'])}"
            )


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

    try:
        visit(structure)
    except (KeyError, TypeError, ValueError) as err:
        raise _NotACheckpointError(f"the structure is malformed ({err!r})") from None
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


def _match_like(
    directory: pathlib.Path, specs: list[dict[str, Any]], like_flat: list[tuple[Any, Any]]
) -> list[dict[str, Any]]:
    """The checkpoint's leaf descriptions in ``like``'s order, each checked against it."""
    name = str(directory)
    like_paths = [jax.tree_util.keystr(key_path) for key_path, _ in like_flat]
    file_paths = [spec["path"] for spec in specs]
    if like_paths != file_paths:
        like_set, file_set = set(like_paths), set(file_paths)
        only_file = [p for p in file_paths if p not in like_set]
        only_like = [p for p in like_paths if p not in file_set]
        unique = len(set(file_paths)) == len(file_paths) == len(like_paths)
        if only_file or only_like or not unique:
            raise ValueError(
                f"checkpoint {name!r} does not have the structure of `like`: "
                f"leaves only in the checkpoint: {_listing(only_file)}; "
                f"leaves only in `like`: {_listing(only_like)}"
            )
        # Same leaves in another order (an OrderedDict with reordered keys): match by path.
        position = {p: i for i, p in enumerate(file_paths)}
        specs = [specs[position[p]] for p in like_paths]

    problems = []
    for (key_path, like_leaf), spec in zip(like_flat, specs, strict=True):
        shape, dtype = _shape_dtype(like_leaf)
        where = _where(key_path)
        if tuple(spec["shape"]) != shape:
            problems.append(
                f"{where}: shape {tuple(spec['shape'])} in the checkpoint, {shape} expected"
            )
        if jnp.dtype(spec["dtype"]) != dtype:
            problems.append(f"{where}: dtype {spec['dtype']} in the checkpoint, {dtype} expected")
    if problems:
        raise ValueError(f"checkpoint {name!r} does not match `like`:\n  " + "\n  ".join(problems))
    return specs


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


def _narrowed_by_jax(dtype: np.dtype) -> bool:
    """Whether JAX would narrow ``dtype`` (64-bit types while 64-bit mode is off)."""
    return jax.dtypes.canonicalize_dtype(dtype) != dtype


def _in_orbax(spec: dict[str, Any]) -> bool:
    """Whether orbax holds the leaf (it cannot write empty arrays)."""
    return math.prod(spec["shape"]) > 0


def _target(spec: dict[str, Any], sharding: Any) -> Any:
    """What orbax restores a leaf into: numpy for 64-bit types JAX would narrow and for
    dtypes stored as raw bits, else a JAX array with ``sharding`` (or this process's
    first device)."""
    shape, stored_as = tuple(spec["shape"]), jnp.dtype(spec["stored_as"])
    if _narrowed_by_jax(jnp.dtype(spec["dtype"])) or stored_as != jnp.dtype(spec["dtype"]):
        return np.empty(shape, stored_as)
    return jax.ShapeDtypeStruct(shape, stored_as, sharding=sharding or _default_sharding())


def _default_sharding() -> jax.sharding.Sharding:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def _restore(found: _Found, targets: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], Any]:
    """Orbax's restore of the arrays, by name; a failure (corrupt data) is a ValueError."""
    names = list(ocp.tree.to_flat_dict(found.stored))
    target = jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(found.stored), [targets[name] for name in names]
    )
    try:
        with _reader() as reader:
            restored = reader.restore(
                found.directory / str(found.step),
                args=ocp.args.Composite(**{_STATE: ocp.args.StandardRestore(target)}),
            )
    except Exception as err:  # tensorstore reports corrupt data in many ways
        raise _not_readable(found.directory, f"{type(err).__name__}: {err}") from err
    return ocp.tree.to_flat_dict(restored[_STATE])


def _from_stored(leaf: Any, spec: dict[str, Any], sharding: Any) -> Any:
    """A restored leaf with its logical dtype: raw bits viewed as float8, ..., and put
    on ``sharding`` (numpy only for 64-bit types JAX would narrow)."""
    dtype = jnp.dtype(spec["dtype"])
    if isinstance(leaf, jax.ShapeDtypeStruct):  # an empty array
        leaf = np.empty(leaf.shape, leaf.dtype)
    elif np.dtype(leaf.dtype) == dtype:
        return leaf
    leaf = np.asarray(leaf).view(dtype)
    if _narrowed_by_jax(dtype):
        return leaf
    return jax.device_put(leaf, sharding or _default_sharding())
