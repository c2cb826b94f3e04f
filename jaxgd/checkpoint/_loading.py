"""Loading a checkpoint: found, checked against its description and ``like``,
restored, and its checksums verified (see :func:`load`).
"""

from __future__ import annotations

import os
import pathlib
from typing import TYPE_CHECKING, Any, NamedTuple

import jax

from jaxgd.checkpoint._checksums import checksum
from jaxgd.checkpoint._description import (
    NotACheckpointError,
    check_against_orbax,
    check_description,
    decode_structure,
    listing,
    stored_by_orbax,
)
from jaxgd.checkpoint._layout import DESCRIPTION, STATE, directory_of, latest_step, orbax_reader
from jaxgd.checkpoint._leaves import (
    describe_path,
    from_stored,
    logical_shape_dtype,
    restore_target,
    shape_dtype,
    sharding_of,
)

if TYPE_CHECKING:
    pass

__all__ = ["load", "load_metadata"]


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
    :class:`numpy.ndarray` (see :mod:`jaxgd.checkpoint._leaves`). Typed PRNG keys come
    back as keys of the implementation they were saved with, bit for bit.

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

    Examples:
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
        decoded = decode_structure(found.description["structure"], list(range(len(specs))))
        indices, treedef = jax.tree_util.tree_flatten(decoded)
        chosen = [specs[i] for i in indices]
        shardings = [None] * len(chosen)
    else:
        like_flat, treedef = jax.tree_util.tree_flatten_with_path(like)
        chosen = _match_like(found.directory, specs, like_flat)
        shardings = [sharding_of(leaf) for _, leaf in like_flat]
    targets = {
        tuple(spec["name"]): restore_target(spec, sharding)
        for spec, sharding in zip(chosen, shardings, strict=True)
        if stored_by_orbax(spec)
    }
    restored = _restore(found, targets) if targets else {}
    _verify_checksums(found.directory, chosen, restored)
    leaves = [
        from_stored(
            restored[tuple(spec["name"])] if stored_by_orbax(spec) else restore_target(spec, None),
            spec,
            sharding,
        )
        for spec, sharding in zip(chosen, shardings, strict=True)
    ]
    return jax.tree_util.tree_unflatten(treedef, leaves)


def _verify_checksums(directory: pathlib.Path, specs: list[dict], restored: dict) -> None:
    """Each restored leaf's bytes have the checksum its save recorded."""
    for spec in filter(stored_by_orbax, specs):
        expected = spec.get("checksum")
        if expected is not None and checksum(restored[tuple(spec["name"])]) != expected:
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

    Examples:
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
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    directory = directory_of(path)
    if not directory.exists():
        raise FileNotFoundError(f"no checkpoint at {str(directory)!r}")
    if not directory.is_dir():
        raise _not_readable(
            directory,
            "it is a file, and jaxgd checkpoints are directories (a checkpoint of the older "
            ".npz format cannot be read)",
        )
    step = latest_step(directory)
    if step is None:
        raise _not_readable(directory, "it holds no finished save")
    try:
        if not (directory / str(step) / DESCRIPTION).is_dir():
            raise NotACheckpointError(f"save {step} has no jaxgd description (plain orbax?)")
        with orbax_reader() as reader:
            restored = reader.restore(
                directory / str(step),
                args=ocp.args.Composite(**{DESCRIPTION: ocp.args.JsonRestore()}),
            )
            description = restored[DESCRIPTION]
            check_description(description)
            stored = None
            if any(map(stored_by_orbax, description["leaves"])):
                metadata = reader.metadata(directory / str(step)).item_metadata[STATE]
                if metadata is None:
                    raise NotACheckpointError(f"save {step} has no arrays")
                stored = getattr(metadata, "tree", metadata)
        check_against_orbax(description, stored)
    except NotACheckpointError as err:
        raise _not_readable(directory, str(err)) from None
    except Exception as err:  # orbax, tensorstore and json raise many kinds
        raise _not_readable(directory, f"{type(err).__name__}: {err}") from err
    return _Found(directory, step, description, stored)


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
                f"leaves only in the checkpoint: {listing(only_file)}; "
                f"leaves only in `like`: {listing(only_like)}"
            )
        # Same leaves in another order (an OrderedDict with reordered keys): match by path.
        position = {p: i for i, p in enumerate(file_paths)}
        specs = [specs[position[p]] for p in like_paths]

    problems = []
    for (key_path, like_leaf), spec in zip(like_flat, specs, strict=True):
        shape, dtype = shape_dtype(like_leaf)
        where = describe_path(key_path)
        saved_shape, saved_dtype = logical_shape_dtype(spec)  # a key's, for a typed key
        if saved_shape != shape:
            problems.append(f"{where}: shape {saved_shape} in the checkpoint, {shape} expected")
        if saved_dtype != dtype:
            problems.append(f"{where}: dtype {saved_dtype} in the checkpoint, {dtype} expected")
    if problems:
        raise ValueError(f"checkpoint {name!r} does not match `like`:\n  " + "\n  ".join(problems))
    return specs


def _restore(found: _Found, targets: dict[tuple[str, ...], Any]) -> dict[tuple[str, ...], Any]:
    """Orbax's restore of the arrays, by name; a failure (corrupt data) is a ValueError."""
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    names = list(ocp.tree.to_flat_dict(found.stored))
    target = jax.tree_util.tree_unflatten(
        jax.tree_util.tree_structure(found.stored), [targets[name] for name in names]
    )
    try:
        with orbax_reader() as reader:
            restored = reader.restore(
                found.directory / str(found.step),
                args=ocp.args.Composite(**{STATE: ocp.args.StandardRestore(target)}),
            )
    except Exception as err:  # tensorstore reports corrupt data in many ways
        raise _not_readable(found.directory, f"{type(err).__name__}: {err}") from err
    return ocp.tree.to_flat_dict(restored[STATE])
