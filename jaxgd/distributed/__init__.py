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
The run is the ordinary ``jit``-compiled loop of :mod:`jaxgd.run._loop`, given
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
the minibatch gather (:class:`MeshGather`).

The minibatch gather stays on each device
------------------------------------------
A minibatch is chosen by global row numbers
(``jaxgd.run``'s minibatch order): the rows are cut into ``batch_size``
contiguous strata
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

How this was checked: :func:`collectives` lists the communication in the
optimised HLO of a compiled mesh run. For a minibatch run of a linear model on
a 4-device mesh it lists only all-reduces whose element count is that of the
gradient and a few scalars (the loss) inside the step loop; no all-gather or
all-to-all, and nothing the size of a minibatch (outside the loop, while the
minibatch order is built, XLA exchanges a few int32 stratum boundaries with
collective-permutes). With ``jnp.take`` on the global rows it lists an
all-reduce carrying the whole minibatch (``tests/distributed`` asserts both).

The global batch does not depend on the device count, so for a given ``key``
a mesh run takes the same steps as a one-device run; only the order of the
floating-point additions differs (partial sums per device, then the
all-reduce).

A comparison's runs
-------------------
``gd.compare(..., mesh=runs_mesh())`` shards a sweep's independent runs over a
mesh axis named ``"runs"`` (:func:`vmap_runs`, with ``jax.vmap``'s
``spmd_axis_name``): no all-reduce, each device runs its share. A 2-D
``("runs", "data")`` mesh shards the runs over one axis and each run's data
over the other. :func:`expose_cpu_devices` makes the host's cores devices
(``jaxgd compare`` does, by default, on a CPU-only machine).

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

from jaxgd.distributed._launch import Collective, ProcessResult, collectives, launch_local
from jaxgd.distributed._mesh import (
    DATA_AXIS,
    RUNS_AXIS,
    data_axis,
    data_mesh,
    initialize,
    process_rows,
    runs_mesh,
)
from jaxgd.distributed._mesh import auto_mesh as auto_mesh
from jaxgd.distributed._mesh import expose_cpu_devices as expose_cpu_devices
from jaxgd.distributed._mesh import runs_mesh_for as runs_mesh_for
from jaxgd.distributed._mesh import split_runs as split_runs
from jaxgd.distributed._placement import MeshGather as MeshGather
from jaxgd.distributed._placement import mesh_context as mesh_context
from jaxgd.distributed._placement import place_run as place_run
from jaxgd.distributed._placement import replicate, shard_data
from jaxgd.distributed._placement import vmap_runs as vmap_runs

__all__ = [
    "DATA_AXIS",
    "RUNS_AXIS",
    "Collective",
    "ProcessResult",
    "collectives",
    "data_axis",
    "data_mesh",
    "initialize",
    "launch_local",
    "process_rows",
    "replicate",
    "runs_mesh",
    "shard_data",
]
