"""A problem's sweep: every optimizer x rate x seed as one compiled, vmapped program
(shared by problems without data alike, :mod:`jaxgd.comparison._groups`).

:func:`sweep_problem` runs each optimizer's runs as a ``jax.vmap`` of
:func:`jaxgd.minimize` over rates and seeds (all optimizers in one compiled
call), measures the largest curvature at the known minimiser, applies the
protocol (:mod:`jaxgd.comparison._protocol`) to choose each optimizer's rate on
the tuning seeds, runs the chosen rates again from the evaluation seeds with
the same compiled program (:mod:`jaxgd.comparison._evaluation`), and returns
a :class:`jaxgd.comparison.ProblemResult`; where asked, or for a line search, it
measures each optimizer again at its chosen rate (:mod:`jaxgd.comparison._chosen`).
Where the problem has held-out data, every run evaluates the held-out loss
every :func:`~jaxgd.comparison._evaluation.eval_every` steps and at its end.

It does so in two stages, which :func:`jaxgd.compare` overlaps across
problems: :func:`prepare_sweep` traces and lowers the program (Python work),
or loads it traced from the program cache (:mod:`jaxgd.comparison._programs`);
:func:`finish_sweep` compiles, runs and measures it (XLA's work, which lets
go of Python's lock, so the next problem can be traced meanwhile).

**Problems that share a program.** Problems without data alike are swept by
one program, each picked by its index (:mod:`jaxgd.comparison._groups`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import threading
import time
from typing import Any

import jax
import jax.export
import jax.numpy as jnp
import numpy as np

import jaxgd.comparison._programs as programs
from jaxgd import problems as _problems
from jaxgd.calculus import max_curvature
from jaxgd.comparison._checks import evaluation_calls, is_2d
from jaxgd.comparison._chosen import (
    chosen_start,
    has_line_search,
    measure_chosen,
    seed_key_table,
)
from jaxgd.comparison._diagnosed import diagnose_chosen
from jaxgd.comparison._evaluation import eval_every, evaluation, slot_seeds
from jaxgd.comparison._groups import grid_loss, switched
from jaxgd.comparison._landscape import contours, minimiser, vanilla_limit
from jaxgd.comparison._protocol import choose_learning_rate, steps_to_target
from jaxgd.comparison._runs import OptimizerRuns, ProblemResult
from jaxgd.distributed import split_runs, vmap_runs
from jaxgd.run import Status, minimize

__all__ = [
    "SweepJob",
    "SweepProgram",
    "compile_sweep",
    "finish_sweep",
    "optimizer_runs",
    "prepare_sweep",
    "sweep_problem",
]


def _sweep(group, factories, steps, batch_size, record_params, mesh=None):
    """``sweep(rates, keys, data, test_data, minimiser, which=None)``: every optimizer
    x rate x seed on ``group[which]``, vmapped (``group``: the problems that share
    the program, :func:`jaxgd.comparison._groups.program_groups`; ``which`` is
    None for a group of one); ``keys[label]`` holds each ``(rate, seed)`` slot's
    seed keys. A mesh's ``"runs"`` axis shards the slots, its
    ``"data"`` axis each run's data (:func:`jaxgd.distributed.vmap_runs`,
    :func:`jaxgd.distributed.split_runs`)."""
    every = eval_every(steps)
    data_mesh = split_runs(mesh)[1]

    def run(problem, factory, lr, key_pair, data, test_data):
        init_key, batch_key = key_pair  # one seed's keys (seed_keys)
        held_out = test_data is not None
        result = minimize(
            problem.loss,
            problem.init(init_key),
            factory(lr),
            steps=steps,
            data=data,
            batch_size=batch_size,
            key=batch_key,
            record_params=record_params,
            mesh=data_mesh,
            eval_data=test_data,
            eval_every=every if held_out else None,
        )
        out = {
            "final_loss": result.loss,
            "status": result.status,
            "steps": result.steps,
            "curve": result.history.loss,
        }
        if held_out:  # every `every` steps from step 0, and at the returned params
            out["eval_curve"] = result.history.eval_loss[::every]
            out["eval_loss"] = problem.loss(result.params, test_data)
        if record_params:
            out["path"] = result.history.params
        return out

    def sweep(rates, keys, data, test_data, minimiser, which=None):
        problem = switched(group, which)
        outs = {}
        for label, factory in factories.items():
            one = functools.partial(run, problem, factory, data=data, test_data=test_data)
            outs[label] = vmap_runs(one, rates[label], keys[label], mesh)
        if minimiser is not None:  # the curvature that explains vanilla's best rate
            args = () if data is None else (data,)
            outs["curvature"] = max_curvature(problem.loss, minimiser, *args, iters=60)
        return outs

    return sweep


@dataclasses.dataclass
class SweepProgram:
    """A sweep's program, lowered, then compiled: one group's
    (:func:`jaxgd.comparison._groups.program_groups`),
    shared by its problems' :class:`SweepJob` s and compiled by the first to need it."""

    lowered: Any  # jax.stages.Lowered
    loaded: bool  # loaded from the program cache (then XLA's cache likely holds it compiled)
    seconds: float  # tracing and lowering (or loading from the program cache), then compiling
    problems: int  # the problems that share it: each reports its share of ``seconds``
    grid: Any = None  # a group's contour evaluation (jaxgd.comparison._groups.grid_loss)
    compiled: Any = None  # jax.stages.Compiled, once compiled
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def compile(self) -> Any:
        """The compiled program (compiled once, whichever thread asks first)."""
        with self.lock:
            if self.compiled is None:
                t0 = time.perf_counter()
                self.compiled = self.lowered.compile()
                self.seconds += time.perf_counter() - t0
        return self.compiled


