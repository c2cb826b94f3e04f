"""Compare optimizers: learning-rate x seed sweeps, one tuning protocol, metrics.

:func:`compare` runs, for every problem, every optimizer at every learning
rate of a log grid from every seed, as ONE compiled program (each optimizer's
runs are a ``jax.vmap`` of :func:`jaxgd.minimize` over rates and seeds). It
then applies the protocol below and returns a
:class:`jaxgd.results.Comparison`: plain data with its JSON, which
:mod:`jaxgd.report` renders (this module computes and never imports the
renderer).

The protocol is :data:`jaxgd.protocol.PROTOCOL`, stated in every report;
:mod:`jaxgd.protocol` applies it (its names are importable from here too).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
import platform
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd import optimizers as _opt
from jaxgd import problems as _problems
from jaxgd.calculus import max_curvature
from jaxgd.minimize import Status, minimize
from jaxgd.protocol import (
    PROTOCOL,
    choose_learning_rate,
    performance_profile,
    speedups,
    steps_to_target,
)
from jaxgd.results import Comparison, OptimizerRuns, ProblemResult, SharpnessRun, StepCost
from jaxgd.run.batches import batch_indices, take_rows
from jaxgd.sharpness import stability_limit
from jaxgd.step import make_step

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_PROBLEMS",
    "PROTOCOL",
    "Footprint",
    "SweepSizeWarning",
    "check_arguments",
    "choose_learning_rate",
    "compare",
    "curvature_every",
    "footprint",
    "has_line_search",
    "performance_profile",
]

DEFAULT_OPTIMIZERS: tuple[str, ...] = ("vanilla", "momentum", "adam")
"""Plain gradient descent, heavy-ball momentum (beta 0.9) and Adam."""

DEFAULT_PROBLEMS: tuple[str, ...] = (
    "quadratic",
    "rosenbrock",
    "beale",
    "booth",
    "himmelblau",
    "student_marks",
    "diabetes_linear",
    "breast_cancer_logistic",
    "digits_softmax",
)
"""Textbook functions, student marks and three real data sets: every catalogue
problem but ``digits_mlp``, whose minibatch sweep alone takes about a minute
to compile and run on two CPU cores (the convergence benchmark includes it)."""

DEFAULT_LEARNING_RATES: tuple[float, ...] = tuple(
    float(f"{10.0 ** (k / 2):.3g}") for k in range(-8, 4)
)
"""Twelve rates, half a decade apart, from ``1e-4`` to ``31.6`` (``3.16e-4``, ...)."""

DEFAULT_STEPS = 500
DEFAULT_SEEDS = 3
DEFAULT_RUN_STEPS = (
    len(DEFAULT_PROBLEMS) * len(DEFAULT_OPTIMIZERS) * len(DEFAULT_LEARNING_RATES) * DEFAULT_SEEDS
) * DEFAULT_STEPS
"""Updates all runs of the default comparison take together (486,000)."""

HISTORY_WARNING_BYTES = 2**30
"""A comparison recording more history than this (1 GiB) is warned of."""
RUN_STEPS_WARNING = 100 * DEFAULT_RUN_STEPS
"""A comparison of more run-steps than this (100x the default) is warned of."""

# --------------------------------------------------------------------------- #
# Checks: every user error is raised here, before anything compiles
# --------------------------------------------------------------------------- #


def _check_problems(problems: Any) -> list[_problems.Problem]:
    """Names or problems -> built problems (building loads data; nothing compiles)."""
    if isinstance(problems, str | _problems.Problem):
        problems = [problems]
    problems = list(problems)
    if not problems:
        raise ValueError(
            f"compare: problems is empty; pass names such as {list(DEFAULT_PROBLEMS[:3])}."
        )
    for p in problems:
        if isinstance(p, str) and p not in _problems.names():
            raise ValueError(
                f"compare: unknown problem {p!r} in problems; known problems: "
                f"{', '.join(_problems.names())}."
            )
        if not isinstance(p, str | _problems.Problem):
            raise TypeError(f"compare: problems holds {p!r}; pass names or gd.problems.Problem.")
    labels = [p if isinstance(p, str) else p.name for p in problems]
    if len(set(labels)) != len(labels):
        raise ValueError(f"compare: problems has duplicates ({labels}); name each once.")
    return [_problems.get(p) if isinstance(p, str) else p for p in problems]


def _check_optimizers(optimizers: Any) -> dict[str, Callable[..., Any]]:
    if isinstance(optimizers, str):
        optimizers = [optimizers]
    if not isinstance(optimizers, Mapping):
        items = {}
        for name in optimizers:
            if not isinstance(name, str) or name not in _opt.names():
                raise ValueError(
                    f"compare: unknown optimizer {name!r} in optimizers; known optimizers: "
                    f"{', '.join(_opt.names())} (or pass a dict label -> factory)."
                )
            items[name] = _opt.get(name)
        optimizers = items
    if not optimizers:
        raise ValueError("compare: optimizers is empty; pass e.g. ['vanilla', 'momentum', 'adam'].")
    optimizers = dict(optimizers)
    for label, factory in list(optimizers.items()):
        if not isinstance(label, str) or not callable(factory):
            raise TypeError(
                f"compare: optimizers must map a label to a factory taking learning_rate "
                f"(e.g. {{'adam': gd.adam}}), got {label!r}: {factory!r}."
            )
        made = factory(1e-3)
        if isinstance(made, optax.GradientTransformation):
            # The learning rate must be a traced value to be vmapped: optax keeps
            # it in a closure, so inject_hyperparams moves it into the state.
            optimizers[label] = _optax_factory(factory)
        elif not isinstance(made, _opt.Optimizer):
            raise TypeError(
                f"compare: optimizers[{label!r}](learning_rate) returned {type(made).__name__}, "
                "not an optimizer; pass a factory of jaxgd optimizers (gd.sgd, gd.momentum, "
                "gd.adam, ...) or of optax ones (optax.adam, ...)."
            )
    return dict(optimizers)


def _optax_factory(factory: Callable[..., Any]) -> Callable[[Any], Any]:
    """``lr -> optax.inject_hyperparams(factory)(learning_rate=lr)``: an optax
    optimizer whose learning rate lives in its state, so a sweep can vmap it."""
    injected = optax.inject_hyperparams(factory)
    return lambda learning_rate: injected(learning_rate=learning_rate)


def _check_rates(rates: Any, label: str) -> np.ndarray:
    try:
        arr = np.asarray(list(rates) if not np.isscalar(rates) else [rates], np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"compare: learning_rates{label} must be a list of positive numbers, got {rates!r}."
        ) from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(
            f"compare: learning_rates{label} is empty; pass positive rates such as "
            "[0.001, 0.01, 0.1]."
        )
    if not (np.all(np.isfinite(arr)) and np.all(arr > 0)):
        raise ValueError(
            f"compare: learning_rates{label} must all be finite and > 0, got {arr.tolist()}; "
            "use a log grid such as [0.001, 0.01, 0.1]."
        )
    return np.unique(arr)  # sorted, no duplicates


def _check_learning_rates(learning_rates: Any, labels: Iterable[str]) -> dict[str, np.ndarray]:
    labels = list(labels)
    if isinstance(learning_rates, Mapping):
        missing = [label for label in labels if label not in learning_rates]
        if missing:
            raise ValueError(
                f"compare: learning_rates has no grid for {missing}; give every optimizer one."
            )
        return {label: _check_rates(learning_rates[label], f"[{label!r}]") for label in labels}
    grid = _check_rates(learning_rates, "")
    return dict.fromkeys(labels, grid)


def _check_count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"compare: {name} must be a positive integer (>= 1), got {value!r}.")
    return int(value)


def _check_seeds(seeds: Any) -> tuple[int, ...]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        return tuple(range(_check_count("seeds", seeds)))
    try:
        seeds = tuple(seeds)
    except TypeError:
        raise ValueError(
            f"compare: seeds must be a count (>= 1) or a list of ints, got {seeds!r}."
        ) from None
    if not seeds or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 0 for s in seeds
    ):
        raise ValueError(
            "compare: seeds must be a count (>= 1) or a non-empty list of ints >= 0, "
            f"got {seeds!r}."
        )
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"compare: seeds has duplicates: {seeds}.")
    return tuple(int(s) for s in seeds)


def _n_examples(problem: _problems.Problem) -> int | None:
    leaves = jax.tree.leaves(problem.data)
    return None if not leaves else int(np.shape(leaves[0])[0])


def _check_batch_size(batch_size: Any, problems: list[_problems.Problem]) -> Any:
    """None, ``"problem"``, or an int no larger than any problem's data (as minimize asks)."""
    if batch_size is None or (isinstance(batch_size, str) and batch_size == "problem"):
        return batch_size
    batch_size = _check_count("batch_size", batch_size)
    for p in problems:
        n = _n_examples(p)
        if n is not None and batch_size > n:
            raise ValueError(
                f"compare: batch_size must be between 1 and the number of examples; "
                f"{p.name} has {n}, got {batch_size}; pass batch_size <= {n} "
                "(or None for full-batch descent)."
            )
    return batch_size


