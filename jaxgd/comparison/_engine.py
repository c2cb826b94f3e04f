"""Compare optimizers: learning-rate x seed sweeps, one tuning protocol, metrics.

:func:`compare` runs, for every problem, every optimizer at every learning
rate of a log grid from every seed, as ONE compiled program (each optimizer's
runs are a ``jax.vmap`` of :func:`jaxgd.minimize` over rates and seeds). It
then applies the protocol below and returns a
:class:`jaxgd.comparison.Comparison`: plain data with its JSON, which
:mod:`jaxgd.report` renders (this module computes and never imports the
renderer).

The protocol is :data:`jaxgd.comparison.PROTOCOL`, stated in every report;
``_protocol`` applies it. The pieces: the argument checks, defaults and
footprint (``_checks``), one problem's vmapped sweep (``_sweep``) and the
measurements at the chosen rates (``_chosen``); their public names are
exported by :mod:`jaxgd.comparison`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import platform
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax

from jaxgd import _checks as generic
from jaxgd import problems as _problems
from jaxgd._host import progress_bar, wait_for
from jaxgd.comparison._checks import (
    DEFAULT_EVAL_SEEDS,
    DEFAULT_LEARNING_RATES,
    DEFAULT_OPTIMIZERS,
    DEFAULT_PROBLEMS,
    DEFAULT_SEEDS,
    DEFAULT_STEPS,
    check_arguments,
    check_mesh,
)
from jaxgd.comparison._groups import program_groups
from jaxgd.comparison._jobs import check_blocks, sweep_jobs
from jaxgd.comparison._protocol import PROTOCOL, performance_profile, speedups
from jaxgd.comparison._results import Comparison
from jaxgd.comparison._runs import ProblemResult
from jaxgd.comparison._sweep import SweepJob, compile_sweep, finish_sweep, prepare_sweep
from jaxgd.run import DIAGNOSTICS

__all__ = ["compare", "machine"]

_COMPARED = tuple(name for name in DIAGNOSTICS if name != "effective_lr")
"""The instruments a comparison records (the effective learning rate is only some
optimizers': record it with ``minimize(diagnostics=("effective_lr",))``)."""


def machine() -> dict[str, Any]:
    """The machine a comparison ran on: JAX version, backend, devices, CPUs.

    Examples:
        >>> sorted(machine())[:3]
        ['backend', 'cpu_count', 'device_kind']
    """
    devices = jax.devices()
    return {
        "backend": jax.default_backend(),
        "cpu_count": os.cpu_count(),
        "device_kind": devices[0].device_kind,
        "devices": len(devices),
        "jax_version": jax.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def _progress_bar(total, enabled):
    return progress_bar(total, desc="compare", unit="problem", leave=True) if enabled else None


def _sweep_all(
    groups: Sequence[tuple[_problems.Problem, ...]],
    prepare: Callable[[tuple[_problems.Problem, ...]], list[SweepJob]],
    deliver: Callable[[ProblemResult], None],
) -> None:
    """Sweep every group of problems that share a program
    (:func:`~jaxgd.comparison._groups.program_groups`), handing each problem's
    result to ``deliver`` as it is done.

    A pipeline of three stages: the calling thread traces and lowers each
    group's program (``prepare``: Python's work), one worker thread compiles
    them and another runs and measures each problem's sweep (XLA's work, which
    lets go of Python's lock), so a group is traced while the one before it
    compiles and the one before that runs. One run at a time, each timed on its own.

    The order follows the costliest group (:func:`_cost`), prepared first.
    Traced anew (a cold cache), it is compiled and run first, while the others
    compile: the pipeline then does not end on the largest compile and run.
    Then the groups of the most problems: their results, and their figures,
    come while the rest compiles (the default comparison's five textbook
    problems, one program). Loaded from the program cache (compiling is
    quick), the cheapest go first: their results, and figures, come while the
    costliest one runs last.
    """
    compiler = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxgd-compile")
    runner = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="jaxgd-sweep")
    pending: collections.deque[concurrent.futures.Future] = collections.deque()

    def run(compiling: concurrent.futures.Future) -> ProblemResult:
        return finish_sweep(compiling.result())

    def submit(job: SweepJob) -> None:
        pending.append(runner.submit(run, compiler.submit(compile_sweep, job)))
        # A sweep measured again at its chosen rates calls minimize on the worker:
        # then nothing is traced meanwhile (and its time per step is measured alone).
        while pending and (job.measures or pending[0].done()):
            deliver(wait_for(pending.popleft()))

    try:
        costliest, *others = sorted(groups, key=_cost, reverse=True)
        first = prepare(costliest)
        if first[0].loaded:
            order = [*reversed(others), costliest]
        else:
            order = [costliest, *sorted(others, key=len, reverse=True)]  # stable: then by cost
        for group in order:
            for job in first if group is costliest else prepare(group):
                submit(job)
        while pending:
            deliver(wait_for(pending.popleft()))
    finally:  # after an error or Ctrl-C, the sweeps not started are dropped
        for worker in (runner, compiler):
            worker.shutdown(wait=not pending, cancel_futures=True)


def _cost(group: tuple[_problems.Problem, ...]) -> int:
    """A group's size for ordering the sweeps: parameters x training examples (a
    group of several has no data)."""
    problem = group[0]
    leaves = jax.tree.leaves(problem.data) if problem.data is not None else ()
    return problem.dimension * (leaves[0].shape[0] if leaves else 1)


def _own_batch(problem: _problems.Problem, batch_size: int | None | str) -> int | None:
    if problem.data is None:
        return None
    return problem.batch_size if batch_size == "problem" else batch_size


def compare(
    problems: Iterable[str | _problems.Problem] | str = DEFAULT_PROBLEMS,
    optimizers: Mapping[str, Callable[..., Any]] | Iterable[str] = DEFAULT_OPTIMIZERS,
    *,
    learning_rates: Sequence[float] | Mapping[str, Sequence[float]] = DEFAULT_LEARNING_RATES,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    eval_seeds: int | Sequence[int] = DEFAULT_EVAL_SEEDS,
    steps: int = DEFAULT_STEPS,
    batch_size: int | None | str = "problem",
    progress: bool = False,
    mesh: Any = None,
    sharpness: bool = False,
    diagnostics: Sequence[str] = (),
    on_problem: Callable[[ProblemResult], Any] | None = None,
    executor: Any = None,
    blocks: tuple[int, int] | None = None,
    job_folder: str | os.PathLike | None = None,
) -> Comparison:
    """Compare optimizers on problems: tune the rate on some seeds, report on fresh ones.

    Per problem, every optimizer x learning rate x tuning seed runs in one
    compiled, vmapped call of :func:`jaxgd.minimize`; the protocol
    (:data:`jaxgd.comparison.PROTOCOL`) then picks each optimizer's rate on
    those seeds, and the same compiled program runs each chosen rate again
    from the evaluation seeds, which are the ones reported: the summary's
    figures, the held-out metrics and :meth:`Comparison.pairwise`'s paired
    statistics.

    Args:
        problems: catalogue names or :class:`jaxgd.problems.Problem` objects.
        optimizers: labels of the optimizer registry
            (:func:`jaxgd.optimizers.names`), or a dict label -> factory
            taking ``learning_rate`` and returning a jaxgd optimizer
            (``{"vanilla": gd.sgd, "adam": gd.adam}``) or an optax one
            (``{"optax-lamb": optax.lamb}``: its learning rate is traced, as
            ``minimize`` traces it, so the rates vmap into one program).
        learning_rates: the grid (positive; sorted for you), shared by all
            optimizers, or a dict label -> grid.
        seeds: the tuning seeds, on which each optimizer's rate is chosen: a
            count ``n`` (seeds ``0..n-1``) or a list of seeds.
        eval_seeds: the evaluation seeds, from which each chosen rate runs
            again and which are reported: a count ``m >= 2`` (seeds ``1000,
            ..., 1000 + m - 1``) or a list, disjoint from ``seeds``. They run
            in the tuning sweep's compiled program (no second compile), in
            ``ceil(m / (n_rates x n_seeds))`` calls of it.
        steps: updates per run.
        batch_size: ``"problem"`` for each problem's own default
            (:attr:`Problem.batch_size`), None for full batch everywhere, or
            an int for every problem with data.
        progress: show a tqdm progress bar over problems.
        mesh: a :class:`jax.sharding.Mesh` with a ``"runs"`` axis, a ``"data"``
            axis or both. ``"runs"`` (:func:`jaxgd.distributed.runs_mesh`)
            shards each optimizer's rate x seed runs over its devices, with no
            communication: the numbers equal one device's to float round-off.
            ``"data"`` runs data-parallel, each problem's data split over the
            axis (see ``minimize(mesh=...)``); the number of examples and the
            batch size must divide by its size. In a multi-process run every
            process builds the same problems and contributes its own rows.
        sharpness: after each problem's sweep, run every optimizer once more
            at its chosen rate (from the first seed's start) recording the
            sharpness every ``max(1, steps // 50)`` steps (see
            ``minimize(sharpness_every=...)``), with its stability limit
            (:func:`jaxgd.optimizers.stability_limit`); the report draws it.
            Off by default: it costs a run and a compile per optimizer.
        diagnostics: instruments of ``minimize(diagnostics=...)`` (any of
            ``"alpha"``, ``"cosine"``, ``"update_ratio"``, ``"noise_scale"``;
            the last only on problems with data; not ``"effective_lr"``, which
            only some optimizers carry: ``minimize`` records it) recorded every step of two
            runs per optimizer after each problem's sweep: at its chosen rate
            and one grid step up, from the first seed's start
            (:class:`jaxgd.comparison.Diagnosed`). The report draws alpha
            against the line alpha = 1 and the cosine
            (``diagnostics_<problem>``), and says when the chosen rate
            overshoots (alpha above 1 for a long stretch) and when the next
            rate starts to. Off by default: two runs per optimizer.
        on_problem: called with each problem's
            :class:`jaxgd.comparison.ProblemResult` as soon as it is ready, in
            problem order, on the calling thread (``jaxgd compare`` draws the
            problem's figures meanwhile: :class:`jaxgd.report.FigureDrawer`).
        executor: an object with ``submit(fn, *args)`` returning futures (a
            :class:`concurrent.futures.ProcessPoolExecutor`, a Dask
            ``distributed.Client``, Ray's or submitit's executor): the runs are
            cut into content-keyed jobs run there and merged, with the numbers
            of a one-process run (see ``jaxgd.comparison._jobs``). Problems
            and optimizers must pickle: catalogue problems, registry
            optimizers, or functions at the top level of an importable module.
        blocks: with ``executor``, ``(rates, seeds)``: the learning rates
            and the tuning seeds of each job, two integers >= 1 (refused
            without an executor); None (default): each optimizer's whole grid
            in one job, bit for bit a one-process run's numbers (smaller
            blocks: equal to float round-off).
        job_folder: with ``executor``, a folder keeping each finished job's
            outputs, so that a rerun after a lost worker redoes only the
            missing jobs.

    With ``sharpness=True``, or when an optimizer is a line search (its state
    holds optax's ``num_linesearch_steps``, as ``armijo``'s does), each
    optimizer's step is also measured at its chosen rate: the function
    evaluations per step (a line search's trial points counted by replaying
    the run with :func:`jaxgd.make_step`) and the wall time per step (a timed
    single-seed run, compiled first), so that the report compares time to
    target, not only steps (:class:`jaxgd.comparison.StepCost`).

    Returns:
        A :class:`jaxgd.comparison.Comparison`: ``summary()``, ``to_json()``;
        ``gd.report.summary_table(result)`` prints it and
        ``gd.report.save(result, dir)`` writes its report.

    Raises:
        ValueError: an unknown name, an empty or non-positive grid, seeds or
            steps below 1, fewer than 2 evaluation seeds or ones shared with
            ``seeds``, a ``batch_size`` above a problem's number of
            examples, a history too big for this machine's memory, ``blocks``
            not a pair of integers >= 1 or without an ``executor``; raised
            before anything compiles (see :func:`check_arguments`).
        TypeError: ``sharpness`` not a bool; ``diagnostics`` not a tuple of names.

    Warns:
        SweepSizeWarning: a comparison of more than 1 GiB of history or 100
            times the default's run-steps, with its numbers.

    Examples:
        >>> import jaxgd as gd
        >>> result = gd.compare(["booth"], ["vanilla"], learning_rates=[0.01, 0.1], seeds=1,
        ...                     steps=50)
        >>> row = result.summary()[0]
        >>> row["optimizer"], row["learning_rate"], row["diverged"]
        ('vanilla', 0.1, 0)
    """
    if not isinstance(sharpness, bool):
        raise TypeError(
            f"compare: sharpness must be True or False, got {sharpness!r}; pass "
            "sharpness=True to record the sharpness at each chosen rate."
        )
    diagnostics = generic.choices("compare", "diagnostics", diagnostics, _COMPARED)
    problem_list, factories, rates, seed_list, steps, batch_size, eval_list = check_arguments(
        problems, optimizers, learning_rates, seeds, steps, batch_size, eval_seeds
    )
    check_mesh(mesh, rates, len(seed_list), executor)
    blocks = check_blocks(blocks, executor)
    results = []
    bar = _progress_bar(len(problem_list), progress)

    def deliver(result: ProblemResult) -> None:
        results.append(result)
        if bar is not None:
            bar.set_postfix_str(result.name, refresh=False)
            bar.update(1)
        if on_problem is not None:
            on_problem(result)

    def prepare(group: tuple[_problems.Problem, ...]) -> list[SweepJob]:
        bs = _own_batch(group[0], batch_size)
        return prepare_sweep(
            group, factories, rates, seed_list, steps, bs, mesh, sharpness, eval_list, diagnostics
        )

    started = time.perf_counter()
    if executor is None:
        _sweep_all(program_groups(problem_list), prepare, deliver)
    else:
        batch_sizes = [_own_batch(p, batch_size) for p in problem_list]
        for result in sweep_jobs(
            problem_list, factories, rates, seed_list, steps, batch_sizes, eval_list, executor,
            sharpness=sharpness, blocks=blocks, job_folder=job_folder,
        ):  # fmt: skip
            deliver(result)
    if bar is not None:
        bar.close()
    total_seconds = time.perf_counter() - started
    position = {p.name: i for i, p in enumerate(problem_list)}
    results.sort(key=lambda r: position[r.name])  # swept costliest first

    labels = list(factories)
    solved = {label: [r.solved_steps(label) for r in results] for label in labels}
    profile = performance_profile(solved)
    return Comparison(
        problems=results,
        optimizer_labels=labels,
        seeds=seed_list,
        eval_seeds=eval_list,
        steps=steps,
        profile=profile,
        speedups=speedups(solved, "vanilla" if "vanilla" in labels else labels[0]),
        reference=("vanilla" if "vanilla" in labels else labels[0]),
        machine=machine(),
        total_seconds=total_seconds,
        protocol=PROTOCOL.strip(),
    )