@dataclasses.dataclass
class SweepJob:
    """One problem's sweep, its program lowered, ready to compile and run.

    :func:`prepare_sweep` makes the jobs of a group of problems that share a
    program (tracing: the calling thread holds Python's lock meanwhile);
    :func:`compile_sweep` compiles their program and :func:`finish_sweep` runs
    and measures one (XLA mostly: each may run on its own thread while the
    next group is traced).
    """

    group: tuple[_problems.Problem, ...]  # the problems that share the program
    which: int  # this job's problem: group[which]
    factories: dict[str, Any]
    rates: dict[str, np.ndarray]
    seeds: tuple[int, ...]
    eval_seeds: tuple[int, ...]
    steps: int
    batch_size: int | None
    mesh: Any
    sharpness: bool
    args: tuple  # rates, keys, data, test_data, minimiser (and the problem's index in a group)
    program: SweepProgram  # shared by the group's jobs
    measures: bool  # finish_sweep measures at the chosen rates (calls minimize again)
    diagnostics: tuple[str, ...] = ()  # the instruments recorded at the chosen rates

    @property
    def problem(self) -> _problems.Problem:
        return self.group[self.which]

    @property
    def loaded(self) -> bool:
        return self.program.loaded


def _lower(group, factories, steps, batch_size, record, mesh, args):
    """The sweep's program lowered for ``args``, and whether it was loaded: through
    the program cache (:mod:`jaxgd.comparison._programs`) where it is on and the
    sweep has a key."""
    key = programs.program_key(group, factories, (steps, batch_size, record), args, mesh)
    if not programs.enabled() or key is None:
        sweep = _sweep(group, factories, steps, batch_size, record, mesh)
        return jax.jit(sweep).lower(*args), False
    # A loaded program keeps no device context: a mesh run's is given its mesh's devices
    # (its arguments enter replicated; the program shards them itself).
    jit = functools.partial(jax.jit, in_shardings=_replicated(mesh))
    exported = programs.load(key)
    if exported is not None:
        try:
            return jit(exported.call).lower(*args), True
        except Exception as err:  # noqa: BLE001 - a damaged program: trace it again
            programs.discard(key, f"its program cannot be lowered ({type(err).__name__})")
    sweep = _sweep(group, factories, steps, batch_size, record, mesh)
    exported = programs.store(key, jax.export.export(jax.jit(sweep))(*args))
    return jit(exported.call).lower(*args), False