class SweepSizeWarning(UserWarning):
    """A comparison whose recorded history takes much memory or whose runs take long."""


@dataclasses.dataclass(frozen=True)
class Footprint:
    """How big a comparison is, known before it runs.

    Attributes:
        runs: optimizer x rate x seed runs, over every problem.
        run_steps: ``runs x steps``: the updates all runs take together.
        history_bytes: the recorded history: per run and step the loss and
            gradient norm on the device (float32 each) and the loss kept
            (float64), and on 2-D problems the params recorded (2 x float32)
            and kept (2 x float32): 16 bytes, 32 on 2-D problems.
    """

    runs: int
    run_steps: int
    history_bytes: int

    def describe(self) -> str:
        """One line with the numbers.

        Example:
            >>> print(Footprint(runs=972, run_steps=486_000, history_bytes=10_752_000).describe())
            972 runs x their steps = 486,000 run-steps (1x the default comparison),
            0.01 GiB of history
        """
        times = self.run_steps / DEFAULT_RUN_STEPS
        times = f"{times:,.0f}" if times >= 100 else f"{times:.3g}"
        return (
            f"{self.runs:,} runs x their steps = {self.run_steps:,} run-steps "
            f"({times}x the default comparison), {self.history_bytes / 2**30:,.3g} GiB "
            "of history"
        )


