"""Compare optimizers data-parallel across several local processes.

Run it as::

    python examples/multiprocess_compare.py --processes 2 --devices-per-process 2

The launcher starts ``--processes`` copies of this script on 127.0.0.1 (with
:func:`jaxgd.distributed.launch_local`), each exposing
``--devices-per-process`` CPU devices, so the mesh spans
``processes x devices-per-process`` devices. Every process then:

1. joins the group with ``gd.distributed.initialize()`` (the coordinator
   address, rank and count come from environment variables the launcher sets;
   on CPU the all-reduce runs over gloo);
2. builds the same mesh over every device of every process
   (``gd.distributed.data_mesh()``);
3. runs the same comparison with ``mesh=mesh``: each problem's data is split
   over the mesh, each process contributing its own rows, and XLA all-reduces
   the gradients across processes;
4. runs one ``gd.minimize`` passing only its own rows
   (``gd.distributed.process_rows``), to show the lower-level API.

Process 0 prints the summary table; every process holds the same replicated
results. With ``--out PATH`` each process also writes its results to
``PATH.<rank>.json`` (the test suite compares them with a one-process run).

On a real cluster, drop the launcher: start one process per host with your
scheduler (``srun``, ``mpirun``, a Kubernetes job) and call
``gd.distributed.initialize()`` (JAX detects SLURM, Open MPI and TPU pods) or
``gd.distributed.initialize(coordinator_address, num_processes, process_id)``;
the rest of the script is unchanged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys

PROBLEMS = ("student_marks", "digits_softmax", "booth")
OPTIMIZERS = ("vanilla", "momentum", "adam")
LEARNING_RATES = (0.01, 0.1, 0.5)


def problems(names: list[str], devices: int):
    """The problems, their data trimmed so the examples divide by the device count."""
    import jax

    import jaxgd as gd

    out = []
    for name in names:
        problem = gd.problems.get(name)
        if problem.data is not None:
            n = jax.tree.leaves(problem.data)[0].shape[0]
            rows = slice(0, n - n % devices)
            data = jax.tree.map(lambda a, rows=rows: a[rows], problem.data)
            problem = dataclasses.replace(problem, data=data)
        out.append(problem)
    return out


def run(
    mesh,
    steps: int,
    seeds: int,
    devices: int,
    names: list[str] = PROBLEMS,
    fit_steps: int = 300,
    eval_seeds: int = 20,
) -> dict:
    """The comparison and one minimize run; ``mesh=None`` is the one-device reference.

    ``devices`` is the device count of the mesh run: the data sets are trimmed
    to a multiple of it (a mesh run needs the examples to divide evenly), and
    the one-device reference trims them the same way.
    """
    import jax
    import numpy as np

    import jaxgd as gd
    from jaxgd.comparison import compare

    catalogue = problems(["student_marks", *(p for p in names if p != "student_marks")], devices)
    result = compare(
        catalogue,
        list(OPTIMIZERS),
        learning_rates=list(LEARNING_RATES),
        seeds=seeds,
        eval_seeds=eval_seeds,
        steps=steps,
        batch_size=None,
        mesh=mesh,
    )
    summary = [
        {k: row[k] for k in ("problem", "optimizer", "learning_rate", "final_loss_mean")}
        for row in result.summary()
    ]

    # The lower-level API: minimize on this process's own rows (minibatches of 4 per device).
    problem = catalogue[0]
    n = jax.tree.leaves(problem.data)[0].shape[0]
    data = problem.data
    if mesh is not None:
        rows = gd.distributed.process_rows(n, mesh)
        data = jax.tree.map(lambda a: a[rows], data)
    fit = gd.minimize(
        problem.loss,
        problem.init(jax.random.PRNGKey(0)),
        gd.adam(0.1),
        data=data,
        steps=fit_steps,
        batch_size=4 * devices,
        key=jax.random.PRNGKey(1),
        mesh=mesh,
    )
    return {
        "summary": summary,
        "table": gd.report.summary_table(result, markdown=True),
        "params": {k: float(np.asarray(v)) for k, v in fit.params.items()},
        "loss": float(np.asarray(fit.loss)),
        "loss_history": np.asarray(fit.history.loss).tolist(),
    }


def worker(args: argparse.Namespace) -> None:
    import jax

    import jaxgd as gd

    gd.distributed.initialize(initialization_timeout=60)
    mesh = gd.distributed.data_mesh()
    rank = jax.process_index()
    names = args.problems.split(",")
    results = run(
        mesh, args.steps, args.seeds, jax.device_count(), names, args.fit_steps, args.eval_seeds
    )
    results.update(process=rank, processes=jax.process_count(), devices=jax.device_count())
    if rank == 0:
        print(
            f"{jax.process_count()} processes, {jax.device_count()} devices "
            f"({jax.local_device_count()} per process), backend {jax.default_backend()}"
        )
        print(results["table"])
        print("minimize on the process-local rows:", results["params"])
    if args.out:
        with open(f"{args.out}.{rank}.json", "w") as f:
            json.dump(results, f)
    jax.distributed.shutdown()


def launch(args: argparse.Namespace) -> int:

    argv = [sys.executable, __file__, "--worker", "--steps", str(args.steps)]
    argv += ["--seeds", str(args.seeds), "--problems", args.problems]
    argv += ["--fit-steps", str(args.fit_steps), "--eval-seeds", str(args.eval_seeds)]
    if args.out:
        argv += ["--out", args.out]
    from jaxgd.distributed import launch_local

    results = launch_local(
        argv, args.processes, cpu_devices=args.devices_per_process, timeout=args.timeout
    )
    status = 0
    for r in results:
        if r.process_id == 0:
            print(r.stdout, end="")
        if r.returncode != 0:
            status = 1
            print(f"process {r.process_id} failed ({r.returncode}):\n{r.stderr}", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--devices-per-process", type=int, default=2)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--eval-seeds", type=int, default=20, help="fresh seeds reported")
    parser.add_argument("--fit-steps", type=int, default=300, help="steps of the minimize run")
    parser.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated names")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", default=None, help="write PATH.<rank>.json per process")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    return launch(args)


if __name__ == "__main__":
    sys.exit(main())
