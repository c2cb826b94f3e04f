"""Tools for checking distributed runs: the communication a compiled program
does, and a group of local processes joined on 127.0.0.1.

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

import numpy as np

from jaxgd.distributed._mesh import (
    ENV_COORDINATOR,
    ENV_CPU_DEVICES,
    ENV_NUM_PROCESSES,
    ENV_PROCESS_ID,
)

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


def collectives(program: Any) -> list[Collective]:
    """The communication ops of a compiled program.

    ``program`` is what :meth:`jax.jit(...).lower(...) <jax.stages.Wrapped.lower>`
    returns (it is compiled here, not run), its ``.compile()``, or the text of
    optimised HLO. To look at a mesh run, lower a function that calls
    ``gd.minimize(..., mesh=mesh)`` on data already split over the mesh
    (:func:`shard_data`). A data-parallel run should show only all-reduces of
    the gradient's size (and scalars such as the loss): an all-gather, or an
    all-reduce the size of a minibatch, means data is moving between devices.

    Returns:
        A list of :class:`Collective`; empty on a one-device mesh.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> loss = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
        >>> mesh = gd.distributed.data_mesh()
        >>> data = gd.distributed.shard_data((jnp.ones((8, 3)), jnp.zeros(8)), mesh)
        >>> run = lambda w, data: gd.minimize(
        ...     loss, w, gd.sgd(0.1), data=data, mesh=mesh, steps=5, batch_size=4,
        ...     key=jax.random.key(0))
        >>> w = gd.distributed.replicate(jnp.zeros(3), mesh)
        >>> ops = gd.distributed.collectives(jax.jit(run).lower(w, data))
        >>> [op.kind for op in ops if op.kind != "all-reduce"]  # no all-gathers
        []
    """
    if hasattr(program, "compile"):
        program = program.compile()
    text = program if isinstance(program, str) else program.as_text()
    return _parse_collectives(text)


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
            ENV_COORDINATOR: f"127.0.0.1:{port}",
            ENV_NUM_PROCESSES: str(num_processes),
            ENV_CPU_DEVICES: str(cpu_devices),
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
                        env={**base, ENV_PROCESS_ID: str(rank)},
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