def _replicated(mesh):
    """Every argument whole on each of ``mesh``'s devices (None: JAX's default)."""
    return None if mesh is None else jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec())


def _keys(seeds) -> jax.Array:
    """The seed keys of ``seeds`` (any shape): that shape + ``(2, key)``."""
    table = seed_key_table(np.ravel(seeds))  # one vectorised call
    return table.reshape(*np.shape(seeds), *table.shape[1:])


def prepare_sweep(
    group, factories, rates, seeds, steps, batch_size, mesh=None, sharpness=False,
    eval_seeds=(), diagnostics=(),
) -> list[SweepJob]:  # fmt: skip
    """Trace and lower the sweep program of ``group`` (a tuple of problems that share
    one, :func:`jaxgd.comparison._groups.program_groups`), or load it from the program cache
    (:mod:`jaxgd.comparison._programs`): each problem's :class:`SweepJob`;
    arguments as :func:`sweep_problem`."""
    jrates = {label: jnp.asarray(r, jnp.float32) for label, r in rates.items()}
    tuning = _keys(seeds)  # (seeds, 2, key): every rate runs from the same seeds
    keys = {label: jnp.broadcast_to(tuning, (len(r), *tuning.shape)) for label, r in rates.items()}
    # With a mesh, minimize splits the data over the devices itself.
    first = group[0]  # a group of several has no data
    args = [
        (jrates, keys, first.data, first.test_data, minimiser(problem))
        + ((np.int32(which),) if len(group) > 1 else ())
        for which, problem in enumerate(group)
    ]
    t0 = time.perf_counter()
    lowered, loaded = _lower(group, factories, steps, batch_size, is_2d(first), mesh, args[0])
    program = SweepProgram(lowered, loaded, time.perf_counter() - t0, len(group), grid_loss(group))
    return [
        SweepJob(
            group=tuple(group),
            which=which,
            factories=factories,
            rates=rates,
            seeds=tuple(seeds),
            eval_seeds=tuple(eval_seeds),
            steps=steps,
            batch_size=batch_size,
            mesh=mesh,
            sharpness=sharpness,
            args=problem_args,
            program=program,
            measures=sharpness
            or bool(diagnostics)
            or _has_line_search(problem, factories, seeds[0]),
            diagnostics=tuple(diagnostics),
        )
        for which, (problem, problem_args) in enumerate(zip(group, args, strict=True))
    ]


def _picked(grid, which):
    """``points -> losses`` of the group's problem ``which`` (None: its own loss's)."""
    return None if grid is None else functools.partial(grid, which)


def _has_line_search(problem, factories, seed) -> bool:
    """Whether an optimizer is a line search on ``problem`` (from the start's shapes:
    nothing is computed)."""
    params = jax.eval_shape(lambda: chosen_start(problem, seed)[0])
    return any(has_line_search(f, params) for f in factories.values())


def compile_sweep(job: SweepJob) -> SweepJob:
    """``job`` with its program compiled (XLA's work: it lets go of Python's lock,
    so another sweep may be traced or run meanwhile; a group's program once)."""
    job.program.compile()
    return job


