"""At each optimizer's chosen rate: what a step costs, and the sharpness along the run.

After the sweep of a problem has chosen each optimizer's rate,
:func:`jaxgd.compare` may measure each optimizer once more there, from the
first seed's start: the function evaluations per step (a line search's trial
points, counted by replaying the run with :func:`jaxgd.make_step`) and the
wall time per step (:class:`jaxgd.comparison.StepCost`), and, with
``sharpness=True``, the sharpness every :func:`sharpness_every` steps against
the optimizer's stability limit (:class:`jaxgd.comparison.SharpnessRun`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxgd.comparison._checks import n_examples
from jaxgd.comparison._runs import SharpnessRun, StepCost
from jaxgd.optimizers import stability_limit
from jaxgd.run import batch_indices, make_step, minimize

__all__ = [
    "chosen_start",
    "has_line_search",
    "measure_chosen",
    "seed_key_table",
    "seed_keys",
    "sharpness_every",
]

_TIMED_RUNS = 3  # the time per step is the best of up to this many runs (after compiling),
_TIMED_SECONDS = 0.5  # fewer when they have taken this long already


def has_line_search(factory: Callable[..., Any], params: Any) -> bool:
    """Whether ``factory``'s optimizer keeps optax's ``num_linesearch_steps`` in its state
    (a line search: each step evaluates the loss more than once). Nothing is computed.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> has_line_search(gd.optimizers.get("armijo"), jnp.zeros(2)), has_line_search(
        ...     gd.sgd, jnp.zeros(2))
        (True, False)
    """
    state = jax.eval_shape(lambda p: factory(1.0).init(p), params)
    return optax.tree.get(state, "num_linesearch_steps") is not None


def seed_keys(seed: int) -> tuple[jax.Array, jax.Array]:
    """The seed rule of a comparison: seed ``seed`` -> (start params key, minibatch key).

    The sweep (:func:`jaxgd.compare`) and the runs at the chosen rates both draw
    a seed's start and minibatches with these keys, so a run measured again
    starts where the sweep's run did.

    Examples:
        >>> init_key, batch_key = seed_keys(0)
        >>> init_key.shape, bool((init_key != batch_key).any())
        ((2,), True)
    """
    init_key, batch_key = jax.random.split(jax.random.PRNGKey(seed))
    return init_key, batch_key


@jax.jit
def _keys_of(seeds: jax.Array) -> jax.Array:
    return jax.vmap(lambda s: jax.random.split(jax.random.PRNGKey(s)))(seeds)


def seed_key_table(seeds) -> jax.Array:
    """Every seed's :func:`seed_keys`, stacked: shape ``(len(seeds), 2, 2)``; one
    vectorised call, not one per seed (``--seeds 100000`` draws its keys in
    milliseconds), equal to them bit for bit.

    Examples:
        >>> table = seed_key_table([0, 5])
        >>> bool((table[1, 0] == seed_keys(5)[0]).all()), table.shape
        (True, (2, 2, 2))
    """
    array = np.asarray(seeds, dtype=np.int64).reshape(-1)
    if array.size and (array.min() < 0 or array.max() >= 2**32):  # beyond one uint32 word
        return jnp.stack([jnp.stack(seed_keys(int(s))) for s in array])
    return _keys_of(jnp.asarray(array.astype(np.uint32)))


def chosen_start(problem, seed):
    """Seed ``seed``'s start and minibatch key (:func:`seed_keys`), as the sweep draws them."""
    init_key, batch_key = seed_keys(seed)
    return problem.init(init_key), batch_key


def _chosen_run(problem, factory, rate, seed, steps, batch_size, mesh, **options):
    """``minimize`` at ``rate`` from seed ``seed``'s start, as in the sweep."""
    params, batch_key = chosen_start(problem, seed)
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
    params, batch_key = chosen_start(problem, seed)

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
    params, batch_key = chosen_start(problem, seed)
    step = make_step(problem.loss, factory(jnp.float32(rate)))
    state = step.init(params)
    data = problem.data
    rows = None
    if data is not None and batch_size is not None:
        rows = batch_indices(n_examples(problem), batch_size, steps, batch_key)
    trials = []
    for k in range(steps):
        batch = () if data is None else (data if rows is None else _rows(data, rows[k]),)
        params, state, value = step(params, state, *batch)
        if not math.isfinite(float(value)):
            break  # the run diverged: minimize stops there too
        trials.append(int(optax.tree.get(state, "num_linesearch_steps", 0)))
    return 1.0 + float(np.mean(trials)) if trials else math.nan


def _rows(data, rows):
    """The minibatch of ``data`` at ``rows``, as the run loop takes it (``jnp.take``
    along the example axis; the run wing's face does not export its helper)."""
    return jax.tree.map(lambda a: jnp.take(a, rows, axis=0), data)


def _step_cost(problem, factory, rate, seed, steps, batch_size, mesh) -> StepCost:
    params, _ = chosen_start(problem, seed)
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


def sharpness_every(steps: int) -> int:
    """Steps between two sharpness records in ``compare(sharpness=True)``: about 50 records.

    Examples:
        >>> sharpness_every(500), sharpness_every(20)
        (10, 1)
    """
    return max(1, steps // 50)


def _sharpness_run(problem, factory, rate, seed, steps, batch_size, mesh) -> SharpnessRun:
    """One run at ``rate`` recording the sharpness every :func:`sharpness_every` steps.

    Called from Python, not under ``vmap``: the measurement's ``lax.cond``
    then really skips the steps between records.
    """
    every = sharpness_every(steps)
    result = _chosen_run(
        problem, factory, rate, seed, steps, batch_size, mesh, sharpness_every=every
    )
    h = result.history
    at = np.asarray(h.step)
    kept = at % every == 0
    pre = None if h.preconditioned is None else np.asarray(h.preconditioned, np.float64)[kept]
    return SharpnessRun(
        every=every,
        steps=at[kept],
        sharpness=np.asarray(h.sharpness, np.float64)[kept],
        preconditioned=pre,
        loss=np.asarray(h.loss, np.float64),
        limit=_as_dict(stability_limit(factory(float(rate)))),
    )


def measure_chosen(problem, factories, per_opt, seed, steps, batch_size, mesh, sharpness):
    """Fill in each optimizer's step cost (always) and sharpness (with ``sharpness``)."""
    for label, factory in factories.items():
        runs = per_opt[label]
        args = (problem, factory, runs.learning_rate, seed, steps, batch_size, mesh)
        runs.cost = _step_cost(*args)
        if sharpness:
            runs.sharpness = _sharpness_run(*args)


def _as_dict(limit):
    """The limit as the results hold it (JSON): ``{"kind", "limit", "formula"}``."""
    return None if limit is None else limit._asdict()
