"""What :func:`jaxgd.compare` accepts and how big a comparison is, checked before it runs.

Every user error of :func:`jaxgd.compare` is raised here, before anything
compiles (:func:`check_arguments`): unknown names, empty or non-positive grids,
bad seeds (tuning and evaluation), steps and batch sizes. The size of a
comparison is known before it runs (:class:`Footprint`): one whose recorded
history cannot fit in this machine's memory is refused, a big or long one warned of
(:class:`SweepSizeWarning`). The defaults of :func:`jaxgd.compare` live here
too, since the checks name them and the footprint is measured against them.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import jax
import numpy as np
import optax

from jaxgd import optimizers as _opt
from jaxgd import problems as _problems
from jaxgd._checks import positive_int
from jaxgd._host import physical_memory
from jaxgd.distributed import split_runs

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_PROBLEMS",
    "DEFAULT_RUN_STEPS",
    "DEFAULT_SEEDS",
    "DEFAULT_EVAL_SEEDS",
    "DEFAULT_STEPS",
    "EVAL_SEED_BASE",
    "HISTORY_WARNING_BYTES",
    "RUN_STEPS_WARNING",
    "Arguments",
    "Footprint",
    "SweepSizeWarning",
    "check_arguments",
    "check_mesh",
    "evaluation_calls",
    "footprint",
    "is_2d",
    "n_examples",
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
    float(f"{10.0 ** (k / 2):.3g}") for k in range(-8, 5)
)
"""Thirteen rates, half a decade apart, from ``1e-4`` to ``100`` (``3.16e-4``, ...)."""

DEFAULT_STEPS = 500
DEFAULT_SEEDS = 1
"""Tuning seeds: each optimizer's rate is chosen on these. One, as DeepOBS tunes:
what is reported comes from the evaluation seeds, so a rate that diverges on
other seeds shows there. With the 13 default rates it makes 13 slots per
optimizer, which the 13 evaluation seeds fill in one call."""

DEFAULT_EVAL_SEEDS = 13
"""Evaluation seeds: the chosen setting is run again from these, and they are reported.
13 paired seeds let a Wilcoxon test reach ``p = 2 / 2**13 = 2.4e-4`` before Holm's
correction, so a consistent difference survives a table of up to 204 rows (the
default table has at most 9 problems x 4 metrics x 3 pairs = 108). A tied pair
is dropped: 12 left reach ``4.9e-4``, enough for the default's 72 rows."""

EVAL_SEED_BASE = 1000
"""A count of evaluation seeds ``m`` means seeds ``1000, ..., 1000 + m - 1`` (or,
after tuning seeds reaching past 999, the ``m`` seeds after the largest)."""

