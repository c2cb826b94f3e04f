"""The calculus of learning, as compiled functions.

* The **derivative** says how a function's output moves when its input moves.
* A **partial derivative** does that for one parameter with the others held
  fixed (how predicted marks move with hours studied, attendance held fixed).
* The **gradient** collects the partial derivatives; it points uphill, so
  gradient descent steps against it.
* The **curvature** (largest Hessian eigenvalue ``L`` at a point) says how
  large a step may be: plain gradient descent is stable for step sizes below
  ``2 / L``. The same eigenvalue recorded along a run is the **sharpness**
  (``jaxgd.minimize(..., sharpness_every=)``); both come from the one power
  iteration here, ``top_eigenvalue`` on ``hessian_matvec``.

Every function here is built from ``jax.grad``, ``jax.jvp`` and ``jax.jit``;
nothing forms a Hessian. Functions of several arguments take the extra ones
after ``x`` (``partials(loss, params, batch)``), and ``x`` may be any pytree;
a function of named numbers gets its partials named
(``partials(marks, hours=6.0, attendance=90.0)``). A function that returns
``(value, aux)`` is differentiated with ``has_aux=True``, as in ``jax.grad``.

| module | concept |
| --- | --- |
| `jaxgd.calculus._derivatives` | derivatives and gradients, compiled once per transform |
| `jaxgd.calculus._partials` | partials named like the variables |
| `jaxgd.calculus._gradient_check` | gradients checked against float64 differences |
| `jaxgd.calculus._curvature` | curvature (``L``) and the step sizes it allows |

Each compiled transform takes the function split by `jaxgd._partition`
(traced leaves as arguments, the static rest compiled in), as a run does.

Imports point down: ``partials`` and ``gradient_check`` import
``derivatives``; ``curvature`` stands alone. The package imports nothing else
of jaxgd (it is a floor: `jaxgd.optimizers._stability` and the run layer may import
it, never the reverse).
"""

from jaxgd.calculus._curvature import (
    LearningRateSuggestion,
    hessian_matvec,
    hvp,
    max_curvature,
    suggest_learning_rate,
    top_eigenvalue,
)
from jaxgd.calculus._derivatives import (
    derivative,
    directional_derivative,
    gradient,
    value_and_gradient,
)
from jaxgd.calculus._gradient_check import GradientCheck, GradientCheckError, check_gradient
from jaxgd.calculus._partials import partial_derivative, partials

__all__ = [
    "GradientCheck",
    "GradientCheckError",
    "LearningRateSuggestion",
    "check_gradient",
    "derivative",
    "directional_derivative",
    "gradient",
    "hessian_matvec",
    "hvp",
    "max_curvature",
    "partial_derivative",
    "partials",
    "suggest_learning_rate",
    "top_eigenvalue",
    "value_and_gradient",
]