def footprint(
    problems: Sequence[_problems.Problem], rates: Mapping[str, np.ndarray], seeds: int, steps: int
) -> Footprint:
    """The :class:`Footprint` of comparing on ``problems`` (built) with these grids.

    Example:
        >>> import jaxgd as gd
        >>> f = footprint([gd.problems.get("booth")], {"adam": [0.1, 0.01]}, seeds=3, steps=100)
        >>> f.runs, f.run_steps, f.history_bytes  # 6 runs x 100 steps x 32 bytes (2-D)
        (6, 600, 19200)
    """
    runs_per_problem = sum(len(r) for r in rates.values()) * seeds
    history = sum(runs_per_problem * steps * (32 if _is_2d(p) else 16) for p in problems)
    runs = runs_per_problem * len(problems)
    return Footprint(runs=runs, run_steps=runs * steps, history_bytes=history)


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):  # not a POSIX system
        return None


def _check_footprint(size: Footprint) -> None:
    """Refuse a comparison whose history cannot fit in memory; warn of a big or long one."""
    memory = _physical_memory()
    if memory is not None and size.history_bytes > memory:
        raise ValueError(
            f"compare: seeds x steps x learning_rates too large: {size.describe()}, more than "
            f"this machine's {memory / 2**30:.3g} GiB of memory; use fewer seeds, steps, "
            "learning rates or problems."
        )
    if size.history_bytes > HISTORY_WARNING_BYTES or size.run_steps > RUN_STEPS_WARNING:
        warnings.warn(
            f"compare: a big comparison: {size.describe()}; it may take long (the default "
            "takes about a minute on 2 CPU cores); fewer seeds or steps make it smaller.",
            SweepSizeWarning,
            stacklevel=3,
        )


