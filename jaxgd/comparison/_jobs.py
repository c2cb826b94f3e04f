"""A comparison spread over an executor: content-keyed jobs, run anywhere, merged.

``gd.compare(..., executor=pool)`` takes any object with
``submit(fn, *args) -> future`` and ``future.result()``: a
:class:`concurrent.futures.ProcessPoolExecutor`, a Dask
``distributed.Client``, Ray's or submitit's executors. The work is cut into
:class:`Job` s, each one optimizer's sweep on one problem over a block of
rates and a block of seeds (by default the whole grid, see below), in two
rounds: the tuning jobs; then, once a problem's rates are chosen (here, by
the protocol, from the merged tuning runs), its evaluation jobs, which run
each chosen rate from the evaluation seeds in the same slots as a one-process
run (:func:`jaxgd.comparison._evaluation.slot_seeds`). The curvature at the
minimiser, the contours and the measurements at the chosen rates are computed
here, as a one-process run computes them.

**The same numbers.** A job runs the program a one-process run runs for that
optimizer (:func:`jaxgd.comparison._sweep._sweep`; problems without data that
share one there share it here too, :func:`jaxgd.comparison._groups.program_groups`),
on arrays of the same shape when its blocks are the whole grid (``blocks=None``, the default), so
the merged comparison equals a one-process run bit for bit: its
``results.json`` differs only in the timing fields. Smaller blocks spread one
optimizer's grid over several workers; each run is then vmapped beside fewer
others, which XLA may compile differently (a block of one rate did, in
``tests/comparison/test_jobs.py``): the numbers then equal to float round-off
(~1e-6 relative), with the same choices.

**Idempotent, content-keyed.** A job's key (:func:`job_key`) is a digest of
what it computes: the catalogue problem, the registry optimizer, its rates,
seeds, steps and batch size, jaxgd's source and the libraries' versions. A
finished job's outputs are kept under its key (in memory, and in
``job_folder`` when given, as ``.npz`` files: no pickle), so a rerun after a
lost worker or a broken pool redoes only the missing jobs. A job that fails
(a worker lost) is submitted again up to :data:`RETRIES` times.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import hashlib
import os
import pathlib
import pickle
import time
import uuid
from typing import Any

import jax
import numpy as np

import jaxgd.comparison._programs as programs
from jaxgd import optimizers as _optimizers
from jaxgd import problems as _problems
from jaxgd.calculus import max_curvature
from jaxgd.comparison._checks import evaluation_calls, is_2d
from jaxgd.comparison._chosen import measure_chosen
from jaxgd.comparison._evaluation import eval_every, evaluation, slot_seeds
from jaxgd.comparison._groups import grid_loss, program_groups, switched
from jaxgd.comparison._landscape import contours, minimiser, vanilla_limit
from jaxgd.comparison._runs import ProblemResult
from jaxgd.comparison._sweep import _has_line_search, _keys, _sweep, optimizer_runs

__all__ = [
    "RETRIES",
    "Job",
    "JobStore",
    "check_picklable",
    "connect_executor",
    "job_key",
    "run_job",
    "sweep_jobs",
]

RETRIES = 2
"""Times a failed job (a lost worker) is submitted again before the error is raised."""


@dataclasses.dataclass(frozen=True)
class Job:
    """One optimizer's runs on one problem: ``rates[i]`` from each seed of ``seeds[i]``.

    ``problem`` is the catalogue's ``(name, args, options)`` where it has one
    (rebuilt by the worker), else the :class:`jaxgd.problems.Problem` itself;
    ``optimizer`` the registry label where it is one, else the factory.
    ``group`` holds the same for the problems whose program the job's problem
    shares (it is ``group[which]``), empty where it has its own.
    """

    problem: Any
    label: str
    optimizer: Any
    rates: tuple[float, ...]
    seeds: tuple[tuple[int, ...], ...]
    steps: int
    batch_size: int | None
    record: bool
    group: tuple[Any, ...] = ()
    which: int = 0


def _problem_ref(problem: _problems.Problem) -> Any:
    entry = _problems.catalogue_entry(problem)
    return problem if entry is None else entry


def _optimizer_ref(factory: Any) -> Any:
    label = programs._registry_label(factory)
    return factory if label is None else label


@functools.lru_cache(maxsize=16)
def _rebuilt(ref: Any) -> _problems.Problem:
    name, args, options = ref
    return _problems.get(name, *args, **dict(options))


def _resolved(ref: Any) -> _problems.Problem:
    return ref if isinstance(ref, _problems.Problem) else _rebuilt(ref)


def _resolve(job: Job) -> tuple[tuple[_problems.Problem, ...], Any]:
    """The problems of ``job``'s program (its own alone, or its group) and its factory."""
    group = tuple(_resolved(ref) for ref in job.group) or (_resolved(job.problem),)
    factory = _optimizers.get(job.optimizer) if isinstance(job.optimizer, str) else job.optimizer
    return group, factory


