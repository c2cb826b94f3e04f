"""Tools for checking jaxgd's distributed runs: the communication a compiled
run does, and a group of local processes joined on 127.0.0.1.

The test suite, the scaling benchmark and ``examples/multiprocess_compare.py``
use them; a training script does not need them.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh

from jaxgd.distributed._mesh import _ENV_COORDINATOR, _ENV_CPU_DEVICES, _ENV_NUM_PROCESSES, _ENV_PROCESS_ID, replicate, shard_data

__all__ = ["Collective", "ProcessResult", "collectives", "launch_local"]


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
        >>> from jaxgd.distributed._launch import collectives
        >>> ops = collectives(loss, jnp.zeros(3), gd.sgd(0.1), mesh=mesh, data=data,
        ...                   steps=5, batch_size=4, key=jax.random.key(0))
        >>> [op.kind for op in ops if op.kind != "all-reduce"]  # no all-gathers
        []
    """
    from jaxgd.run._api import minimize

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
    # Each process writes to files, not pipes: read one after another, a full
    # pipe would block a process that the others wait for in a collective.
    with tempfile.TemporaryDirectory(prefix="jaxgd-launch-") as folder:
        procs, files = [], []
        try:
            for rank in range(num_processes):
                out = open(os.path.join(folder, f"{rank}.out"), "w+")  # noqa: SIM115
                err = open(os.path.join(folder, f"{rank}.err"), "w+")  # noqa: SIM115
                files.append((out, err))
                procs.append(
                    subprocess.Popen(
                        list(argv),
                        env={**base, _ENV_PROCESS_ID: str(rank)},
                        stdout=out,
                        stderr=err,
                        text=True,
                    )
                )
            deadline = time.monotonic() + timeout
            codes = []
            for proc in procs:
                try:
                    codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    codes.append(None)
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        results = []
        for rank, ((out, err), code) in enumerate(zip(files, codes, strict=False)):
            out.seek(0)
            err.seek(0)
            text_err = err.read() + ("" if code is not None else "\n[killed: timeout]")
            results.append(ProcessResult(rank, code, out.read(), text_err))
            out.close()
            err.close()
        return results
