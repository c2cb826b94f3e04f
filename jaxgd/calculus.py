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
after ``x`` (``partials(loss, params, batch)``), and ``x`` may be any pytree.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

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


# --------------------------------------------------------------------------- #
# Derivatives and gradients
# --------------------------------------------------------------------------- #


def derivative(f: Callable[[Any], Any]) -> Callable[[Any], jax.Array]:
    """The compiled derivative ``df/dx`` of a scalar function of one scalar.

    Example:
        >>> import jaxgd as gd
        >>> df = gd.derivative(lambda x: x**3)
        >>> float(df(2.0))  # 3 * 2**2
        12.0
    """
    return jax.jit(jax.grad(f))


def gradient(f: Callable[..., Any], argnums: int | tuple[int, ...] = 0) -> Callable[..., Any]:
    """``jax.jit(jax.grad(f, argnums))``: the compiled gradient of scalar ``f``.

    The result has the structure of the differentiated argument. Calling
    ``gradient`` twice with the same ``f`` returns the same compiled function.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> g = gd.gradient(lambda w: jnp.sum(w**2))
        >>> g(jnp.array([1.0, -2.0]))
        Array([ 2., -4.], dtype=float32)
    """
    return _compiled(jax.grad, f, _argnums(argnums))


def _argnums(argnums):
    return tuple(argnums) if isinstance(argnums, list) else argnums


@functools.lru_cache(maxsize=64)
def _compiled(transform, f, argnums):
    """``jax.jit(transform(f, argnums))``, built once per function (the cache holds
    the 64 most recent, so it keeps few closures alive)."""
    return jax.jit(transform(f, argnums=argnums))


def value_and_gradient(
    f: Callable[..., Any], argnums: int | tuple[int, ...] = 0
) -> Callable[..., tuple[jax.Array, Any]]:
    """``jax.jit(jax.value_and_grad(f, argnums))``: ``f`` and its gradient in one pass.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> value, grad = gd.value_and_gradient(lambda w: jnp.sum(w**2))(jnp.array([3.0]))
        >>> float(value), grad
        (9.0, Array([6.], dtype=float32))
    """
    return _compiled(jax.value_and_grad, f, _argnums(argnums))


def partials(f: Callable[..., Any], params: Any, *args: Any) -> Any:
    """The partial derivatives of scalar ``f`` at ``params``, named like ``params``.

    Each partial derivative says how ``f`` moves when that one parameter moves
    and every other is held fixed. ``params`` may be any pytree; a dict of
    named parameters gives back a dict with the same names.

    Args:
        f: scalar function ``f(params, *args)``.
        params: where to differentiate.
        *args: further arguments of ``f`` (a batch of data, say), held fixed.

    Example:
        >>> import jaxgd as gd
        >>> def predicted_marks(p, hours, attendance):
        ...     return p["hours_studied"] * hours + p["attendance"] * attendance + p["bias"]
        >>> p = {"hours_studied": 5.0, "attendance": 0.3, "bias": 20.0}
        >>> d = gd.partials(predicted_marks, p, 6.0, 90.0)
        >>> {name: float(v) for name, v in d.items()}
        {'attendance': 90.0, 'bias': 1.0, 'hours_studied': 6.0}
    """
    return gradient(f)(params, *args)


def partial(f: Callable[..., Any], name: Any) -> Callable[..., jax.Array]:
    """The partial derivative of ``f`` with respect to the parameter ``name``.

    ``name`` is a key of the params dict (or an index of a tuple or list).
    The result is a function of the same arguments as ``f``.

    Example:
        >>> import jaxgd as gd
        >>> f = lambda p: p["a"] ** 2 * p["b"]
        >>> d_da = gd.partial(f, "a")
        >>> float(d_da({"a": 3.0, "b": 2.0}))  # 2 * a * b
        12.0
    """
    grad_f = gradient(f)

    def partial_derivative(params, *args):
        try:
            params[name]
        except (KeyError, IndexError, TypeError):
            known = list(params) if isinstance(params, dict) else f"0..{len(params) - 1}"
            raise KeyError(
                f"partial: no parameter named {name!r}; the params have {known}."
            ) from None
        return grad_f(params, *args)[name]

    return partial_derivative