def check_arguments(
    problems: Any, optimizers: Any, learning_rates: Any, seeds: Any, steps: Any, batch_size: Any
) -> tuple:
    """Check :func:`compare`'s arguments (nothing compiles); raise ``ValueError`` naming one.

    Problems are built (their data loaded) to check ``batch_size`` against
    their data and to size the comparison: a history that cannot fit in
    this machine's memory is refused, a big one warned of
    (:class:`SweepSizeWarning`, with its :class:`Footprint`).

    Returns:
        ``(problems, factories, learning_rates, seeds, steps, batch_size)``,
        normalised: a list of :class:`jaxgd.problems.Problem`, a dict label ->
        factory, a dict label -> sorted rate array, a tuple of seeds, and two
        ints (or None / ``"problem"`` for ``batch_size``).

    Example:
        >>> check_arguments(["booth"], ["adam"], [0.1, 0.01], 2, 10, None)[2:]
        ({'adam': array([0.01, 0.1 ])}, (0, 1), 10, None)
    """
    factories = _check_optimizers(optimizers)
    rates = _check_learning_rates(learning_rates, factories)
    seed_list = _check_seeds(seeds)
    steps = _check_count("steps", steps)
    if not (batch_size is None or (isinstance(batch_size, str) and batch_size == "problem")):
        _check_count("batch_size", batch_size)
    problem_list = _check_problems(problems)  # last: building one loads its data
    batch_size = _check_batch_size(batch_size, problem_list)
    _check_footprint(footprint(problem_list, rates, len(seed_list), steps))
    return problem_list, factories, rates, seed_list, steps, batch_size


# --------------------------------------------------------------------------- #
# Running
# --------------------------------------------------------------------------- #


def _is_2d(problem: _problems.Problem) -> bool:
    shapes = jax.eval_shape(problem.init, jax.ShapeDtypeStruct((2,), np.uint32))  # no key made
    leaves = jax.tree.leaves(shapes)
    return len(leaves) == 1 and leaves[0].shape == (2,)


def _sweep(problem, factories, steps, batch_size, record_params, mesh=None):
    """``sweep(rates, keys, data)``: every optimizer x rate x seed, vmapped."""

    def run(factory, lr, key, data):
        init_key, batch_key = jax.random.split(key)
        result = minimize(
            problem.loss,
            problem.init(init_key),
            factory(lr),
            steps=steps,
            data=data,
            batch_size=batch_size,
            key=batch_key,
            record_params=record_params,
            mesh=mesh,
        )
        out = {
            "final_loss": result.loss,
            "status": result.status,
            "steps": result.steps,
            "curve": result.history.loss,
        }
        if record_params:
            out["path"] = result.history.params
        return out

    def sweep(rates, keys, data, minimiser):
        outs = {}
        for label, factory in factories.items():
            one = functools.partial(run, factory, data=data)
            over_seeds = jax.vmap(one, in_axes=(None, 0))
            outs[label] = jax.vmap(over_seeds, in_axes=(0, None))(rates[label], keys)
        if minimiser is not None:  # the curvature that explains vanilla's best rate
            args = () if data is None else (data,)
            outs["curvature"] = max_curvature(problem.loss, minimiser, *args, iters=60)
        return outs

    return sweep


def machine() -> dict[str, Any]:
    """The machine a comparison ran on: JAX version, backend, devices, CPUs.

    Example:
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


def _minimiser(problem: _problems.Problem) -> Any:
    """The known minimiser (the first of several), or None.

    The sweep measures the largest curvature ``L`` there (power iteration on
    Hessian-vector products): plain gradient descent converges near the
    minimum only for rates below ``2 / L``, which explains vanilla's choice.
    """
    x = problem.optimum_params
    if x is None:
        return None
    leaves = jax.tree.leaves(x)
    if len(leaves) == 1 and leaves[0].ndim == 2 and _is_2d(problem):
        return leaves[0][0]  # several minimisers (Himmelblau): the first
    return x


# --------------------------------------------------------------------------- #
# At the chosen rate: what a step costs, and the sharpness along the run
# --------------------------------------------------------------------------- #

_TIMED_RUNS = 3  # the time per step is the best of up to this many runs (after compiling),
_TIMED_SECONDS = 0.5  # fewer when they have taken this long already


def has_line_search(factory: Callable[..., Any], params: Any) -> bool:
    """Whether ``factory``'s optimizer keeps optax's ``num_linesearch_steps`` in its state
    (a line search: each step evaluates the loss more than once). Nothing is computed.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> has_line_search(gd.optimizers.get("armijo"), jnp.zeros(2)), has_line_search(
        ...     gd.sgd, jnp.zeros(2))
        (True, False)
    """
    state = jax.eval_shape(lambda p: factory(1.0).init(p), params)
    return optax.tree.get(state, "num_linesearch_steps") is not None


def _chosen_start(problem, seed):
    """Seed ``seed``'s start and minibatch key, as the sweep draws them."""
    init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
    return problem.init(init_key), batch_key