DEFAULT_RUN_STEPS = (
    len(DEFAULT_PROBLEMS)
    * len(DEFAULT_OPTIMIZERS)
    * len(DEFAULT_LEARNING_RATES)
    * DEFAULT_SEEDS
    * (1 + -(-DEFAULT_EVAL_SEEDS // (len(DEFAULT_LEARNING_RATES) * DEFAULT_SEEDS)))
    * DEFAULT_STEPS
)
"""Updates all runs of the default comparison take together (351,000: the tuning
sweep and one evaluation call of the same size, see :func:`evaluation_calls`)."""

HISTORY_WARNING_BYTES = 2**30
"""A comparison recording more history than this (1 GiB) is warned of."""
RUN_STEPS_WARNING = 100 * DEFAULT_RUN_STEPS
"""A comparison of more run-steps than this (100x the default) is warned of."""


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
            if not isinstance(name, str) or name not in _opt.names(contrib=True):
                raise ValueError(
                    f"compare: unknown optimizer {name!r} in optimizers; known optimizers: "
                    f"{', '.join(_opt.names())}, and optax.contrib's: "
                    f"{', '.join(_opt.names(contrib=True)[len(_opt.names()) :])} "
                    "(or pass a dict label -> factory)."
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
        # An optax optimizer's learning rate is a traced value, so a sweep vmaps
        # over it: minimize sees through the closures (jaxgd._partition).
        if not isinstance(made, optax.GradientTransformation | _opt.Optimizer):
            raise TypeError(
                f"compare: optimizers[{label!r}](learning_rate) returned {type(made).__name__}, "
                "not an optimizer; pass a factory of jaxgd optimizers (gd.sgd, gd.momentum, "
                "gd.adam, ...) or of optax ones (optax.adam, ...)."
            )
    return dict(optimizers)


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


def _check_seeds(seeds: Any) -> tuple[int, ...]:
    if isinstance(seeds, int | np.integer) and not isinstance(seeds, bool):
        return tuple(range(positive_int("compare", "seeds", seeds)))
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


def _check_eval_seeds(eval_seeds: Any, seeds: tuple[int, ...]) -> tuple[int, ...]:
    """A count (>= 2) or a list of ints >= 0, disjoint from the tuning ``seeds``."""
    advice = "pass a count of at least 2 (20 by default) or a list of distinct ints >= 0"
    if isinstance(eval_seeds, int | np.integer) and not isinstance(eval_seeds, bool):
        if eval_seeds < 2:
            raise ValueError(
                f"compare: eval_seeds must be at least 2, got {eval_seeds}: a verdict compares "
                f"optimizers over paired evaluation seeds; {advice}."
            )
        base = max(EVAL_SEED_BASE, max(seeds) + 1)  # after the tuning seeds
        eval_seeds = range(base, base + int(eval_seeds))
    try:
        eval_seeds = tuple(eval_seeds)
    except TypeError:
        raise ValueError(f"compare: eval_seeds is {eval_seeds!r}; {advice}.") from None
    if len(eval_seeds) < 2 or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and s >= 0 for s in eval_seeds
    ):
        raise ValueError(f"compare: eval_seeds is {eval_seeds!r}; {advice}.")
    if len(set(eval_seeds)) != len(eval_seeds):
        raise ValueError(f"compare: eval_seeds has duplicates: {eval_seeds}; {advice}.")
    shared = sorted(set(eval_seeds) & set(seeds))
    if shared:
        raise ValueError(
            f"compare: eval_seeds and seeds share {shared}: the rate is chosen on seeds and "
            "reported on eval_seeds, which must be fresh; pass disjoint lists (or counts)."
        )
    return tuple(int(s) for s in eval_seeds)


def n_examples(problem: _problems.Problem) -> int | None:
    """The number of examples in ``problem``'s data (None without data)."""
    leaves = jax.tree.leaves(problem.data)
    return None if not leaves else int(np.shape(leaves[0])[0])


def _check_batch_size(batch_size: Any, problems: list[_problems.Problem]) -> Any:
    """None, ``"problem"``, or an int no larger than any problem's data (as minimize asks)."""
    if batch_size is None or (isinstance(batch_size, str) and batch_size == "problem"):
        return batch_size
    batch_size = positive_int("compare", "batch_size", batch_size)
    for p in problems:
        n = n_examples(p)
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

        Examples:
            >>> print(Footprint(runs=702, run_steps=351_000, history_bytes=8_736_000).describe())
            702 runs x their steps = 351,000 run-steps (1x the default comparison),
            0.00814 GiB of history
        """
        times = self.run_steps / DEFAULT_RUN_STEPS
        times = f"{times:,.0f}" if times >= 100 else f"{times:.3g}"
        return (
            f"{self.runs:,} runs x their steps = {self.run_steps:,} run-steps "
            f"({times}x the default comparison), {self.history_bytes / 2**30:,.3g} GiB "
            "of history"
        )


def check_mesh(mesh: Any, rates: Mapping[str, Any], seeds: int, executor: Any = None) -> None:
    """Refuse a ``compare(mesh=...)`` with neither a ``"runs"`` nor a ``"data"`` axis, or
    a ``"runs"`` axis with more devices than an optimizer has runs, and an
    ``executor`` without ``submit`` or beside a mesh (nothing compiles).

    Examples:
        >>> check_mesh(None, {"adam": [0.1]}, 1)
    """
    runs, _ = split_runs(mesh, caller="compare")
    fewest = min(len(r) for r in rates.values()) * seeds
    if runs > fewest:
        raise ValueError(
            f"compare: the mesh's 'runs' axis has {runs} devices but an optimizer has only "
            f"{fewest} runs (learning rates x seeds) to shard; use a 'runs' axis of at most "
            f"{fewest} devices (gd.distributed.runs_mesh(jax.devices()[:{fewest}])) or more "
            "rates or seeds."
        )
    submits = callable(getattr(executor, "submit", None))
    if executor is not None and (mesh is not None or not submits):
        raise ValueError(
            f"compare: executor must have a submit(fn, *args) method (a "
            f"concurrent.futures.Executor, a Dask Client...), got {executor!r}, and it takes "
            "no mesh (each job runs on one worker's device); pass one of mesh= and executor=."
        )


def evaluation_calls(rates: Mapping[str, Any], seeds: int, eval_seeds: int) -> int:
    """How many times a problem's compiled sweep runs again for the evaluation seeds.

    The evaluation reuses the tuning sweep's program (no second compile): each
    optimizer's ``n_rates x seeds`` slots hold evaluation runs at its chosen
    rate, so ``eval_seeds`` runs take ``ceil(eval_seeds / slots)`` calls
    (the optimizer with the fewest slots decides).

    Examples:
        >>> evaluation_calls({"adam": range(12)}, 3, 20), evaluation_calls({"adam": [0.1]}, 3, 20)
        (1, 7)
    """
    slots = min(len(r) for r in rates.values()) * seeds
    return -(-eval_seeds // slots)


def footprint(
    problems: Sequence[_problems.Problem],
    rates: Mapping[str, np.ndarray],
    seeds: int,
    steps: int,
    eval_seeds: int = 0,
) -> Footprint:
    """The :class:`Footprint` of comparing on ``problems`` (built) with these grids:
    the tuning sweep, and its evaluation calls when ``eval_seeds`` are given.

    Examples:
        >>> import jaxgd as gd
        >>> f = footprint([gd.problems.get("booth")], {"adam": [0.1, 0.01]}, seeds=3, steps=100)
        >>> f.runs, f.run_steps, f.history_bytes  # 6 runs x 100 steps x 32 bytes (2-D)
        (6, 600, 19200)
    """
    calls = 1 + (evaluation_calls(rates, seeds, eval_seeds) if eval_seeds else 0)
    runs_per_problem = calls * sum(len(r) for r in rates.values()) * seeds
    history = sum(runs_per_problem * steps * (32 if is_2d(p) else 16) for p in problems)
    runs = runs_per_problem * len(problems)
    return Footprint(runs=runs, run_steps=runs * steps, history_bytes=history)


def _check_footprint(size: Footprint) -> None:
    """Refuse a comparison whose history cannot fit in memory; warn of a big or long one."""
    memory = physical_memory()
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


class Arguments(NamedTuple):
    """:func:`compare`'s arguments, checked and normalised (see :func:`check_arguments`)."""

    problems: list[_problems.Problem]
    factories: dict[str, Callable[..., Any]]
    rates: dict[str, np.ndarray]
    seeds: tuple[int, ...]
    steps: int
    batch_size: int | str | None
    eval_seeds: tuple[int, ...]


def check_arguments(
    problems: Any,
    optimizers: Any,
    learning_rates: Any,
    seeds: Any,
    steps: Any,
    batch_size: Any,
    eval_seeds: Any = DEFAULT_EVAL_SEEDS,
) -> Arguments:
    """Check :func:`compare`'s arguments (nothing compiles); raise ``ValueError`` naming one.

    Problems are built (their data loaded) to check ``batch_size`` against
    their data and to size the comparison: a history that cannot fit in
    this machine's memory is refused, a big one warned of
    (:class:`SweepSizeWarning`, with its :class:`Footprint`).

    Returns:
        :class:`Arguments`: a list of :class:`jaxgd.problems.Problem`, a dict
        label -> factory, a dict label -> sorted rate array, a tuple of
        tuning seeds, steps, the batch size (an int, None or ``"problem"``)
        and a tuple of evaluation seeds (a count ``m`` gives
        ``EVAL_SEED_BASE, ..., EVAL_SEED_BASE + m - 1``).

    Examples:
        >>> args = check_arguments(["booth"], ["adam"], [0.1, 0.01], 2, 10, None, 3)
        >>> args.rates, args.seeds, args.eval_seeds
        ({'adam': array([0.01, 0.1 ])}, (0, 1), (1000, 1001, 1002))
    """
    factories = _check_optimizers(optimizers)
    rates = _check_learning_rates(learning_rates, factories)
    seed_list = _check_seeds(seeds)
    eval_list = _check_eval_seeds(eval_seeds, seed_list)
    steps = positive_int("compare", "steps", steps)
    if not (batch_size is None or (isinstance(batch_size, str) and batch_size == "problem")):
        positive_int("compare", "batch_size", batch_size)
    problem_list = _check_problems(problems)  # last: building one loads its data
    batch_size = _check_batch_size(batch_size, problem_list)
    _check_footprint(footprint(problem_list, rates, len(seed_list), steps, len(eval_list)))
    return Arguments(problem_list, factories, rates, seed_list, steps, batch_size, eval_list)


def is_2d(problem: _problems.Problem) -> bool:
    """Whether ``problem``'s params are one vector of two numbers (its path can be drawn)."""
    shapes = jax.eval_shape(problem.init, jax.ShapeDtypeStruct((2,), np.uint32))  # no key made
    leaves = jax.tree.leaves(shapes)
    return len(leaves) == 1 and leaves[0].shape == (2,)