def directional_derivative(f: Callable[..., Any], x: Any, v: Any, *args: Any) -> jax.Array:
    """``grad f(x) . v``: how fast ``f`` changes when ``x`` moves along ``v``.

    Computed as one forward-mode product (a JVP), without forming the gradient.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: jnp.sum(x**2)
        >>> float(gd.directional_derivative(f, jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0])))
        2.0
    """
    return _jvp(f, x, v, args)


@functools.partial(jax.jit, static_argnums=0)
def _jvp(f, x, v, args):
    return jax.jvp(lambda y: f(y, *args), (x,), (v,))[1]


# --------------------------------------------------------------------------- #
# Gradient check
# --------------------------------------------------------------------------- #


class GradientCheckError(AssertionError):
    """Raised by ``check_gradient(..., raise_on_fail=True)`` when autodiff and
    finite differences disagree."""


class GradientCheck(NamedTuple):
    """The outcome of :func:`check_gradient`.

    Attributes:
        max_relative_error: the largest relative difference between the
            autodiff gradient and central finite differences, over coordinates.
        worst_index: the flat index of that coordinate.
        autodiff: the autodiff gradient (structured like ``x``).
        finite_difference: the finite-difference gradient (structured like ``x``).
        eps: the base step used.
        rtol: the tolerance ``max_relative_error`` was held to.
        ok: ``max_relative_error <= rtol``.
    """

    max_relative_error: float
    worst_index: int
    autodiff: Any
    finite_difference: Any
    eps: float
    rtol: float
    ok: bool


def check_gradient(
    f: Callable[..., Any],
    x: Any,
    *args: Any,
    eps: float | None = None,
    rtol: float | None = None,
    raise_on_fail: bool = False,
) -> GradientCheck:
    """Check ``f``'s autodiff gradient at ``x`` against central finite differences.

    Each coordinate ``i`` is moved by ``h_i = eps * max(1, |x_i|)`` both ways:
    ``(f(x + h_i e_i) - f(x - h_i e_i)) / (2 h_i)``. The central difference has
    truncation error ``O(h^2)`` and round-off error ``O(u |f| / h)`` (``u`` the
    dtype's unit round-off); the default ``eps = u ** (1/3)`` balances the two
    (about 5e-3 in float32, 6e-6 in float64). The relative error of coordinate
    ``i`` is ``|ad_i - fd_i| / max(|ad_i|, |fd_i|, floor)`` where the floor,
    ``sqrt(u) * max(1, max_j |ad_j|)``, keeps coordinates whose derivative is
    (nearly) zero from dividing by zero. The default ``rtol`` is 1e-2 in
    float32 and 1e-6 in float64: a wrong derivative is typically off by O(1).

    Args:
        f: scalar function ``f(x, *args)``.
        x: a floating-point pytree.
        *args: further arguments of ``f``, held fixed.
        eps: base finite-difference step (see above).
        rtol: tolerance on the largest relative error.
        raise_on_fail: raise :class:`GradientCheckError` instead of returning
            a result with ``ok=False``.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> check = gd.check_gradient(lambda x: jnp.sum(jnp.sin(x) * x), jnp.array([0.5, 2.0]))
        >>> check.ok
        True
    """
    flat, unravel = ravel_pytree(x)
    if not jnp.issubdtype(flat.dtype, jnp.floating):
        raise TypeError(
            f"check_gradient: x must hold floating-point values, got dtype {flat.dtype}; "
            "pass floats (e.g. jnp.asarray(x, jnp.float32))."
        )
    u = float(jnp.finfo(flat.dtype).eps)
    eps = u ** (1 / 3) if eps is None else float(eps)
    if rtol is None:
        rtol = 1e-2 if flat.dtype.itemsize <= 4 else 1e-6
    if not eps > 0:
        raise ValueError(f"check_gradient: eps must be > 0, got {eps}.")
    ad, fd = _gradient_pair(f, x, jnp.asarray(eps, flat.dtype), args)
    ad, fd = np.asarray(ad, np.float64), np.asarray(fd, np.float64)
    floor = np.sqrt(u) * max(1.0, float(np.max(np.abs(ad), initial=0.0)))
    rel = np.abs(ad - fd) / np.maximum(np.maximum(np.abs(ad), np.abs(fd)), floor)
    rel = np.where(np.isnan(rel), np.inf, rel)
    worst = int(np.argmax(rel)) if rel.size else 0
    err = float(rel[worst]) if rel.size else 0.0
    result = GradientCheck(
        max_relative_error=err,
        worst_index=worst,
        autodiff=unravel(jnp.asarray(ad, flat.dtype)),
        finite_difference=unravel(jnp.asarray(fd, flat.dtype)),
        eps=eps,
        rtol=float(rtol),
        ok=bool(err <= rtol),
    )
    if raise_on_fail and not result.ok:
        raise GradientCheckError(
            f"gradient check failed: relative error {err:.3g} > rtol {rtol:g} at flat "
            f"index {worst} (autodiff {ad[worst]:.6g}, finite difference {fd[worst]:.6g})."
        )
    return result


