"""Curvature and the step size it allows: ``hvp``, ``max_curvature``,
``suggest_learning_rate``.

The largest Hessian eigenvalue ``L`` is found by power iteration on
Hessian-vector products (forward-over-reverse), so no Hessian is formed;
plain gradient descent is stable for step sizes below ``2 / L``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxgd._checks import positive_int
from jaxgd._partition import combine, partition

__all__ = [
    "LearningRateSuggestion",
    "hessian_matvec",
    "hvp",
    "max_curvature",
    "suggest_learning_rate",
    "top_eigenvalue",
]


def hvp(f: Callable[..., Any], x: Any, v: Any, *args: Any) -> Any:
    """The Hessian-vector product ``H(x) v`` of scalar ``f``, forward-over-reverse.

    Costs about two gradient evaluations; the Hessian is never formed.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: x[0] ** 2 + 3 * x[0] * x[1]  # H = [[2, 3], [3, 0]]
        >>> gd.hvp(f, jnp.array([1.0, 1.0]), jnp.array([1.0, 0.0]))
        Array([2., 3.], dtype=float32)
    """
    traced, static = partition(f)
    return _hvp(static, traced, x, v, args)


@functools.partial(jax.jit, static_argnums=0)
def _hvp(static, traced, x, v, args):
    f = combine(traced, static)  # f split as jaxgd._partition splits it
    return jax.jvp(lambda y: jax.grad(f)(y, *args), (x,), (v,))[1]


def max_curvature(
    f: Callable[..., Any],
    x: Any,
    *args: Any,
    iters: int = 100,
    key: jax.Array | None = None,
) -> jax.Array:
    """The largest Hessian eigenvalue ``L`` of ``f`` at ``x``, by power iteration.

    Repeats ``v <- H v / |H v|`` with `hvp` (``iters`` times, inside one
    compiled loop) from a random start, and returns the Rayleigh quotient
    ``v . H v`` (see :func:`top_eigenvalue`: where the eigenvalue of largest
    magnitude is negative, a saddle, it iterates again, shifted, to find the
    largest). It converges at the rate ``|lambda_2 / lambda_1|`` per iteration
    (shifted: ``(lambda_2 - m) / (lambda_1 - m)``).

    Args:
        f: scalar function ``f(x, *args)``.
        x: where to measure (any floating-point pytree).
        *args: further arguments of ``f``, held fixed.
        iters: power-iteration steps.
        key: PRNG key of the random start (default ``PRNGKey(0)``).

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: 0.5 * (10 * x[0] ** 2 + x[1] ** 2)
        >>> round(float(gd.max_curvature(f, jnp.zeros(2))), 4)
        10.0
        >>> saddle = lambda x: 0.5 * (10 * x[0] ** 2 - 20 * x[1] ** 2)  # not -20
        >>> round(float(gd.max_curvature(saddle, jnp.zeros(2))), 4)
        10.0
    """
    iters = positive_int("max_curvature", "iters", iters)
    key = jax.random.PRNGKey(0) if key is None else key
    traced, static = partition(f)
    return _power_iteration(static, iters, traced, x, key, args)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _power_iteration(static, iters, traced, x, key, args):
    f = combine(traced, static)
    flat = ravel_pytree(x)[0]
    matvec = hessian_matvec(lambda y: f(y, *args), x)
    start = jax.random.normal(key, flat.shape, flat.dtype)
    return top_eigenvalue(matvec, start, iters)[0]


def hessian_matvec(f: Callable[[Any], jax.Array], x: Any) -> Callable[[jax.Array], jax.Array]:
    """``v -> H v`` on flat vectors, for the Hessian of scalar ``f`` at ``x``
    (forward-over-reverse, as `hvp`: about two gradients' cost; no
    Hessian formed)."""
    flat, unravel = ravel_pytree(x)
    grad = jax.grad(f)

    def matvec(v):
        return ravel_pytree(jax.jvp(grad, (x,), (unravel(v.astype(flat.dtype)),))[1])[0]

    return matvec


def top_eigenvalue(
    matvec: Callable[[jax.Array], jax.Array], start: jax.Array, iters: int
) -> tuple[jax.Array, jax.Array]:
    """The largest eigenvalue of a symmetric ``matvec``, and its vector.

    Power iteration: ``v <- A v / |A v|`` ``iters`` times from ``start``, then
    the Rayleigh quotient ``v . A v``. That finds the eigenvalue of largest
    magnitude, ``m``; where ``m`` is negative (a saddle or a maximum, whose
    largest eigenvalue is smaller in magnitude, or negative too), the same
    iteration on ``A - m I`` (eigenvalues ``lambda_i - m >= 0``) from ``start``
    finds the largest. It converges at the rate ``|lambda_2 / lambda_1|`` per
    iteration (the shifted pass at ``(lambda_2 - m) / (lambda_1 - m)``, slower:
    eigenvalues 10, 9 and -20 give 0.97 against 0.9); warm-started from the
    previous eigenvector (as the run loop's sharpness records are), a few
    iterations follow a slowly moving top eigenvalue. The shifted pass is a
    ``lax.cond``: it costs nothing where ``m >= 0``, except under ``vmap``,
    where both branches run (twice the iterations). The one power iteration of
    jaxgd: `max_curvature` and the sharpness along a run both use it.

    Examples:
        >>> import jax.numpy as jnp
        >>> A = jnp.diag(jnp.array([3.0, 1.0]))
        >>> value, vector = top_eigenvalue(lambda v: A @ v, jnp.ones(2), 50)
        >>> round(float(value), 4)
        3.0
        >>> S = jnp.diag(jnp.array([3.0, -5.0]))  # the largest magnitude is -5
        >>> round(float(top_eigenvalue(lambda v: S @ v, jnp.ones(2), 50)[0]), 4)
        3.0
    """
    value, vector = _power(matvec, start, iters)

    def shifted(_):
        return _power(lambda v: matvec(v) - value * v, start, iters, rayleigh=matvec)

    return jax.lax.cond(value < 0, shifted, lambda _: (value, vector), None)


def _power(matvec, start, iters, rayleigh=None):
    """``iters`` power iterations of ``matvec`` from ``start``: the Rayleigh quotient
    (of ``rayleigh``, default ``matvec``) at the vector reached, and the vector."""
    tiny = jnp.finfo(start.dtype).tiny

    def iterate(_, v):
        w = matvec(v)
        norm = jnp.linalg.norm(w)
        # A v = 0 (a flat direction; the shifted pass where every eigenvalue is m):
        # keep v, a unit vector to go on from, not a zero one that stays zero.
        return jnp.where(norm > 0, w / jnp.maximum(norm, tiny), v)

    v = start / jnp.maximum(jnp.linalg.norm(start), tiny)
    v = jax.lax.fori_loop(0, iters, iterate, v)
    return jnp.vdot(v, (rayleigh or matvec)(v)), v


class LearningRateSuggestion(NamedTuple):
    """Step sizes for plain gradient descent from the curvature ``L``.

    Attributes:
        curvature: ``L``, the largest Hessian eigenvalue at the point.
        max_stable: ``2 / L``: above it, gradient descent overshoots and
            diverges along the steepest direction.
        recommended: ``1 / L``: the step that minimises a quadratic with
            curvature ``L`` along that direction in one step.
    """

    curvature: float
    max_stable: float
    recommended: float


def suggest_learning_rate(
    f: Callable[..., Any], x: Any, *args: Any, iters: int = 100
) -> LearningRateSuggestion:
    """Suggest a step size for gradient descent on ``f`` near ``x``.

    Measures ``L`` with `max_curvature`; plain gradient descent is stable
    for learning rates below ``2 / L`` and ``1 / L`` is a safe choice.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> s = gd.suggest_learning_rate(lambda x: 2.0 * jnp.sum(x**2), jnp.ones(3))
        >>> round(s.curvature, 4), round(s.max_stable, 4), round(s.recommended, 4)
        (4.0, 0.5, 0.25)
    """
    curvature = float(max_curvature(f, x, *args, iters=iters))
    if not curvature > 0:
        raise ValueError(
            f"suggest_learning_rate: the largest curvature at x is {curvature:.3g} (not > 0): "
            "f is not convex there, so 2/L gives no step size; start from another x."
        )
    return LearningRateSuggestion(curvature, 2.0 / curvature, 1.0 / curvature)
