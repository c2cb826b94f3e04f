"""The calculus of learning, as compiled functions.

* The **derivative** says how a function's output moves when its input moves.
* A **partial derivative** does that for one parameter with the others held
  fixed (how predicted marks move with hours studied, attendance held fixed).
* The **gradient** collects the partial derivatives; it points uphill, so
  gradient descent steps against it.
* The **curvature** (largest Hessian eigenvalue ``L``) says how large a step
  may be: plain gradient descent is stable for step sizes below ``2 / L``.

Every function here is built from ``jax.grad``, ``jax.jvp`` and ``jax.jit``;
nothing forms a Hessian. Functions of several arguments take the extra ones
after ``x`` (``partials(loss, params, batch)``), and ``x`` may be any pytree;
a function of named numbers gets its partials named
(``partials(marks, hours=6.0, attendance=90.0)``). A function that returns
``(value, aux)`` is differentiated with ``has_aux=True``, as in ``jax.grad``.

| module | concept |
| --- | --- |
| :mod:`~jaxgd.calculus.derivatives` | derivatives and gradients, compiled once per function |
| :mod:`~jaxgd.calculus.partials` | partials named like the variables |
| :mod:`~jaxgd.calculus.gradient_check` | gradients checked against float64 differences |
| :mod:`~jaxgd.calculus.curvature` | curvature (``L``) and the step sizes it allows |

Imports point down: ``partials`` and ``gradient_check`` import
``derivatives``; ``curvature`` stands alone. The package imports nothing else
of jaxgd (it is a floor: :mod:`jaxgd.sharpness` and the run layer may import
it, never the reverse).
"""

from jaxgd.calculus.curvature import (
    LearningRateSuggestion,
    hvp,
    max_curvature,
    suggest_learning_rate,
)
from jaxgd.calculus.derivatives import (
    derivative,
    directional_derivative,
    gradient,
    value_and_gradient,
)
from jaxgd.calculus.gradient_check import GradientCheck, GradientCheckError, check_gradient
from jaxgd.calculus.partials import partial, partials

__all__ = [
    "GradientCheck",
    "GradientCheckError",
    "LearningRateSuggestion",
    "check_gradient",
    "derivative",
    "directional_derivative",
    "gradient",
    "hvp",
    "max_curvature",
    "partial",
    "partials",
    "suggest_learning_rate",
    "value_and_gradient",
]
