"""Sharpness along a run: why a step overshoots, and where it stops overshooting.

The *sharpness* is the largest eigenvalue ``lambda_1`` of the loss's Hessian.
On a quadratic, plain gradient descent with rate ``lr`` is stable exactly when
``lambda_1 < 2 / lr``. On a neural network, full-batch gradient descent drives
the sharpness up ("progressive sharpening") until it reaches ``2 / lr`` and
then hovers there while the loss keeps falling, non-monotonically: the *edge
of stability* (Cohen et al., "Gradient Descent on Neural Networks Typically
Occurs at the Edge of Stability", ICLR 2021).

``gd.minimize(..., curvature_every=k)`` records ``lambda_1`` every ``k``
steps (:func:`top_eigenvalue`: power iteration on Hessian-vector products,
warm-started from the previous eigenvector, never forming the Hessian). For
Adam it also records the *preconditioned* sharpness, the largest eigenvalue
of ``P^-1 H`` with Adam's diagonal preconditioner (:func:`adam_preconditioner`),
whose limit is ``(2 + 2 b1) / ((1 - b1) lr)`` (Cohen et al., "Adaptive
Gradient Methods at the Edge of Stability", 2022). :func:`stability_limit`
gives each optimizer's limit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from jaxgd import optimizers

__all__ = ["adam_preconditioner", "hessian_matvec", "stability_limit", "top_eigenvalue"]


def hessian_matvec(loss: Callable[[Any], jax.Array], params: Any) -> Callable[[jax.Array], Any]:
    """``v -> H v`` on flat vectors, for the Hessian of ``loss`` at ``params``
    (forward-over-reverse: about two gradients' cost; no Hessian formed)."""
    flat, unravel = ravel_pytree(params)
    grad = jax.grad(loss)

    def matvec(v):
        return ravel_pytree(jax.jvp(grad, (params,), (unravel(v.astype(flat.dtype)),))[1])[0]

    return matvec


def top_eigenvalue(
    matvec: Callable[[jax.Array], jax.Array], start: jax.Array, iters: int
) -> tuple[jax.Array, jax.Array]:
    """The eigenvalue of largest magnitude of a symmetric ``matvec``, and its vector.

    Power iteration: ``v <- A v / |A v|`` ``iters`` times from ``start``, then
    the Rayleigh quotient ``v . A v``. Warm-started from the previous
    eigenvector, a few iterations follow a slowly moving top eigenvalue.

    Example:
        >>> import jax.numpy as jnp
        >>> A = jnp.diag(jnp.array([3.0, 1.0]))
        >>> value, vector = top_eigenvalue(lambda v: A @ v, jnp.ones(2), 50)
        >>> round(float(value), 4)
        3.0
    """
    tiny = jnp.finfo(start.dtype).tiny

    def iterate(_, v):
        w = matvec(v)
        return w / jnp.maximum(jnp.linalg.norm(w), tiny)

    v = start / jnp.maximum(jnp.linalg.norm(start), tiny)
    v = jax.lax.fori_loop(0, iters, iterate, v)
    return jnp.vdot(v, matvec(v)), v


def adam_preconditioner(optimizer: Any, grads: Any, state: Any) -> jax.Array | None:
    """Adam's diagonal preconditioner ``P`` for the step about to be taken (flat).

    Written as preconditioned heavy-ball momentum on ``m`` (the running mean
    of gradients without bias correction), Adam steps
    ``p <- p - lr P^-1 m`` with
    ``P = (1 - b1^t) (sqrt(v / (1 - b2^t)) + eps)``, where ``v`` already
    includes this step's gradient and ``t`` counts this step (Cohen et al.
    2022, section 2). None for optimizers other than jaxgd's ``adam`` and
    ``adamw``.
    """
    if not isinstance(optimizer, optimizers.adam):  # adamw is an adam
        return None
    t = state.count + 1
    b1, b2 = optimizer.b1, optimizer.b2
    nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * jnp.real(g * jnp.conj(g)), grads, state.nu)
    flat_nu = ravel_pytree(nu)[0]
    return (1 - b1**t) * (jnp.sqrt(flat_nu / (1 - b2**t)) + optimizer.eps)


def stability_limit(optimizer: Any, step: int = 0) -> dict[str, float] | None:
    """The sharpness above which the optimizer's step overshoots, at ``step``.

    * ``sgd``: ``2 / lr`` — on a quadratic, ``x <- (1 - lr lambda) x`` shrinks
      only while ``|1 - lr lambda| < 1``;
    * ``momentum`` (heavy ball, ``v = g + beta v``): ``(2 + 2 beta) / lr`` —
      the recursion ``x_{k+1} = (1 + beta - lr lambda) x_k - beta x_{k-1}`` is
      stable for ``lr lambda < 2 + 2 beta`` (Cohen et al. 2021, appendix; the
      same for Nesterov's form up to the ``g + beta v`` look-ahead, which we
      do not claim);
    * ``adam``/``adamw``: the *preconditioned* sharpness (of ``P^-1 H``) below
      ``(2 + 2 b1) / ((1 - b1) lr)``, 38 / lr at ``b1 = 0.9`` (Cohen et al.
      2022, eq. 2: Adam is heavy ball on ``m = b1 m + (1 - b1) g`` with
      preconditioner ``P``).

    Returns:
        ``{"kind": "sharpness" | "preconditioned", "limit": value}``, or None
        for optimizers without a known limit (a schedule is read at ``step``).

    Example:
        >>> import jaxgd as gd
        >>> stability_limit(gd.sgd(0.1))["limit"], round(stability_limit(gd.adam(0.1))["limit"])
        (20.0, 380)
    """
    if not isinstance(optimizer, optimizers.Optimizer):
        return None
    lr = optimizer.learning_rate
    lr = float(lr(step)) if callable(lr) else float(lr)
    if lr <= 0:
        return None
    if isinstance(optimizer, optimizers.adam):
        b1 = float(optimizer.b1)
        return {"kind": "preconditioned", "limit": (2 + 2 * b1) / ((1 - b1) * lr)}
    if isinstance(optimizer, optimizers.momentum) and not optimizer.nesterov:
        return {"kind": "sharpness", "limit": (2 + 2 * float(optimizer.beta)) / lr}
    if isinstance(optimizer, optimizers.sgd):
        return {"kind": "sharpness", "limit": 2 / lr}
    return None
