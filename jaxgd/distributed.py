"""Data-parallel runs over a device mesh and over several processes.

``gd.minimize(..., mesh=mesh)`` splits the data's leading (example) axis over
the mesh's data axis, replicates the params and the optimizer state on every
device, and runs the same compiled loop as a one-device run. Several
processes (several machines, or several local processes) join with
:func:`initialize`; each passes its own rows, and every process ends with the
same replicated params. Everything here is JAX's own distributed engine:
:class:`jax.sharding.NamedSharding`, XLA's SPMD partitioner (GSPMD),
:func:`jax.make_array_from_process_local_data` and :mod:`jax.distributed`.

Design: ``jit`` with shardings, not ``shard_map``
--------------------------------------------------
The run is the ordinary ``jit``-compiled loop of :mod:`jaxgd.minimize`, given
arrays with shardings: the data ``NamedSharding(mesh, P("data"))``, everything
else replicated ``NamedSharding(mesh, P())``. XLA partitions the program: each
device evaluates the loss and its gradient on its own rows, and the reductions
over the example axis (the mean in the loss, the sum over examples in the
gradient) become a local partial sum plus one all-reduce. We chose this over
``shard_map`` with a ``psum`` because the loss is the user's function of the
*global* batch: with shardings the program computes exactly that function
whatever it is (a mean, a sum, a penalty on the params, a normalisation across
the batch), so a mesh run equals the one-device run to float round-off with no
rule on how losses are written. A ``shard_map`` version would evaluate the loss
per shard and average, which is right only for a mean of per-example terms over
equal shards, and it would need its own loss, history and stopping logic. With
shardings the one loop serves both, and the mesh adds a single piece of code:
the minibatch gather (:func:`_local_minibatch`).

The minibatch gather stays on each device
------------------------------------------
A minibatch is chosen by global row numbers (``_batch_indices`` in
:mod:`jaxgd.minimize`): the rows are cut into ``batch_size`` contiguous strata
and each minibatch takes one example per stratum. With ``n`` rows split evenly
over ``D`` devices and ``batch_size`` divisible by ``D``, device ``d`` owns
strata ``d * b / D`` to ``(d + 1) * b / D - 1`` whole, i.e. positions
``d * b / D`` onwards of every minibatch. A plain ``jnp.take(data, rows)`` on
sharded data hides that from XLA: it compiles to a masked gather on every
device followed by an all-reduce of the whole minibatch, and every device then
holds and processes the global batch. So the mesh run reshapes each data array
to ``(D, n / D, ...)`` (a free view of the row sharding), turns the global row
numbers into ``(D, b / D)`` local ones, gathers with a gather batched over the
leading device axis (which GSPMD partitions along that axis with no
communication), and reshapes back to ``(b, ...)`` sharded over devices.

How this was checked: :func:`collectives` compiles a mesh run and lists the
communication in the optimised HLO. For a minibatch run of a linear model on a
4-device mesh it lists only all-reduces whose element count is that of the
gradient and a few scalars (the loss) inside the step loop; no all-gather or
all-to-all, and nothing the size of a minibatch (outside the loop, while the
minibatch order is built, XLA exchanges a few int32 stratum boundaries with
collective-permutes). With ``jnp.take`` on
the global rows it lists an all-reduce carrying the whole minibatch
(``tests/test_distributed.py`` asserts both).

The global batch does not depend on the device count, so for a given ``key``
a mesh run takes the same steps as a one-device run; only the order of the
floating-point additions differs (partial sums per device, then the
all-reduce).

Rules
-----
* The data axis is the mesh axis named ``"data"``, or the only axis of a 1-D
  mesh. Other mesh axes hold copies of the data.
* The number of examples must divide by the data axis size ``D``, and so must
  ``batch_size``; otherwise :func:`jaxgd.minimize` raises ``ValueError``. We
  chose a clear error over padding: padded rows would count in the user's loss
  (a mean over the batch cannot know they are padding) and the run would no
  longer equal the one-device run on the same data. Drop the ``n % D`` extra
  rows, or use a mesh whose size divides ``n``.
* A loss without data has nothing to split: with ``data=None`` the mesh is
  ignored and the run is the ordinary one.

Several processes
-----------------
Every process calls :func:`initialize` (which wraps
:func:`jax.distributed.initialize` and, on CPU, selects the gloo collectives)
before any other JAX call, builds the same mesh (:func:`data_mesh`) and calls
``minimize`` with the same arguments, except that ``data`` is its *own* rows:
the block :func:`process_rows` names. jaxgd assembles the global arrays with
:func:`jax.make_array_from_process_local_data` (:func:`shard_data`). Params,
key and hyperparameters must be equal on every process. The result is
replicated: every process holds all of it. See
``examples/multiprocess_compare.py`` and :func:`launch_local`.

The same code on an accelerator cluster
----------------------------------------
Nothing here is CPU specific. On one machine with several GPUs,
``data_mesh()`` spans them and ``minimize(..., mesh=mesh)`` runs unchanged. On
several hosts, start one process per host (``srun``, ``mpirun``, a Kubernetes
job, ...) and call ``initialize()`` with no arguments where JAX detects the
cluster (SLURM, Open MPI, TPU pods, ...), or with ``coordinator_address``,
``num_processes`` and ``process_id``; XLA then uses NCCL (GPU) or ICI (TPU) for
the all-reduce instead of gloo.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "Collective",
    "ProcessResult",
    "collectives",
    "data_axis",
    "data_mesh",
    "initialize",
    "launch_local",
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
    environment variables (which :func:`launch_local` sets), and failing that
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


def _place_data(data: Any, mesh: Mesh) -> Any:
    """``minimize(mesh=...)``'s first step: check the mesh and split the data over it."""
    data_axis(mesh)
    return None if data is None else shard_data(data, mesh)


