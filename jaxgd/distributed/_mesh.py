"""Meshes, processes and the placement of a run's arrays (see :mod:`jaxgd.distributed`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "MeshGather",
    "auto_mesh",
    "data_axis",
    "data_mesh",
    "initialize",
    "place_run",
    "process_rows",
    "replicate",
    "shard_data",
]

DATA_AXIS = "data"
"""The name :func:`data_mesh` gives the data axis (and the axis a mesh run looks for)."""

_ENV_COORDINATOR = "JAXGD_COORDINATOR"
_ENV_NUM_PROCESSES = "JAXGD_NUM_PROCESSES"
_ENV_PROCESS_ID = "JAXGD_PROCESS_ID"
_ENV_CPU_DEVICES = "JAXGD_CPU_DEVICES"


# --------------------------------------------------------------------------- #
# Meshes and processes
# --------------------------------------------------------------------------- #


def data_mesh(devices: Sequence[jax.Device] | None = None, *, axis_name: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process).

    The devices keep ``jax.devices()`` order, which groups them by process, so
    process ``p``'s rows come before process ``p + 1``'s in the global data.

    Args:
        devices: the devices to span; None for ``jax.devices()``.
        axis_name: the name of the mesh axis.

    Returns:
        A :class:`jax.sharding.Mesh` with the single axis ``axis_name``.

    Example:
        >>> import jax, jaxgd as gd
        >>> mesh = gd.distributed.data_mesh()
        >>> mesh.axis_names, mesh.devices.size == jax.device_count()
        (('data',), True)
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh: devices is empty; pass None for every device.")
    return Mesh(np.asarray(devices, dtype=object), (axis_name,))


def data_axis(mesh: Mesh) -> str:
    """The mesh axis the data's examples are split over.

    It is the axis named ``"data"``, or the only axis of a 1-D mesh.

    Example:
        >>> import jaxgd as gd
        >>> gd.distributed.data_axis(gd.distributed.data_mesh(axis_name="batch"))
        'batch'
    """
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"mesh must be a jax.sharding.Mesh (e.g. gd.distributed.data_mesh()), got {mesh!r}."
        )
    if DATA_AXIS in mesh.axis_names:
        return DATA_AXIS
    if len(mesh.axis_names) == 1:
        return mesh.axis_names[0]
    raise ValueError(
        f"mesh has axes {mesh.axis_names}; name the one the data is split over {DATA_AXIS!r} "
        "(e.g. jax.make_mesh((4, 2), ('data', 'model')))."
    )


def initialize(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    cpu_devices: int | None = None,
    **kwargs: Any,
) -> None:
    """Join this process to a multi-process run (call it before any other JAX call).

    Selects the gloo collectives for the CPU backend (harmless on GPU and TPU,
    which bring their own), optionally sets the number of CPU devices this
    process exposes, and calls :func:`jax.distributed.initialize`. Arguments
    left as None are read from the ``JAXGD_COORDINATOR``,
    ``JAXGD_NUM_PROCESSES``, ``JAXGD_PROCESS_ID`` and ``JAXGD_CPU_DEVICES``
    environment variables (which :func:`jaxgd.distributed._launch.launch_local` sets), and failing that
    left to JAX's cluster detection (SLURM, Open MPI, TPU pods, ...).

    Args:
        coordinator_address: ``"host:port"`` of process 0's coordinator.
        num_processes: how many processes join.
        process_id: this process's rank, from 0.
        cpu_devices: how many CPU devices this process exposes (the
            ``jax_num_cpu_devices`` option); None leaves JAX's default.
        **kwargs: passed to :func:`jax.distributed.initialize` (e.g.
            ``initialization_timeout``).
    """
    env = os.environ
    if coordinator_address is None:
        coordinator_address = env.get(_ENV_COORDINATOR)
    if num_processes is None and _ENV_NUM_PROCESSES in env:
        num_processes = int(env[_ENV_NUM_PROCESSES])
    if process_id is None and _ENV_PROCESS_ID in env:
        process_id = int(env[_ENV_PROCESS_ID])
    if cpu_devices is None and _ENV_CPU_DEVICES in env:
        cpu_devices = int(env[_ENV_CPU_DEVICES])
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    if cpu_devices is not None:
        jax.config.update("jax_num_cpu_devices", int(cpu_devices))
    jax.distributed.initialize(
        coordinator_address=coordinator_address,
        num_processes=num_processes,
        process_id=process_id,
        **kwargs,
    )


def process_rows(n_examples: int, mesh: Mesh) -> slice:
    """The rows of an ``n_examples``-row data set that this process passes.

    In a multi-process run every process passes ``data[process_rows(n, mesh)]``
    (of the same global data set, or just those rows read from its own shard
    of the files); in a single process that is all of it.

    Example:
        >>> import jaxgd as gd
        >>> gd.distributed.process_rows(8, gd.distributed.data_mesh())  # one process: all rows
        slice(0, 8, None)
    """
    axis = data_axis(mesh)
    size = mesh.shape[axis]
    if n_examples % size:
        raise ValueError(_divisibility_message("the number of examples", n_examples, size))
    devices = np.moveaxis(mesh.devices, mesh.axis_names.index(axis), 0).reshape(size, -1)
    me = jax.process_index()
    mine = [i for i in range(size) if any(d.process_index == me for d in devices[i])]
    if not mine or mine != list(range(mine[0], mine[-1] + 1)):
        raise ValueError(
            f"process {jax.process_index()} holds data positions {mine} of the mesh's "
            f"{axis!r} axis; they must be one contiguous block. Build the mesh with "
            "gd.distributed.data_mesh()."
        )
    per = n_examples // size
    return slice(mine[0] * per, (mine[-1] + 1) * per)


# --------------------------------------------------------------------------- #
# Placing arrays on the mesh
# --------------------------------------------------------------------------- #


def _divisibility_message(what: str, value: int, size: int) -> str:
    return (
        f"minimize(mesh=...): {what} ({value}) must divide by the mesh's data axis size "
        f"({size}) so that every device holds the same number of rows; use "
        f"{value - value % size} (drop {value % size}) or a mesh whose size divides {value}."
    )


def shard_data(data: Any, mesh: Mesh, *, whole: bool = False) -> Any:
    """Global arrays of ``data`` split over the mesh's data axis.

    In one process ``data`` is the whole data set. In several processes it is
    this process's rows (:func:`process_rows`), or, with ``whole=True``, the
    whole data set, held by every process, of which each contributes its own
    rows. The global array is assembled with
    :func:`jax.make_array_from_process_local_data`. Arrays that are already
    global (spanning other processes) are resharded if needed.
    ``minimize(mesh=...)`` calls this itself; call it once beforehand to keep
    the data on the devices across many runs.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> x = gd.distributed.shard_data(jnp.ones((8, 3)), gd.distributed.data_mesh())
        >>> x.shape, x.sharding.spec
        ((8, 3), P('data',))
    """
    axis = data_axis(mesh)
    sharding = NamedSharding(mesh, P(axis))
    size = mesh.shape[axis]

    def place(path, leaf):
        where = f"data{jax.tree_util.keystr(path)}"
        if isinstance(leaf, jax.core.Tracer):
            return jax.lax.with_sharding_constraint(leaf, sharding)
        if np.ndim(leaf) == 0:
            raise ValueError(
                f"minimize: {where} is a scalar; every data array needs a leading example axis."
            )
        if jax.process_count() == 1 or (
            isinstance(leaf, jax.Array) and not leaf.is_fully_addressable
        ):
            if np.shape(leaf)[0] % size:
                raise ValueError(_divisibility_message(f"{where}'s rows", np.shape(leaf)[0], size))
            return jax.device_put(leaf, sharding)
        local = np.asarray(leaf)
        if whole:
            local = local[process_rows(local.shape[0], mesh)]
        local_size = len(sharding.addressable_devices) // max(1, mesh.devices.size // size)
        if local_size and local.shape[0] % local_size:
            raise ValueError(
                f"minimize: this process's {where} has {local.shape[0]} rows, which does not "
                f"divide by its {local_size} data positions on the mesh; every process passes "
                "data[gd.distributed.process_rows(n, mesh)]."
            )
        return jax.make_array_from_process_local_data(sharding, local)

    return jax.tree_util.tree_map_with_path(place, data)


def replicate(tree: Any, mesh: Mesh) -> Any:
    """Every array leaf of ``tree`` as one global array replicated over ``mesh``.

    Python numbers stay as they are. In a multi-process run every process
    must pass the same values.

    Example:
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