@functools.lru_cache(maxsize=16)
def _program(group, label, factory, steps, batch_size, record):
    return jax.jit(_sweep(group, {label: factory}, steps, batch_size, record))


def run_job(job: Job) -> tuple[dict[str, np.ndarray], float]:
    """Run ``job`` (on a worker): its outputs ``(n_rates, n_seeds, ...)`` and its seconds."""
    t0 = time.perf_counter()
    group, factory = _resolve(job)
    problem = group[job.which]
    program = _program(group, job.label, factory, job.steps, job.batch_size, job.record)
    rates = {job.label: np.asarray(job.rates, np.float32)}
    keys = {job.label: _keys(np.asarray(job.seeds, np.int64))}
    which = (np.int32(job.which),) if job.group else ()
    outs = program(rates, keys, problem.data, problem.test_data, None, *which)
    return jax.tree.map(np.asarray, outs[job.label]), time.perf_counter() - t0


def job_key(job: Job) -> str | None:
    """The digest of what ``job`` computes, or None (a problem or optimizer that
    nothing names: it runs every time)."""
    named = all(isinstance(ref, tuple) for ref in (job.problem, *job.group))
    if not named or not isinstance(job.optimizer, str):
        return None
    return hashlib.sha256(
        (programs._environment() + repr(dataclasses.astuple(job))).encode()
    ).hexdigest()


class JobStore:
    """Finished jobs' outputs by key: in memory, and in ``folder`` (``.npz``) if given."""

    def __init__(self, folder: str | os.PathLike | None = None):
        self.folder = None if folder is None else pathlib.Path(folder).expanduser()
        self._kept: dict[str, dict[str, np.ndarray]] = {}

    def get(self, key: str | None) -> dict[str, np.ndarray] | None:
        if key is None:
            return None
        if key not in self._kept and self.folder is not None:
            try:
                with np.load(self.folder / f"{key}.npz", allow_pickle=False) as f:
                    self._kept[key] = {name: f[name] for name in f.files}
            except (OSError, ValueError):
                return None
        return self._kept.get(key)

    def put(self, key: str | None, outs: dict[str, np.ndarray]) -> None:
        if key is None:
            return
        self._kept[key] = outs
        if self.folder is not None:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.folder / f".{key}.{uuid.uuid4().hex[:8]}.npz"
            np.savez(tmp, **outs)
            os.replace(tmp, self.folder / f"{key}.npz")  # a reader never sees half a job