def _chosen_run(problem, factory, rate, seed, steps, batch_size, mesh, **options):
    """``minimize`` at ``rate`` from seed ``seed``'s start, as in the sweep."""
    params, batch_key = _chosen_start(problem, seed)
    return minimize(
        problem.loss,
        params,
        factory(jnp.float32(rate)),
        steps=steps,
        data=problem.data,
        batch_size=batch_size,
        key=batch_key,
        mesh=mesh,
        **options,
    )


def _seconds_per_step(problem, factory, rate, seed, steps, batch_size, mesh) -> float:
    """Wall time per step of one run: the whole loop compiled first, then timed."""
    params, batch_key = _chosen_start(problem, seed)

    def run(lr, params, data, key):
        result = minimize(problem.loss, params, factory(lr), steps=steps, data=data,
                          batch_size=batch_size, key=key, mesh=mesh)  # fmt: skip
        return result.steps

    args = (jnp.float32(rate), params, problem.data, batch_key)
    compiled = jax.jit(run).lower(*args).compile()
    taken, best, spent = steps, math.inf, 0.0
    for _ in range(_TIMED_RUNS):
        t0 = time.perf_counter()
        taken = int(jax.block_until_ready(compiled(*args)))
        seconds = time.perf_counter() - t0
        best, spent = min(best, seconds), spent + seconds
        if spent > _TIMED_SECONDS:
            break
    return best / max(taken, 1)


def _evaluations_per_step(problem, factory, rate, seed, steps, batch_size) -> float:
    """1 + the mean ``num_linesearch_steps`` over a replay of the run with
    :func:`jaxgd.make_step` (the same start and minibatches), read every step."""
    params, batch_key = _chosen_start(problem, seed)
    step = make_step(problem.loss, factory(jnp.float32(rate)))
    state = step.init(params)
    data = problem.data
    rows = None
    if data is not None and batch_size is not None:
        rows = batch_indices(_n_examples(problem), batch_size, steps, batch_key)
    trials = []
    for k in range(steps):
        batch = () if data is None else (data if rows is None else take_rows(data, rows[k]),)
        params, state, value = step(params, state, *batch)
        if not math.isfinite(float(value)):
            break  # the run diverged: minimize stops there too
        trials.append(int(optax.tree.get(state, "num_linesearch_steps", 0)))
    return 1.0 + float(np.mean(trials)) if trials else math.nan


def _step_cost(problem, factory, rate, seed, steps, batch_size, mesh) -> StepCost:
    params, _ = _chosen_start(problem, seed)
    line_search = has_line_search(factory, params)
    evaluations = (
        _evaluations_per_step(problem, factory, rate, seed, steps, batch_size)
        if line_search
        else 1.0
    )
    seconds = _seconds_per_step(problem, factory, rate, seed, steps, batch_size, mesh)
    return StepCost(
        evaluations_per_step=evaluations,
        microseconds_per_step=1e6 * seconds,
        line_search=line_search,
    )