@functools.partial(jax.jit, static_argnums=0)
def _gradient_pair(f, x, eps, args):
    flat, unravel = ravel_pytree(x)  # here, not outside: a new unravel would recompile
    g = lambda y: f(unravel(y), *args)
    autodiff = jax.grad(g)(flat)
    steps = eps * jnp.maximum(1.0, jnp.abs(flat))

    def central_difference(i):
        e = jnp.zeros_like(flat).at[i].set(steps[i])
        return (g(flat + e) - g(flat - e)) / (2 * steps[i])

    fd = jax.lax.map(central_difference, jnp.arange(flat.size), batch_size=256)
    return autodiff, fd


# --------------------------------------------------------------------------- #
# Curvature
# --------------------------------------------------------------------------- #


def hvp(f: Callable[..., Any], x: Any, v: Any, *args: Any) -> Any:
    """The Hessian-vector product ``H(x) v`` of scalar ``f``, forward-over-reverse.

    Costs about two gradient evaluations; the Hessian is never formed.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: x[0] ** 2 + 3 * x[0] * x[1]  # H = [[2, 3], [3, 0]]
        >>> gd.hvp(f, jnp.array([1.0, 1.0]), jnp.array([1.0, 0.0]))
        Array([2., 3.], dtype=float32)
    """
    return _hvp_jit(f, x, v, args)


def _hvp(f, x, v, args):
    return jax.jvp(lambda y: jax.grad(f)(y, *args), (x,), (v,))[1]


_hvp_jit = jax.jit(_hvp, static_argnums=0)


def max_curvature(
    f: Callable[..., Any],
    x: Any,
    *args: Any,
    iters: int = 100,
    key: jax.Array | None = None,
) -> jax.Array:
    """The largest Hessian eigenvalue ``L`` of ``f`` at ``x``, by power iteration.

    Repeats ``v <- H v / |H v|`` with :func:`hvp` (``iters`` times, inside one
    compiled loop) from a random start, and returns the Rayleigh quotient
    ``v . H v``. Power iteration finds the eigenvalue of largest magnitude; for
    a convex loss that is the largest curvature. It converges at the rate
    ``|lambda_2 / lambda_1|`` per iteration.

    Args:
        f: scalar function ``f(x, *args)``.
        x: where to measure (any floating-point pytree).
        *args: further arguments of ``f``, held fixed.
        iters: power-iteration steps.
        key: PRNG key of the random start (default ``PRNGKey(0)``).

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: 0.5 * (10 * x[0] ** 2 + x[1] ** 2)
        >>> round(float(gd.max_curvature(f, jnp.zeros(2))), 4)
        10.0
    """
    if isinstance(iters, bool) or not isinstance(iters, int) or iters < 1:
        raise ValueError(f"max_curvature: iters must be a positive integer, got {iters!r}.")
    key = jax.random.PRNGKey(0) if key is None else key
    return _power_iteration(f, int(iters), x, key, args)


@functools.partial(jax.jit, static_argnums=(0, 1))
def _power_iteration(f, iters, x, key, args):
    flat, unravel = ravel_pytree(x)
    hv = lambda v: ravel_pytree(_hvp(f, x, unravel(v), args))[0]
    v0 = jax.random.normal(key, flat.shape, flat.dtype)
    v0 = v0 / jnp.linalg.norm(v0)

    def step(_, v):
        w = hv(v)
        return w / jnp.maximum(jnp.linalg.norm(w), jnp.finfo(w.dtype).tiny)

    v = jax.lax.fori_loop(0, iters, step, v0)
    return jnp.vdot(v, hv(v))


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

    Measures ``L`` with :func:`max_curvature`; plain gradient descent is stable
    for learning rates below ``2 / L`` and ``1 / L`` is a safe choice.

    Example:
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