def check_picklable(jobs: list[Job], executor: Any) -> None:
    """Refuse jobs an executor cannot send to another process (before anything runs)."""
    dumps = [pickle.dumps]
    if not isinstance(executor, concurrent.futures.ProcessPoolExecutor):
        try:  # Dask, Ray and submitit send functions with cloudpickle
            import cloudpickle

            dumps.append(cloudpickle.dumps)
        except ImportError:  # pragma: no cover - they all depend on it
            pass
    for job in {(id(j.problem), id(j.optimizer)): j for j in jobs}.values():
        errors = []
        for dump in dumps:
            try:
                dump(job)
                break
            except Exception as err:  # noqa: BLE001 - whatever the pickler raises
                errors.append(err)
        else:
            name = job.problem[0] if isinstance(job.problem, tuple) else job.problem.name
            raise ValueError(
                f"compare: executor= sends each job to another process, but the job of problem "
                f"{name!r} with optimizer {job.label!r} cannot be pickled ({errors[-1]}); use a "
                "catalogue problem (gd.problems.get(name)) and registry optimizers, or define the "
                "loss and the optimizer factory as functions at the top level of an importable "
                "module (not lambdas or local functions)."
            )


def _run_all(executor: Any, jobs: list[Job], store: JobStore) -> tuple[list, float]:
    """Every job's outputs, in order: from ``store`` where kept, else run on ``executor``
    (a failed job submitted again up to :data:`RETRIES` times); the seconds they took."""
    keys = [job_key(j) for j in jobs]
    results: list = [store.get(k) for k in keys]
    futures = {i: executor.submit(run_job, j) for i, j in enumerate(jobs) if results[i] is None}
    seconds = 0.0
    for i, future in futures.items():
        for attempt in range(RETRIES + 1):
            try:
                outs, spent = future.result()
                break
            except (KeyboardInterrupt, concurrent.futures.process.BrokenProcessPool) as err:
                _broken(err, store)
            except Exception:
                if attempt == RETRIES:
                    raise
                future = executor.submit(run_job, jobs[i])
        store.put(keys[i], outs)
        results[i], seconds = outs, seconds + spent
    return results, seconds


def _broken(err: BaseException, store: JobStore) -> None:
    if isinstance(err, KeyboardInterrupt):
        raise err
    kept = f"in {store.folder}" if store.folder is not None else "nowhere (pass job_folder=)"
    raise RuntimeError(
        f"compare: the executor's process pool broke (a worker died: {err}); the finished jobs "
        f"are kept {kept}: run again with a new pool and the same job_folder to redo only the "
        "missing ones."
    ) from err


def check_blocks(blocks: Any, executor: Any) -> tuple[int, int] | None:
    """``compare(blocks=...)`` checked (nothing compiles): None, or ``(rates, seeds)``,
    the learning rates and the tuning seeds of each job, two integers >= 1 (one
    above the grid's size: the whole grid), given with an ``executor``.

    Examples:
        >>> check_blocks((2, 1), executor=object())
        (2, 1)
        >>> check_blocks((0, 1), executor=object())
        Traceback (most recent call last):
        ...
        ValueError: compare: blocks must be (rates, seeds), ... got (0, 1). Pass such a pair, ...
    """
    if blocks is None:
        return None
    pair = tuple(blocks) if isinstance(blocks, tuple | list) else ()
    if len(pair) != 2 or not all(
        isinstance(b, int | np.integer) and not isinstance(b, bool) and b >= 1 for b in pair
    ):
        raise ValueError(
            "compare: blocks must be (rates, seeds), the learning rates and the tuning seeds of "
            f"each job: two integers >= 1 such as (2, 1); got {blocks!r}. Pass such a pair, or "
            "None (each optimizer's whole grid in one job)."
        )
    if executor is None:
        raise ValueError(
            f"compare: blocks={blocks!r} cuts the runs into jobs for an executor, but no "
            "executor was given; pass executor= as well (a concurrent.futures executor, a "
            "Dask Client...), or leave blocks out: one process sweeps the whole grid at once."
        )
    return int(pair[0]), int(pair[1])


def _blocks(n: int, size: int | None) -> list[slice]:
    size = n if size is None else min(size, n)  # a pair of ints >= 1: check_blocks
    return [slice(i, min(i + size, n)) for i in range(0, n, size)]


