"""Meshes and processes: the data axis, joining a multi-process run, and each
process's rows (see :mod:`jaxgd.distributed`)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

__all__ = [
    "DATA_AXIS",
    "RUNS_AXIS",
    "auto_mesh",
    "data_axis",
    "data_mesh",
    "divisibility_message",
    "initialize",
    "process_rows",
    "expose_cpu_devices",
    "runs_mesh",
    "runs_mesh_for",
    "split_runs",
]

DATA_AXIS = "data"
"""The name :func:`data_mesh` gives the data axis (and the axis a mesh run looks for)."""

RUNS_AXIS = "runs"
"""The mesh axis :func:`jaxgd.compare` shards its independent runs over (:func:`runs_mesh`)."""

ENV_COORDINATOR = "JAXGD_COORDINATOR"
ENV_NUM_PROCESSES = "JAXGD_NUM_PROCESSES"
ENV_PROCESS_ID = "JAXGD_PROCESS_ID"
ENV_CPU_DEVICES = "JAXGD_CPU_DEVICES"


def data_mesh(devices: Sequence[jax.Device] | None = None, *, axis_name: str = DATA_AXIS) -> Mesh:
    """A 1-D mesh over ``devices`` (default: every device of every process).

    The devices keep ``jax.devices()`` order, which groups them by process, so
    process ``p``'s rows come before process ``p + 1``'s in the global data.

    Args:
        devices: the devices to span; None for ``jax.devices()``.
        axis_name: the name of the mesh axis.

    Returns:
        A :class:`jax.sharding.Mesh` with the single axis ``axis_name``.

    Examples:
        >>> import jax, jaxgd as gd
        >>> mesh = gd.distributed.data_mesh()
        >>> mesh.axis_names, mesh.devices.size == jax.device_count()
        (('data',), True)
    """
    devices = jax.devices() if devices is None else list(devices)
    if not devices:
        raise ValueError("data_mesh: devices is empty; pass None for every device.")
    return Mesh(np.asarray(devices, dtype=object), (axis_name,))


def runs_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
    """A 1-D mesh named ``"runs"`` over ``devices`` (default: every device):
    ``gd.compare(..., mesh=runs_mesh())`` shards its learning-rate x seed runs
    over them, each device running its share with no communication.

    Examples:
        >>> import jaxgd as gd
        >>> gd.distributed.runs_mesh().axis_names
        ('runs',)
    """
    return data_mesh(devices, axis_name=RUNS_AXIS)


def expose_cpu_devices(count: int | None = None) -> int:
    """Expose ``count`` CPU devices (default: this process's cores), before JAX starts
    its backends; returns the count set, or 0 where it was left alone.

    A CPU device runs a small program on one thread; two devices run two halves
    of a sweep at once (:func:`runs_mesh`). This sets JAX's
    ``jax_num_cpu_devices`` option, not ``XLA_FLAGS`` (which JAX's compilation
    cache keys on), and leaves everything alone where the user set
    ``XLA_FLAGS`` or ``jax_num_cpu_devices``, or JAX has already started.

    Examples:
        >>> expose_cpu_devices(2) in (0, 2)
        True
    """
    from jax._src import xla_bridge

    if "XLA_FLAGS" in os.environ or xla_bridge.backends_are_initialized():
        return 0
    if jax.config.jax_num_cpu_devices not in (-1, None):  # the user's own choice
        return 0
    if count is None:
        count = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    count = max(1, int(count or 1))
    jax.config.update("jax_num_cpu_devices", count)
    return count


def runs_mesh_for(devices: int | None, fewest: int, caller: str = "devices") -> Mesh | None:
    """The ``runs`` mesh for ``devices`` devices (None: every device on a CPU-only
    machine, one elsewhere), never wider than ``fewest`` runs; None for one device.

    Examples:
        >>> runs_mesh_for(1, 10) is None
        True
    """
    if devices is not None and devices < 1:
        raise ValueError(f"{caller} must be >= 1 (1 for one device), got {devices}.")
    available = jax.devices()
    if devices is None:
        devices = len(available) if jax.default_backend() == "cpu" else 1
    if devices > len(available):
        raise ValueError(
            f"{caller} {devices}: this process has {len(available)} {jax.default_backend()} "
            f"devices; use {caller} {len(available)} or fewer."
        )
    n = min(devices, fewest)
    return runs_mesh(available[:n]) if n > 1 else None


def split_runs(mesh: Mesh | None, caller: str = "compare") -> tuple[int, Mesh | None]:
    """``(devices on the runs axis, the mesh minimize splits the data over or None)``.

    A mesh's ``"runs"`` axis shards independent runs; its ``"data"`` axis keeps
    ``minimize(mesh=...)``'s meaning (examples split, gradients all-reduced); a
    2-D ``("runs", "data")`` mesh does both. A mesh with neither is refused.

    Examples:
        >>> import jaxgd as gd
        >>> split_runs(gd.distributed.runs_mesh())[1] is None
        True
    """
    if mesh is None:
        return 1, None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"{caller}: mesh must be a jax.sharding.Mesh (e.g. gd.distributed.runs_mesh()), "
            f"got {mesh!r}."
        )
    names = mesh.axis_names
    if RUNS_AXIS not in names and DATA_AXIS not in names:
        raise ValueError(
            f"{caller}: mesh has axes {names}, neither {RUNS_AXIS!r} nor {DATA_AXIS!r}; name an "
            f"axis {RUNS_AXIS!r} to shard the runs (gd.distributed.runs_mesh()) or {DATA_AXIS!r} "
            "to split each run's data (gd.distributed.data_mesh())."
        )
    runs = mesh.shape[RUNS_AXIS] if RUNS_AXIS in names else 1
    return runs, (mesh if DATA_AXIS in names else None)


def data_axis(mesh: Mesh) -> str:
    """The mesh axis the data's examples are split over.

    It is the axis named ``"data"``, or the only axis of a 1-D mesh.

    Examples:
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
    environment variables (which :func:`launch_local` sets), and failing
    that left to JAX's cluster detection (SLURM, Open MPI, TPU pods, ...).

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
        coordinator_address = env.get(ENV_COORDINATOR)
    if num_processes is None and ENV_NUM_PROCESSES in env:
        num_processes = int(env[ENV_NUM_PROCESSES])
    if process_id is None and ENV_PROCESS_ID in env:
        process_id = int(env[ENV_PROCESS_ID])
    if cpu_devices is None and ENV_CPU_DEVICES in env:
        cpu_devices = int(env[ENV_CPU_DEVICES])
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

    Examples:
        >>> import jaxgd as gd
        >>> gd.distributed.process_rows(8, gd.distributed.data_mesh())  # one process: all rows
        slice(0, 8, None)
    """
    axis = data_axis(mesh)
    size = mesh.shape[axis]
    if n_examples % size:
        raise ValueError(
            divisibility_message("process_rows", "the number of examples", n_examples, size)
        )
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


def divisibility_message(caller: str, what: str, value: int, size: int) -> str:
    """The error for ``what`` (``value``) not dividing by the data axis size, naming ``caller``."""
    return (
        f"{caller}: {what} ({value}) must divide by the mesh's data axis size "
        f"({size}) so that every device holds the same number of rows; use "
        f"{value - value % size} (drop {value % size}) or a mesh whose size divides {value}."
    )


if __name__ == "__main__":  # pragma: no cover - a pointer, not an entry point
    sys.exit("See examples/multiprocess_compare.py for a multi-process run.")
