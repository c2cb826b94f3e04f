"""jaxgd: learn, run and compare gradient descent with JAX.

Losses are pure functions; ``jax.grad`` and ``jax.jit`` turn them into
compiled gradient functions (:mod:`jaxgd.calculus`); the descent variants
(:mod:`jaxgd.optimizers`) follow optax's protocol; :func:`minimize` runs them
in one compiled loop that records the trajectory and says how the run ended.

Examples:
    >>> import jax.numpy as jnp, jaxgd as gd
    >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> result = gd.minimize(loss, jnp.zeros(3), gd.adam(0.1), steps=300)
    >>> bool(result.loss < 1e-6)
    True
"""

# ruff: noqa: E402 - a Ctrl-C during ``import jax`` is checked right after it
from jaxgd._host import DURING_IMPORT as _DURING_IMPORT  # first: Ctrl-C is noted

# isort: split
import jax as _jax  # swallows a Ctrl-C in its first seconds (the import goes on)

_DURING_IMPORT.check()  # so it is raised here, at once, if one came

from jaxgd import calculus, checkpoint, comparison, distributed, optimizers, problems, report, run
from jaxgd._host import clear_caches
from jaxgd.calculus import (
    check_gradient,
    derivative,
    directional_derivative,
    gradient,
    hvp,
    max_curvature,
    partial_derivative,
    partials,
    suggest_learning_rate,
    value_and_gradient,
)
from jaxgd.comparison import Comparison, compare, lr_range_test
from jaxgd.optimizers import Optimizer, adagrad, adam, adamw, momentum, rmsprop, sgd
from jaxgd.run import History, Result, RunInterrupted, Status, make_step, minimize

__version__ = "0.1.0"

_DURING_IMPORT.release()  # a Ctrl-C that a later import swallowed is raised too
del _jax

__all__ = [
    "Comparison",
    "History",
    "Optimizer",
    "Result",
    "RunInterrupted",
    "Status",
    "adagrad",
    "adam",
    "adamw",
    "calculus",
    "check_gradient",
    "checkpoint",
    "clear_caches",
    "compare",
    "comparison",
    "derivative",
    "directional_derivative",
    "distributed",
    "gradient",
    "hvp",
    "lr_range_test",
    "make_step",
    "max_curvature",
    "minimize",
    "momentum",
    "optimizers",
    "partial_derivative",
    "partials",
    "problems",
    "report",
    "rmsprop",
    "run",
    "sgd",
    "suggest_learning_rate",
    "value_and_gradient",
]