def _tuning_jobs(group, which, factories, rates, seeds, steps, batch_size, blocks):
    """``(label, rate block, seed block, job)`` for every tuning job of ``group[which]``
    (``group``: the problems that share its program)."""
    problem = group[which]
    shared = tuple(_problem_ref(p) for p in group) if len(group) > 1 else ()
    rate_block, seed_block = (None, None) if blocks is None else blocks
    out = []
    for label, factory in factories.items():
        for r in _blocks(len(rates[label]), rate_block):
            for s in _blocks(len(seeds), seed_block):
                block_rates = tuple(float(x) for x in np.asarray(rates[label], np.float32)[r])
                job = Job(
                    _problem_ref(problem), label, _optimizer_ref(factory), block_rates,
                    (tuple(seeds[s]),) * len(block_rates), steps, batch_size, is_2d(problem),
                    shared, which if shared else 0,
                )  # fmt: skip
                out.append((label, r, s, job))
    return out


def _merge(parts, n_rates: int, n_seeds: int) -> dict[str, np.ndarray]:
    """One optimizer's outputs ``(n_rates, n_seeds, ...)`` from its blocks' outputs."""
    merged = {}
    for name, first in parts[0][2].items():
        whole = np.empty((n_rates, n_seeds, *first.shape[2:]), first.dtype)
        for r, s, outs in parts:
            whole[r, s] = outs[name]
        merged[name] = whole
    return merged


def _curvature(group) -> Any:
    """``(minimiser, which, *data) ->`` the curvature there of ``group[which]``, as its
    program computes it (through the group's shared loss where it shares one):
    compiled once for the group."""

    def curvature(m, which, *a):
        return max_curvature(switched(group, which).loss, m, *a, iters=60)

    return jax.jit(curvature)


def _curvature_at(curvature, problem, which) -> float | None:
    x = minimiser(problem)
    if x is None:
        return None
    args = () if problem.data is None else (problem.data,)
    value = float(curvature(x, np.int32(which), *args))
    return value if np.isfinite(value) and value > 0 else None