def finish_sweep(job: SweepJob) -> ProblemResult:
    """Compile ``job`` (unless :func:`compile_sweep` did), run it, choose each
    optimizer's rate, and measure at the chosen rates where asked or for a line search."""
    problem, factories, rates, seeds = job.problem, job.factories, job.rates, job.seeds
    compiled = job.program.compile()
    compile_seconds = job.program.seconds / job.program.problems  # this problem's share
    t0 = time.perf_counter()
    outs = jax.block_until_ready(compiled(*job.args))
    run_seconds = time.perf_counter() - t0
    outs = jax.tree.map(np.asarray, outs)
    curvature = float(outs.pop("curvature")) if "curvature" in outs else math.nan

    per_opt = {label: optimizer_runs(problem, rates[label], outs[label]) for label in factories}
    n_runs = sum(r.size for r in rates.values()) * len(seeds)
    if job.eval_seeds:
        t0 = time.perf_counter()
        n_runs += _evaluate(job, compiled, per_opt)
        run_seconds += time.perf_counter() - t0
    if job.measures:
        measure_chosen(
            problem, factories, per_opt, seeds[0], job.steps, job.batch_size,
            split_runs(job.mesh)[1], job.sharpness,
        )  # fmt: skip
    if job.diagnostics:
        diagnose_chosen(
            problem, factories, per_opt, seeds[0], job.steps, job.batch_size, job.mesh,
            job.diagnostics,
        )  # fmt: skip
    return ProblemResult(
        curvature=curvature if math.isfinite(curvature) and curvature > 0 else None,
        vanilla_limit=vanilla_limit(),
        contours=contours(problem, per_opt, _picked(job.program.grid, job.which)),
        problem=problem,
        batch_size=job.batch_size,
        optimizers=per_opt,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        n_runs=n_runs,
        shares_program_with=tuple(p.name for p in job.group if p is not problem),
    )


def optimizer_runs(problem, rates: np.ndarray, out: dict) -> OptimizerRuns:
    """One optimizer's tuning runs from its sweep outputs ``(n_rates, n_seeds, ...)``,
    its rate chosen by the protocol."""
    o = {k: np.asarray(v) for k, v in out.items() if not k.startswith("eval_")}
    final = o["final_loss"].astype(np.float64)
    status = o["status"].astype(np.int64)
    diverged = (status == Status.DIVERGED) | ~np.isfinite(final)
    curves = o["curve"].astype(np.float64)
    to_target = steps_to_target(curves, problem.target)
    to_target = np.where(diverged, np.inf, to_target)
    return OptimizerRuns(
        learning_rates=rates,
        final_loss=final,
        status=status,
        steps=o["steps"].astype(np.int64),
        diverged=diverged,
        steps_to_target=to_target,
        curves=curves,
        paths=o.get("path"),
        chosen=choose_learning_rate(final, diverged, to_target, problem.target),
    )


def _evaluate(job: SweepJob, compiled, per_opt) -> int:
    """Run each optimizer's chosen rate from the evaluation seeds with the sweep's
    compiled program (its slots hold them, :func:`slot_seeds`); fill in each
    :class:`OptimizerRuns`' evaluation; returns the runs made."""
    shape = {label: (len(r), len(job.seeds)) for label, r in job.rates.items()}
    calls = evaluation_calls(job.rates, len(job.seeds), len(job.eval_seeds))
    outs = {label: [] for label in job.rates}
    for c in range(calls):
        rates, keys = {}, {}
        for label, (n_rates, n_seeds) in shape.items():
            rate = per_opt[label].learning_rate
            rates[label] = jnp.full((n_rates,), rate, jnp.float32)
            seeds = slot_seeds(job.eval_seeds, n_rates * n_seeds, calls)[c]
            keys[label] = _keys(seeds.reshape(n_rates, n_seeds))
        out = jax.tree.map(np.asarray, compiled(rates, keys, *job.args[2:]))
        for label in job.rates:
            outs[label].append(out[label])
    problem = job.problem
    for label, runs in per_opt.items():
        runs.evaluation = evaluation(
            outs[label], job.eval_seeds, problem.target, problem.eval_target,
            eval_every(job.steps), job.steps,
        )  # fmt: skip
    return calls * sum(n * s for n, s in shape.values())


def sweep_problem(
    problem, factories, rates, seeds, steps, batch_size, mesh=None, sharpness=False,
    eval_seeds=(),
) -> ProblemResult:  # fmt: skip
    """Sweep ``problem`` (see the module docstring): arguments as :func:`jaxgd.compare`
    checked them, ``batch_size`` this problem's own; with ``eval_seeds``, the chosen
    rates run again from them."""
    [job] = prepare_sweep(
        (problem,), factories, rates, seeds, steps, batch_size, mesh, sharpness, eval_seeds
    )
    return finish_sweep(job)