def auto_mesh(mesh: Mesh) -> Mesh:
    """``mesh`` with every axis of type Auto (what the compiled loop shards with).

    ``jax.make_mesh`` makes Explicit axes in current JAX, which
    ``with_sharding_constraint`` refuses; the same devices and names as Auto
    axes give the same placement.
    """
    axis_types = getattr(mesh, "axis_types", None)
    auto = getattr(jax.sharding, "AxisType", None)
    if axis_types is None or auto is None or all(t == auto.Auto for t in axis_types):
        return mesh
    return Mesh(mesh.devices, mesh.axis_names, axis_types=(auto.Auto,) * len(mesh.axis_names))


def place_run(
    mesh: Mesh, n_examples: int, batch_size: int | None, replicated: Any
) -> tuple[Any, Callable[[Any, jax.Array], Any]]:
    """``minimize(mesh=...)``'s placement, once the data is split (:func:`shard_data`):
    ``(replicated, gather)``.

    Every leaf of ``replicated`` (params, key, hyperparameters, the loss's
    traced values) is replicated on the mesh, and ``gather`` is the minibatch
    gather the compiled loop is handed (:class:`MeshGather`) for the
    ``n_examples`` global rows.
    """
    mesh = auto_mesh(mesh)
    size = mesh.shape[data_axis(mesh)]
    if batch_size is not None and batch_size % size:
        raise ValueError(_divisibility_message("batch_size", batch_size, size))
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


if __name__ == "__main__":  # pragma: no cover - a pointer, not an entry point
    sys.exit("See examples/multiprocess_compare.py for a multi-process run.")