def sweep_jobs(
    problem_list, factories, rates, seeds, steps, batch_sizes, eval_seeds, executor, *,
    sharpness=False, blocks=None, job_folder=None,
):  # fmt: skip
    """Every problem's :class:`ProblemResult` (as :func:`jaxgd.comparison._sweep.sweep_problem`
    gives it) with the runs done as :class:`Job` s on ``executor``: tuning jobs for
    every problem, then evaluation jobs at the chosen rates (see the module
    docstring). ``batch_sizes``: each problem's own."""
    store = JobStore(job_folder)
    seeds = np.asarray(seeds, np.int64)
    groups = program_groups(problem_list)
    shares = {id(p): (g, g.index(p)) for g in groups for p in g}
    compiled = {id(g): (_curvature(g), grid_loss(g)) for g in groups}  # once per group
    plans = [_tuning_jobs(*shares[id(p)], factories, rates, seeds, steps, b, blocks)
             for p, b in zip(problem_list, batch_sizes, strict=True)]  # fmt: skip
    check_picklable([job for plan in plans for *_, job in plan], executor)
    done, tuning_seconds = _run_all(executor, [job for plan in plans for *_, job in plan], store)
    per_problem, eval_jobs, at = [], [], 0
    for problem, plan in zip(problem_list, plans, strict=True):
        parts = {label: [] for label in factories}
        for (label, r, s, _), outs in zip(plan, done[at : at + len(plan)], strict=True):
            parts[label].append((r, s, outs))
        at += len(plan)
        per_opt = {
            label: optimizer_runs(problem, rates[label],
                                  _merge(parts[label], len(rates[label]), len(seeds)))
            for label in factories
        }  # fmt: skip
        per_problem.append(per_opt)
        eval_jobs.append(_eval_jobs(plan, per_opt, rates, len(seeds), eval_seeds))
    flat = [job for jobs in eval_jobs for _, job in jobs]
    evaluated, eval_seconds = _run_all(executor, flat, store)
    results, at = [], 0
    share = (tuning_seconds + eval_seconds) / max(1, len(problem_list))
    for problem, b, per_opt, jobs in zip(
        problem_list, batch_sizes, per_problem, eval_jobs, strict=True
    ):
        outs = {label: [] for label in factories}
        for (label, _), out in zip(jobs, evaluated[at : at + len(jobs)], strict=True):
            outs[label].append(out)
        at += len(jobs)
        for label, runs in per_opt.items():
            runs.evaluation = evaluation(
                outs[label], tuple(eval_seeds), problem.target, problem.eval_target,
                eval_every(steps), steps,
            )  # fmt: skip
        if sharpness or _has_line_search(problem, factories, int(seeds[0])):
            measure_chosen(problem, factories, per_opt, int(seeds[0]), steps, b, None, sharpness)
        calls = evaluation_calls(rates, len(seeds), len(eval_seeds))
        n_runs = (1 + calls) * sum(len(r) for r in rates.values()) * len(seeds)
        group, which = shares[id(problem)]
        curvature, grid = compiled[id(group)]
        losses = None if grid is None else functools.partial(grid, which)
        results.append(ProblemResult(
            curvature=_curvature_at(curvature, problem, which), vanilla_limit=vanilla_limit(),
            contours=contours(problem, per_opt, losses),
            problem=problem, batch_size=b,
            optimizers=per_opt, compile_seconds=0.0, run_seconds=share, n_runs=n_runs,
            shares_program_with=tuple(p.name for p in group if p is not problem),
        ))  # fmt: skip
    return results


def _eval_jobs(plan, per_opt, rates, n_seeds, eval_seeds):
    """``(label, job)`` for each evaluation call of each optimizer: its chosen rate in
    every slot of a one-process run's ``(n_rates, n_seeds)`` slots."""
    if not eval_seeds:
        return []
    calls = evaluation_calls(rates, n_seeds, len(eval_seeds))
    first = {label: job for label, _, _, job in plan}
    out = []
    for label, job in first.items():
        n_rates = len(rates[label])
        rate = float(np.float32(per_opt[label].learning_rate))
        for c in range(calls):
            slots = slot_seeds(tuple(eval_seeds), n_rates * n_seeds, calls)[c]
            table = tuple(tuple(int(x) for x in row) for row in slots.reshape(n_rates, n_seeds))
            out.append((label, dataclasses.replace(job, rates=(rate,) * n_rates, seeds=table)))
    return out


def connect_executor(spec: str) -> Any:
    """The executor ``jaxgd compare --executor`` names: ``dask://HOST:PORT`` (a
    client of that running Dask scheduler) or ``processes:N`` (a pool of ``N``
    fresh processes: spawned, not forked, as JAX's threads require).

    Examples:
        >>> connect_executor("ftp://x")
        Traceback (most recent call last):
        ...
        ValueError: --executor takes dask://HOST:PORT or processes:N (N >= 1), got 'ftp://x'.
    """
    if spec.startswith("dask://"):
        try:
            from distributed import Client
        except ImportError:
            raise ValueError(
                "--executor dask://... needs Dask's scheduler client: pip install "
                "'dask[distributed]'."
            ) from None
        return Client("tcp://" + spec[len("dask://") :], timeout=30)
    count = spec[len("processes:") :]
    if spec.startswith("processes:") and count.isdigit() and int(count) >= 1:
        import multiprocessing

        context = multiprocessing.get_context("spawn")
        return concurrent.futures.ProcessPoolExecutor(int(count), mp_context=context)
    raise ValueError(f"--executor takes dask://HOST:PORT or processes:N (N >= 1), got {spec!r}.")
