"""Placing a run's arrays on a mesh: the data split over the data axis, the rest
replicated, and the minibatch gather that stays on each device (see
:mod:`jaxgd.distributed`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from jaxgd.distributed._mesh import (
    RUNS_AXIS,
    auto_mesh,
    data_axis,
    divisibility_message,
    process_rows,
)

__all__ = ["MeshGather", "mesh_context", "place_run", "replicate", "shard_data", "vmap_runs"]


def mesh_context(mesh: Any) -> contextlib.AbstractContextManager:
    """The context a run on ``mesh`` is placed and compiled in.

    Inside a ``jax.set_mesh`` context, JAX checks every operation against the
    context's mesh; a run places its arrays on the Auto-axes twin of ``mesh``
    (:func:`auto_mesh`), so a context of Explicit axes would refuse them. The
    run then sets that twin as the context for itself (the same devices and
    names); outside any context, or without a mesh, nothing changes.
    """
    get = getattr(jax.sharding, "get_abstract_mesh", None)
    if not isinstance(mesh, Mesh) or get is None or get().empty:
        return contextlib.nullcontext()
    return jax.set_mesh(auto_mesh(mesh))


def shard_data(
    data: Any, mesh: Mesh, *, whole: bool = False, caller: str = "shard_data", name: str = "data"
) -> Any:
    """Global arrays of ``data`` split over the mesh's data axis.

    In one process ``data`` is the whole data set. In several processes it is
    this process's rows (:func:`process_rows`), or, with ``whole=True``, the
    whole data set, held by every process, of which each contributes its own
    rows. The global array is assembled with
    :func:`jax.make_array_from_process_local_data`. Arrays that are already
    global (spanning other processes) are resharded if needed.
    ``minimize(mesh=...)`` calls this itself; call it once beforehand to keep
    the data on the devices across many runs.

    Args:
        data: a pytree of arrays with a leading example axis.
        mesh: the mesh; its data axis (:func:`data_axis`) splits the examples.
        whole: in several processes, ``data`` is the whole data set, not
            this process's rows.
        caller: the function the user called, named in error messages
            (``minimize`` passes its own name).
        name: the argument ``data`` was passed as, named in error messages
            (``minimize`` splits its ``eval_data`` too).

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> x = gd.distributed.shard_data(jnp.ones((8, 3)), gd.distributed.data_mesh())
        >>> x.shape, x.sharding.spec
        ((8, 3), P('data',))
    """
    axis = data_axis(mesh)
    sharding = NamedSharding(mesh, P(axis))
    size = mesh.shape[axis]

    def place(path, leaf):
        where = f"{name}{jax.tree_util.keystr(path)}"
        if isinstance(leaf, jax.core.Tracer):
            return jax.lax.with_sharding_constraint(leaf, sharding)
        if np.ndim(leaf) == 0:
            raise ValueError(
                f"{caller}: {where} is a scalar; every data array needs a leading example axis."
            )
        if jax.process_count() == 1 or (
            isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
        ):
            if np.shape(leaf)[0] % size:
                rows = np.shape(leaf)[0]
                raise ValueError(divisibility_message(caller, f"{where}'s rows", rows, size))
            return jax.device_put(leaf, sharding)
        local = np.asarray(leaf)
        if whole:
            local = local[process_rows(local.shape[0], mesh)]
        local_size = len(sharding.addressable_devices) // max(1, mesh.devices.size // size)
        if local_size and local.shape[0] % local_size:
            raise ValueError(
                f"{caller}: this process's {where} has {local.shape[0]} rows, which does not "
                f"divide by its {local_size} data positions on the mesh; every process passes "
                f"{name}[gd.distributed.process_rows(n, mesh)]."
            )
        return jax.make_array_from_process_local_data(sharding, local)

    return jax.tree_util.tree_map_with_path(place, data)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` as one global array replicated over ``mesh``.

    Python numbers stay as they are. In a multi-process run every process
    must pass the same values.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> w = gd.distributed.replicate(jnp.zeros(3), gd.distributed.data_mesh())
        >>> w.sharding.is_fully_replicated
        True
    """
    sharding = NamedSharding(mesh, P())

    def place(leaf):
        if isinstance(leaf, jax.core.Tracer):
            return leaf
        if isinstance(leaf, jax.Array | np.ndarray | np.generic):
            return jax.device_put(leaf, sharding)
        return leaf

    return jax.tree.map(place, tree)


