"""The stability limit of any optimizer, at a step of its schedule.

The *sharpness* is the largest eigenvalue ``lambda_1`` of the loss's Hessian
recorded along a run (at one point, ``jaxgd.calculus`` calls it the curvature
``L``; both come from ``jaxgd.calculus.top_eigenvalue``).
On a quadratic, plain gradient descent with rate ``lr`` is stable exactly when
``lambda_1 < 2 / lr``. On a neural network, full-batch gradient descent drives
the sharpness up ("progressive sharpening") until it reaches ``2 / lr`` and
then hovers there while the loss keeps falling, non-monotonically: the *edge
of stability* (Cohen et al., "Gradient Descent on Neural Networks Typically
Occurs at the Edge of Stability", ICLR 2021). Adaptive methods do the same
with the *preconditioned* sharpness (Cohen et al., "Adaptive Gradient Methods
at the Edge of Stability", 2022).

Each optimizer states its own limit (`Optimizer.stability_limit`) and
preconditioner (`Optimizer.preconditioner`); this module reads the
rate a schedule gives at a step and asks it.
"""

from __future__ import annotations

from typing import Any

from jaxgd.optimizers._base import Optimizer, StabilityLimit

__all__ = ["stability_limit"]


def stability_limit(optimizer: Any, step: int = 0) -> StabilityLimit | None:
    """The sharpness above which ``optimizer``'s step at ``step`` overshoots.

    Returns:
        The optimizer's `StabilityLimit` (which sharpness it bounds,
        the value, the formula) at the rate it uses at ``step`` (a schedule
        is read there), or None: for optax's optimizers, a rate of 0, or a
        rule without a known limit.

    Examples:
        >>> import jaxgd as gd
        >>> gd.optimizers.stability_limit(gd.sgd(0.1))
        StabilityLimit(kind='sharpness', limit=20.0, formula='2/lr')
        >>> round(gd.optimizers.stability_limit(gd.adam(0.1)).limit)
        380
    """
    if not isinstance(optimizer, Optimizer):
        return None
    lr = optimizer.learning_rate
    lr = float(lr(step)) if callable(lr) else float(lr)
    if lr <= 0:
        return None
    return optimizer.stability_limit(lr)