def curvature_every(steps: int) -> int:
    """Steps between two sharpness records in ``compare(curvature=True)``: about 50 records.

    Example:
        >>> curvature_every(500), curvature_every(20)
        (10, 1)
    """
    return max(1, steps // 50)


def _sharpness_run(problem, factory, rate, seed, steps, batch_size, mesh) -> SharpnessRun:
    """One run at ``rate`` recording the sharpness every :func:`curvature_every` steps.

    Called from Python, not under ``vmap``: the measurement's ``lax.cond``
    then really skips the steps between records.
    """
    every = curvature_every(steps)
    result = _chosen_run(
        problem, factory, rate, seed, steps, batch_size, mesh, curvature_every=every
    )
    h = result.history
    at = np.asarray(h.step)
    kept = at % every == 0
    pre = None if h.preconditioned is None else np.asarray(h.preconditioned, np.float64)[kept]
    return SharpnessRun(
        every=every,
        steps=at[kept],
        sharpness=np.asarray(h.curvature, np.float64)[kept],
        preconditioned=pre,
        loss=np.asarray(h.loss, np.float64),
        limit=stability_limit(factory(float(rate))),
    )


def _measure_chosen(problem, factories, per_opt, seed, steps, batch_size, mesh, sharpness):
    """Fill in each optimizer's step cost (always) and sharpness (with ``sharpness``)."""
    for label, factory in factories.items():
        runs = per_opt[label]
        args = (problem, factory, runs.learning_rate, seed, steps, batch_size, mesh)
        runs.cost = _step_cost(*args)
        if sharpness:
            runs.sharpness = _sharpness_run(*args)


def _run_problem(problem, factories, rates, seeds, steps, batch_size, mesh=None, sharpness=False):
    record = _is_2d(problem)
    sweep = _sweep(problem, factories, steps, batch_size, record, mesh)
    jrates = {label: jnp.asarray(r, jnp.float32) for label, r in rates.items()}
    keys = jnp.stack([jax.random.PRNGKey(s) for s in seeds])
    data = problem.data  # with a mesh, minimize splits it over the devices itself
    minimiser = _minimiser(problem)
    t0 = time.perf_counter()
    compiled = jax.jit(sweep).lower(jrates, keys, data, minimiser).compile()
    compile_seconds = time.perf_counter() - t0
    t0 = time.perf_counter()
    outs = jax.block_until_ready(compiled(jrates, keys, data, minimiser))
    run_seconds = time.perf_counter() - t0
    outs = jax.tree.map(np.asarray, outs)
    curvature = float(outs.pop("curvature")) if "curvature" in outs else math.nan

    per_opt = {}
    for label in factories:
        o = outs[label]
        final = o["final_loss"].astype(np.float64)
        status = o["status"].astype(np.int64)
        diverged = (status == Status.DIVERGED) | ~np.isfinite(final)
        curves = o["curve"].astype(np.float64)
        to_target = steps_to_target(curves, problem.target)
        to_target = np.where(diverged, np.inf, to_target)
        chosen = choose_learning_rate(final, diverged, to_target, problem.target)
        per_opt[label] = OptimizerRuns(
            learning_rates=rates[label],
            final_loss=final,
            status=status,
            steps=o["steps"].astype(np.int64),
            diverged=diverged,
            steps_to_target=to_target,
            curves=curves,
            paths=o.get("path"),
            chosen=chosen,
        )
    n_runs = sum(r.size for r in rates.values()) * len(seeds)
    params, _ = _chosen_start(problem, seeds[0])
    if sharpness or any(has_line_search(f, params) for f in factories.values()):
        _measure_chosen(problem, factories, per_opt, seeds[0], steps, batch_size, mesh, sharpness)
    return ProblemResult(
        curvature=curvature if math.isfinite(curvature) and curvature > 0 else None,
        problem=problem,
        batch_size=batch_size,
        optimizers=per_opt,
        compile_seconds=compile_seconds,
        run_seconds=run_seconds,
        n_runs=n_runs,
    )


def _progress_bar(items, enabled):
    if not enabled:
        return items, None
    from tqdm.auto import tqdm

    bar = tqdm(items, desc="compare", unit="problem", leave=True)
    return bar, bar


def compare(
    problems: Iterable[str | _problems.Problem] | str = DEFAULT_PROBLEMS,
    optimizers: Mapping[str, Callable[..., Any]] | Iterable[str] = DEFAULT_OPTIMIZERS,
    *,
    learning_rates: Sequence[float] | Mapping[str, Sequence[float]] = DEFAULT_LEARNING_RATES,
    seeds: int | Sequence[int] = DEFAULT_SEEDS,
    steps: int = DEFAULT_STEPS,
    batch_size: int | None | str = "problem",
    progress: bool = False,
    mesh: Any = None,
    curvature: bool = False,
) -> Comparison:
    """Compare optimizers on problems: sweep learning rates and seeds, tune, report.

    Per problem, every optimizer x learning rate x seed runs in one compiled,
    vmapped call of :func:`jaxgd.minimize`; the protocol in this module's
    docstring then picks each optimizer's rate and computes the metrics.

    Args:
        problems: catalogue names or :class:`jaxgd.problems.Problem` objects.
        optimizers: labels of the optimizer registry
            (:func:`jaxgd.optimizers.names`), or a dict label -> factory
            taking ``learning_rate`` and returning a jaxgd optimizer
            (``{"vanilla": gd.sgd, "adam": gd.adam}``) or an optax one
            (``{"optax-lamb": optax.lamb}``: swept through
            ``optax.inject_hyperparams``, which keeps the rate in the state).
        learning_rates: the grid (positive; sorted for you), shared by all
            optimizers, or a dict label -> grid.
        seeds: a count ``n`` (seeds ``0..n-1``) or a list of seeds.
        steps: updates per run.
        batch_size: ``"problem"`` for each problem's own default
            (:attr:`Problem.batch_size`), None for full batch everywhere, or
            an int for every problem with data.
        progress: show a tqdm progress bar over problems.
        mesh: a :class:`jax.sharding.Mesh`: run data-parallel, each problem's
            data split over the mesh (see ``minimize(mesh=...)``); the number
            of examples and the batch size must divide by its size. In a
            multi-process run every process builds the same problems and
            contributes its own rows.
        curvature: after each problem's sweep, run every optimizer once more
            at its chosen rate (from the first seed's start) recording the
            sharpness every ``max(1, steps // 50)`` steps (see
            ``minimize(curvature_every=...)``), with its stability limit
            (:func:`jaxgd.sharpness.stability_limit`); the report draws it.
            Off by default: it costs a run and a compile per optimizer.

    With ``curvature=True``, or when an optimizer is a line search (its state
    holds optax's ``num_linesearch_steps``, as ``armijo``'s does), each
    optimizer's step is also measured at its chosen rate: the function
    evaluations per step (a line search's trial points counted by replaying
    the run with :func:`jaxgd.make_step`) and the wall time per step (a timed
    single-seed run, compiled first), so that the report compares time to
    target, not only steps (:class:`jaxgd.results.StepCost`).

    Returns:
        A :class:`jaxgd.results.Comparison`: ``summary()``,
        ``summary_table()``, ``to_json()``; ``gd.report.save(result, dir)``
        writes its report.

    Raises:
        ValueError: an unknown name, an empty or non-positive grid, seeds or
            steps below 1, a ``batch_size`` above a problem's number of
            examples, a history too big for this machine's memory; raised
            before anything compiles (see :func:`check_arguments`).
        TypeError: ``curvature`` not a bool.

    Warns:
        SweepSizeWarning: a comparison of more than 1 GiB of history or 100
            times the default's run-steps, with its numbers.

    Example:
        >>> import jaxgd as gd
        >>> result = gd.compare(["booth"], ["vanilla"], learning_rates=[0.01, 0.1], seeds=1,
        ...                     steps=50)
        >>> row = result.summary()[0]
        >>> row["optimizer"], row["learning_rate"], row["diverged"]
        ('vanilla', 0.1, 0)
    """
    if not isinstance(curvature, bool):
        raise TypeError(
            f"compare: curvature must be True or False, got {curvature!r}; pass "
            "curvature=True to record the sharpness at each chosen rate."
        )
    problem_list, factories, rates, seed_list, steps, batch_size = check_arguments(
        problems, optimizers, learning_rates, seeds, steps, batch_size
    )

    results = []
    items, bar = _progress_bar(problem_list, progress)
    started = time.perf_counter()
    for problem in items:
        if bar is not None:
            bar.set_postfix_str(problem.name)
        if problem.data is None:
            bs = None
        elif batch_size == "problem":
            bs = problem.batch_size
        else:
            bs = batch_size
        results.append(
            _run_problem(problem, factories, rates, seed_list, steps, bs, mesh, curvature)
        )
    if bar is not None:
        bar.close()
    total_seconds = time.perf_counter() - started

    labels = list(factories)
    solved = {label: [r.solved_steps(label) for r in results] for label in labels}
    profile = performance_profile(solved)
    return Comparison(
        problems=results,
        optimizer_labels=labels,
        seeds=seed_list,
        steps=steps,
        profile=profile,
        speedups=speedups(solved, "vanilla" if "vanilla" in labels else labels[0]),
        reference=("vanilla" if "vanilla" in labels else labels[0]),
        machine=machine(),
        total_seconds=total_seconds,
        protocol=PROTOCOL.strip(),
    )