def place_run(
    mesh: Mesh,
    n_examples: int,
    batch_size: int | None,
    replicated: Any,
    *,
    caller: str = "place_run",
) -> tuple[Any, Callable[[Any, jax.Array], Any]]:
    """``minimize(mesh=...)``'s placement, once the data is split (:func:`shard_data`):
    ``(replicated, gather)``.

    Every leaf of ``replicated`` (params, key, hyperparameters, the loss's
    traced values) is replicated on the mesh, and ``gather`` is the minibatch
    gather the compiled loop is handed (:class:`MeshGather`) for the
    ``n_examples`` global rows. ``caller`` is the function the user called,
    named in error messages.
    """
    mesh = auto_mesh(mesh)
    size = mesh.shape[data_axis(mesh)]
    if batch_size is not None and batch_size % size:
        raise ValueError(divisibility_message(caller, "batch_size", batch_size, size))
    return replicate(replicated, mesh), MeshGather(mesh, n_examples)


@dataclass(frozen=True)
class MeshGather:
    """The minibatch gather of a mesh run: rows gathered on the devices that own them.

    Called as ``gather(data, rows)`` with the global row numbers ``rows``
    (shape ``(b,)``) from :func:`jaxgd.run._batches.batch_indices`: position
    ``j`` is a row of stratum ``j``, so positions ``d * b / D`` to
    ``(d + 1) * b / D - 1`` are rows of device ``d``. Each data array is viewed
    as ``(D, n / D, ...)`` and gathered with a gather batched over the leading
    device axis; the result is the same ``(b, ...)`` array a one-device
    ``jnp.take(data, rows, axis=0)`` gives, split over the devices, with no
    communication (see the module docstring for how that was checked).
    Hashable: it is part of the compiled loop's static description.
    """

    mesh: Mesh
    n_examples: int

    def __call__(self, data: Any, rows: jax.Array) -> Any:
        axis = data_axis(self.mesh)
        size = self.mesh.shape[axis]
        batch_size = rows.shape[0]
        per_device = self.n_examples // size
        split = NamedSharding(self.mesh, P(axis))
        offsets = (jnp.arange(size, dtype=rows.dtype) * per_device)[:, None]
        local_rows = rows.reshape(size, batch_size // size) - offsets
        local_rows = jax.lax.with_sharding_constraint(local_rows, split)

        def gather(a):
            blocks = a.reshape(size, per_device, *a.shape[1:])
            blocks = jax.lax.with_sharding_constraint(blocks, split)
            picked = jax.vmap(lambda block, r: jnp.take(block, r, axis=0))(blocks, local_rows)
            return jax.lax.with_sharding_constraint(picked.reshape(batch_size, *a.shape[1:]), split)

        return jax.tree.map(gather, data)


def vmap_runs(one: Callable, rates: Any, keys: Any, mesh: Mesh | None) -> Any:
    """``one(rate, key)`` over every ``(rate, seed)`` slot: ``rates`` ``(R,)``, ``keys``
    ``(R, S, ...)``; outputs ``(R, S, ...)``. With a mesh that has a ``"runs"``
    axis of ``D`` devices the slots are sharded over it, each device running its
    share with no communication: the seed axis where ``S`` divides by ``D`` and
    ``R`` does not, else the rate axis, padded to a multiple of ``D`` with
    copies of the last rate (their runs are dropped). Each run computes what it
    computes on one device (``jax.vmap``'s ``spmd_axis_name`` also shards the
    run's own data-axis constraints on a 2-D ``("runs", "data")`` mesh)."""
    size = 1 if mesh is None or RUNS_AXIS not in mesh.axis_names else mesh.shape[RUNS_AXIS]
    if size == 1:
        return jax.vmap(jax.vmap(one, in_axes=(None, 0)))(rates, keys)
    mesh = auto_mesh(mesh)
    n_rates, n_seeds = keys.shape[:2]
    if n_seeds % size == 0 and n_rates % size:
        keys = jax.lax.with_sharding_constraint(keys, NamedSharding(mesh, P(None, RUNS_AXIS)))
        inner = jax.vmap(one, in_axes=(None, 0), spmd_axis_name=RUNS_AXIS)
        return jax.vmap(inner)(rates, keys)
    pad = -n_rates % size
    if pad:
        rates = jnp.concatenate([rates, jnp.repeat(rates[-1:], pad)])
        keys = jnp.concatenate([keys, jnp.repeat(keys[-1:], pad, axis=0)])
    split = NamedSharding(mesh, P(RUNS_AXIS))
    rates = jax.lax.with_sharding_constraint(rates, split)
    keys = jax.lax.with_sharding_constraint(keys, split)
    outer = jax.vmap(jax.vmap(one, in_axes=(None, 0)), spmd_axis_name=RUNS_AXIS)
    return jax.tree.map(lambda a: a[:n_rates], outer(rates, keys))