def _on_mesh(spec: Any, mesh: Mesh, replicated: Any) -> tuple[Any, Any]:
    """``minimize(mesh=...)``'s second step, after the checks: the run's static spec
    names the mesh, and params, optimizer, key and thresholds are replicated on it.
    A run without data has nothing to split and stays an ordinary run."""
    if not spec.has_data:
        return spec, replicated
    size = mesh.shape[data_axis(mesh)]
    if spec.batch_size is not None and spec.batch_size % size:
        raise ValueError(_divisibility_message("batch_size", spec.batch_size, size))
    return spec._replace(mesh=mesh), replicate(replicated, mesh)


# --------------------------------------------------------------------------- #
# Inside the compiled loop
# --------------------------------------------------------------------------- #


def _local_minibatch(mesh: Mesh, data: Any, rows: jax.Array, n_examples: int) -> Any:
    """The minibatch of global row numbers ``rows``, gathered on the devices that own them.

    ``rows`` (shape ``(b,)``) comes from ``_batch_indices``: position ``j``
    is a row of stratum ``j``, so positions ``d * b / D`` to
    ``(d + 1) * b / D - 1`` are rows of device ``d``. Each data array is viewed
    as ``(D, n / D, ...)`` and gathered with a gather batched over the leading
    device axis; the result is the same ``(b, ...)`` array a one-device
    ``jnp.take(data, rows, axis=0)`` gives, split over the devices, with no
    communication (see the module docstring for how that was checked).
    """
    axis = data_axis(mesh)
    size = mesh.shape[axis]
    batch_size = rows.shape[0]
    per_device = n_examples // size
    split = NamedSharding(mesh, P(axis))
    offsets = (jnp.arange(size, dtype=rows.dtype) * per_device)[:, None]
    local_rows = rows.reshape(size, batch_size // size) - offsets
    local_rows = jax.lax.with_sharding_constraint(local_rows, split)

    def gather(a):
        blocks = a.reshape(size, per_device, *a.shape[1:])
        blocks = jax.lax.with_sharding_constraint(blocks, split)
        picked = jax.vmap(lambda block, r: jnp.take(block, r, axis=0))(blocks, local_rows)
        return jax.lax.with_sharding_constraint(picked.reshape(batch_size, *a.shape[1:]), split)

    return jax.tree.map(gather, data)


# --------------------------------------------------------------------------- #
# Looking at the communication
# --------------------------------------------------------------------------- #

_COLLECTIVE = re.compile(
    r"=\s*(?P<shape>\([^=]*?\)|\w+\[[\d,]*\](?:\{[^}]*\})?)\s+"
    r"(?P<kind>all-reduce|all-gather|all-to-all|collective-permute|reduce-scatter)(?:-start)?\("
)
_ARRAY = re.compile(r"\w+\[([\d,]*)\]")


@dataclass(frozen=True)
class Collective:
    """One communication op of a compiled program.

    Attributes:
        kind: ``"all-reduce"``, ``"all-gather"``, ``"all-to-all"``,
            ``"collective-permute"`` or ``"reduce-scatter"``.
        elements: how many array elements it moves (summed over a tuple).
        text: the HLO instruction, for a closer look.
    """

    kind: str
    elements: int
    text: str


def _parse_collectives(hlo: str) -> list[Collective]:
    found = []
    for line in hlo.splitlines():
        match = _COLLECTIVE.search(line)
        if match is None:
            continue
        elements = 0
        for dims in _ARRAY.findall(match.group("shape")):
            elements += int(np.prod([int(d) for d in dims.split(",") if d], dtype=np.int64))
        found.append(Collective(match.group("kind"), elements, line.strip()))
    return found


def collectives(
    loss: Any, params: Any, optimizer: Any, *, mesh: Mesh, data: Any, **kwargs: Any
) -> list[Collective]:
    """The communication ops of the compiled ``minimize(..., mesh=mesh)`` run.

    Compiles (does not run) ``gd.minimize(loss, params, optimizer,
    data=data, mesh=mesh, **kwargs)`` with the data split over the mesh and
    lists the collectives in the optimised HLO. A data-parallel run should
    show only all-reduces of the gradient's size (and scalars such as the
    loss): an all-gather, or an all-reduce the size of a minibatch, means data
    is moving between devices.

    Returns:
        A list of :class:`Collective`; empty on a one-device mesh.

    Example:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
        >>> data = (jnp.ones((8, 3)), jnp.zeros(8))
        >>> mesh = gd.distributed.data_mesh()
        >>> ops = gd.distributed.collectives(loss, jnp.zeros(3), gd.sgd(0.1), mesh=mesh, data=data,
        ...                                  steps=5, batch_size=4, key=jax.random.key(0))
        >>> [op.kind for op in ops if op.kind != "all-reduce"]  # no all-gathers
        []
    """
    from jaxgd.minimize import minimize

    def run(params, data):
        return minimize(loss, params, optimizer, data=data, mesh=mesh, **kwargs)

    lowered = jax.jit(run).lower(replicate(params, mesh), shard_data(data, mesh))
    return _parse_collectives(lowered.compile().as_text())


# --------------------------------------------------------------------------- #
# Starting local processes
# --------------------------------------------------------------------------- #


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ProcessResult:
    """What one process of :func:`launch_local` did.

    Attributes:
        process_id: its rank.
        returncode: its exit status (None if it had to be killed).
        stdout: what it printed.
        stderr: what it printed to stderr.
    """

    process_id: int
    returncode: int | None
    stdout: str
    stderr: str


def launch_local(
    argv: Sequence[str],
    num_processes: int,
    *,
    cpu_devices: int = 1,
    timeout: float = 120.0,
    env: dict[str, str] | None = None,
) -> list[ProcessResult]:
    """Run ``argv`` as ``num_processes`` local processes joined on 127.0.0.1.

    Each process gets the ``JAXGD_*`` environment variables that
    :func:`initialize` reads (a free loopback port for the coordinator, its
    rank, the process count, and ``cpu_devices`` CPU devices), so the script
    only calls ``gd.distributed.initialize()``. Every process is killed if
    the group has not finished within ``timeout`` seconds.

    Args:
        argv: the command, e.g. ``[sys.executable, "examples/multiprocess_compare.py",
            "--worker"]``.
        num_processes: how many processes to start.
        cpu_devices: CPU devices per process.
        timeout: seconds the whole group may take.
        env: extra environment variables.

    Returns:
        One :class:`ProcessResult` per process, by rank.
    """
    port = _free_port()
    base = dict(os.environ)
    base.pop("XLA_FLAGS", None)  # the device count comes from JAXGD_CPU_DEVICES
    base.update(env or {})
    base.update(
        {
            _ENV_COORDINATOR: f"127.0.0.1:{port}",
            _ENV_NUM_PROCESSES: str(num_processes),
            _ENV_CPU_DEVICES: str(cpu_devices),
            "JAX_PLATFORMS": "cpu",
        }
    )
    procs = []
    try:
        for rank in range(num_processes):
            procs.append(
                subprocess.Popen(
                    list(argv),
                    env={**base, _ENV_PROCESS_ID: str(rank)},
                    stdout=subprocess.PIPE,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        deadline = time.monotonic() + timeout
        results = []
        for rank, proc in enumerate(procs):
            try:
                out, err = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
                results.append(ProcessResult(rank, proc.returncode, out, err))
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
                results.append(ProcessResult(rank, None, out, err + "\n[killed: timeout]"))
        return results
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


if __name__ == "__main__":  # pragma: no cover - a pointer, not an entry point
    sys.exit("See examples/multiprocess_compare.py for a multi-process run.")
