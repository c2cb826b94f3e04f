"""Saving a pytree to a checkpoint directory, atomically (see :func:`save`)."""

from __future__ import annotations

import contextlib
import json
import os
import pathlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import jax
import jax.numpy as jnp

from jaxgd.checkpoint._checksums import checksum
from jaxgd.checkpoint._collective import agree
from jaxgd.checkpoint._description import FORMAT, KEYS_VERSION, VERSION, encode_structure
from jaxgd.checkpoint._layout import (
    DESCRIPTION,
    STATE,
    claim,
    directory_of,
    orbax_manager,
    path_problem,
    remove_interrupted,
)
from jaxgd.checkpoint._leaves import describe_path, key_parts, storable
from jaxgd.checkpoint._locking import held_here, lock

if TYPE_CHECKING:
    pass

__all__ = ["save"]

_ROOT = "array"  # orbax's name for a tree that is a single array


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

    A save made inside a :func:`lock` block of ``path`` (by the thread that entered it)
    is the run's own; any other save takes the lock for the time of its write, so a
    save to the checkpoint of a live run (``minimize(checkpoint=path)`` in another
    process, or in another thread of this one) is refused, and the run's state stays
    as the run wrote it. The checkpoint of a finished run is nobody's: a save replaces
    it (and ``minimize`` then refuses to resume from it, as the checkpoint of another
    run).

    Args:
        path: The checkpoint directory; created if it does not exist (its folder must).
        tree: Any pytree (nested dicts, lists, tuples, NamedTuples, ``None``, or other
            registered nodes) whose leaves are JAX or numpy arrays or Python scalars.
            JAX arrays may be sharded over devices and processes; typed PRNG keys
            (``jax.random.key``, of any registered implementation) come back as the
            same keys.
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
        CheckpointInUseError: A live run holds ``path``'s lock (another process's, or
            another thread's of this process); the message names its process. It is a
            :class:`ValueError`. Nothing is written.
        OSError: Writing failed (the message names the path).

    Examples:
        >>> import os, tempfile
        >>> import jax.numpy as jnp
        >>> from jaxgd import checkpoint
        >>> params = {"w": jnp.arange(3.0), "b": jnp.zeros(())}
        >>> path = checkpoint.save(os.path.join(tempfile.mkdtemp(), "params.ckpt"), params)
        >>> checkpoint.load(path, like=params)["w"]
        Array([0., 1., 2.], dtype=float32)
    """
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    meta_json = _metadata_json(metadata)
    flat, treedef = jax.tree_util.tree_flatten_with_path(tree)
    stored, leaf_specs = [], []
    for key_path, leaf in flat:
        where = describe_path(key_path)
        data, key = key_parts(leaf, where)
        array, stored_as = storable(data, where)
        stored.append(array)
        leaf_specs.append(
            {
                "path": jax.tree_util.keystr(key_path),
                "dtype": jnp.dtype(array.dtype if stored_as is None else stored_as).name,
                "stored_as": array.dtype.name,
                "shape": list(array.shape),
                "checksum": checksum(array),
                **({} if key is None else {"key": key}),
            }
        )
    description = {
        "format": FORMAT,
        "version": KEYS_VERSION if any("key" in spec for spec in leaf_specs) else VERSION,
        "structure": encode_structure(treedef, iter(range(len(flat))), ""),
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
    items = {DESCRIPTION: ocp.args.JsonSave(description)}
    if any(a.size for a in stored):
        items[STATE] = ocp.args.StandardSave(state)
    # A run's own save writes under its lock; any other takes the lock for its write,
    # and so is refused while a live run (or another thread of this process) holds it.
    # (Outside the try: a refused save must not remove the live run's save in progress.)
    with contextlib.nullcontext() if held_here(directory) else lock(directory):
        try:
            with orbax_manager(directory) as manager:
                step = agree(-1 if (latest := manager.latest_step()) is None else latest) + 1
                manager.save(step, args=ocp.args.Composite(**items), force=True)
        except BaseException:  # a full disk, Ctrl-C: no half-written save is left behind
            remove_interrupted(directory)
            raise
    return directory


def _directory_for_writing(path: str | os.PathLike[str]) -> pathlib.Path:
    """Checks ``path`` and creates the directory; an OSError names the path."""
    directory = directory_of(path)
    problem = path_problem(directory)
    if problem is not None:
        kind, message = problem
        if kind is ValueError:
            raise ValueError(message)
        raise kind(f"cannot write checkpoint {str(directory)!r}: {message}")
    if jax.process_index() == 0:
        try:
            claim(directory)
        except OSError as err:
            raise type(err)(
                f"cannot write checkpoint {str(directory)!r}: {err.strerror or err}; check "
                "that its folder exists and is writable"
            ) from err
    return directory


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


def _orbax_names(flat: list[tuple[Any, Any]]) -> list[tuple[str, ...]]:
    """The names orbax gives the leaves (their keys as strings), checked to be distinct:
    ``{1: .., "1": ..}`` would collide."""
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    names = [ocp.tree.str_keypath(key_path) or (_ROOT,) for key_path, _ in flat]
    seen: set[tuple[str, ...]] = set()
    for (key_path, _), name in zip(flat, names, strict=True):
        if name in seen:
            raise TypeError(
                f"leaf {describe_path(key_path)} has the same name as another leaf once its keys "
                "are written as strings; use keys that differ as strings"
            )
        seen.add(name)
    return names
