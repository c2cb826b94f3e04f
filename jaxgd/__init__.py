"""jaxgd: learn, run and compare gradient descent with JAX.

Losses are pure functions; ``jax.grad`` and ``jax.jit`` turn them into
compiled gradient functions (:mod:`jaxgd.calculus`); the descent variants
(:mod:`jaxgd.optimizers`) follow optax's protocol; :func:`minimize` runs them
in one compiled loop that records the trajectory and says how the run ended.

Example:
    >>> import jax.numpy as jnp, jaxgd as gd
    >>> loss = lambda w: jnp.sum((w - 1.0) ** 2)
    >>> result = gd.minimize(loss, jnp.zeros(3), gd.adam(0.1), steps=300)
    >>> bool(result.loss < 1e-6)
    True
"""

from jaxgd import (
    checkpoint,
    distributed,
    losses,
    models,
    optimizers,
    problems,
    protocol,
    report,
    results,
    sharpness,
)
from jaxgd.calculus import (
    GradientCheck,
    GradientCheckError,
    LearningRateSuggestion,
    check_gradient,
    derivative,
    directional_derivative,
    gradient,
    hvp,
    max_curvature,
    partial,
    partials,
    suggest_learning_rate,
    value_and_gradient,
)
from jaxgd.compare import compare
from jaxgd.lr_range import LRRangeTest, lr_range_test
from jaxgd.minimize import History, Result, RunInterrupted, Status, minimize
from jaxgd.optimizers import (
    Optimizer,
    adagrad,
    adam,
    adamw,
    apply_updates,
    armijo,
    is_optimizer,
    momentum,
    rmsprop,
    sgd,
)
from jaxgd.results import Comparison
from jaxgd.step import Step, make_step

__version__ = "0.1.0"

__all__ = [
    "Comparison",
    "GradientCheck",
    "GradientCheckError",
    "History",
    "LRRangeTest",
    "LearningRateSuggestion",
    "Optimizer",
    "Result",
    "RunInterrupted",
    "Status",
    "Step",
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "armijo",
    "check_gradient",
    "checkpoint",
    "compare",
    "derivative",
    "directional_derivative",
    "distributed",
    "gradient",
    "hvp",
    "is_optimizer",
    "losses",
    "lr_range_test",
    "make_step",
    "max_curvature",
    "minimize",
    "models",
    "optimizers",
    "momentum",
    "partial",
    "partials",
    "problems",
    "protocol",
    "report",
    "results",
    "rmsprop",
    "sgd",
    "sharpness",
    "suggest_learning_rate",
    "value_and_gradient",
]
