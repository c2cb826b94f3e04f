"""Checking a gradient against finite differences in float64: ``check_gradient``.

The gradient (autodiff's or your own) is compared with central differences of
``f``, evaluated in float64, along each layer's gradient and a few random
directions; the tolerance is float32 round-off, not a guess (see
`check_gradient`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from jaxgd._partition import combine, partition
from jaxgd.calculus._derivatives import check_has_aux, compiled_transform

__all__ = ["GradientCheck", "GradientCheckError", "check_gradient"]


class GradientCheckError(AssertionError):
    """Raised by ``check_gradient(..., raise_on_fail=True)`` when the gradient
    and finite differences disagree."""


class GradientCheck(NamedTuple):
    """The outcome of `check_gradient`.

    Attributes:
        ok: ``max_relative_error <= rtol``.
        max_relative_error: the largest relative error over the directions.
        worst_direction: the direction where it occurred, in words.
        directions: every direction checked, in words.
        relative_errors: the relative error along each direction.
        from_gradient: ``<g, v>`` for each direction ``v`` (``g`` the gradient
            checked), in float64.
        finite_difference: the central difference of ``f`` along each ``v``,
            computed in float64.
        gradient: the gradient checked (structured like ``x``).
        eps: the base finite-difference step.
        rtol: the tolerance ``max_relative_error`` was held to.
    """

    ok: bool
    max_relative_error: float
    worst_direction: str
    directions: tuple[str, ...]
    relative_errors: np.ndarray
    from_gradient: np.ndarray
    finite_difference: np.ndarray
    gradient: Any
    eps: float
    rtol: float


def check_gradient(
    f: Callable[..., Any],
    x: Any,
    *args: Any,
    grad: Callable[..., Any] | None = None,
    has_aux: bool = False,
    eps: float | None = None,
    rtol: float | None = None,
    random_directions: int = 2,
    seed: int = 0,
    raise_on_fail: bool = False,
) -> GradientCheck:
    """Check the gradient of ``f`` at ``x`` against finite differences in float64.

    The gradient ``g`` (autodiff's, or your own ``grad(x, *args)``), computed
    as you would compute it (in ``x``'s dtype), is compared along a few unit
    directions ``v`` with the derivative of ``f`` along ``v``, which is
    measured by a central difference ``(f(x + h v) - f(x - h v)) / (2 h)``
    with ``f`` evaluated in float64 (under ``jax.enable_x64``; ``x`` and the
    floating-point leaves of ``args`` are converted exactly). The directions:

    * for each leaf of ``x`` (each layer's weights, biases ...), ``g``
      restricted to that leaf: a leaf's gradient that is off by a factor
      ``1 + e`` is off by ``e / (1 + e)`` here;
    * for each leaf, a random direction within it (a leaf whose gradient is
      missing, or wrong across it, shows here);
    * ``random_directions`` random directions over all of ``x``.

    In float64 the central difference is accurate to about ``u^(2/3)``
    (``u = 2.2e-16``, with ``h = eps * max(1, max |x|)`` and ``eps = u^(1/3)``
    by default), far below float32 round-off, and ``h`` is so small that it
    rarely straddles a ReLU kink, which is what made coordinate-wise float32
    differences raise false alarms on real networks. The relative error along
    ``v`` is ``|<g, v> - fd| / max(|<g, v>|, |fd|, s, 10 u |f(x)| / h)``:
    ``s = |g_S| / sqrt(n_S)``, the size of ``<g, v>`` for a typical direction
    of its support ``S`` (``n_S`` coordinates), keeps a random direction
    nearly orthogonal to ``g`` from dividing round-off by almost nothing, and
    ``10 u |f(x)| / h`` (above the differences' own round-off) keeps a leaf
    whose gradient is truly zero from dividing noise by noise. At a
    stationary point (``g`` about 0) the test says little: check elsewhere.
    If ``f`` computes in float32 even from float64 inputs (it casts), the
    differences are float32's (``eps = u^(1/3)`` of float32, accurate to about
    1e-4), and the check is that much coarser.

    The default ``rtol`` is ``1e-3`` for a gradient in float32 (or lower
    precision): a correct gradient's float32 round-off stays far below it
    (under 1e-6 on a 64-32-10 tanh or ReLU network of 300 digits; sums of many
    more terms round off more, hence the margin), while a layer whose gradient
    is off by 5 % shows 0.048. For a float64 gradient it is ``1e-6`` (the same
    networks in float64: under 1e-8). For a gradient of coarser resolution
    than float32's ``1e-3`` allows it is ``4 u`` of the gradient's dtype:
    ``0.031`` for bfloat16 (``u = 2^-7``), whose correct gradients show about
    ``0.5 u`` (0.0036 on ``sum(sin(x) x)``, 0.0033 on the 64-32-10 tanh
    network), while a 5 % error still shows 0.044.

    Args:
        f: scalar function ``f(x, *args)`` (``(scalar, aux)`` with ``has_aux``).
        x: a pytree of floating-point arrays.
        *args: further arguments of ``f``, held fixed.
        grad: your gradient function ``grad(x, *args)`` to check instead of
            autodiff's; it returns a pytree structured like ``x``.
        has_aux: ``f`` returns ``(value, aux)``; aux is ignored.
        eps: base finite-difference step (see above).
        rtol: tolerance on the largest relative error (see above).
        random_directions: how many random directions over all of ``x``.
        seed: seed of the random directions (NumPy's ``default_rng``).
        raise_on_fail: raise `GradientCheckError` instead of returning
            a result with ``ok=False``.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: jnp.sum(jnp.sin(x) * x)
        >>> gd.check_gradient(f, jnp.array([0.5, 2.0])).ok
        True
        >>> wrong = lambda x: 1.05 * (jnp.sin(x) + x * jnp.cos(x))  # 5 % too large
        >>> check = gd.check_gradient(f, jnp.array([0.5, 2.0]), grad=wrong)
        >>> check.ok, round(check.max_relative_error, 3)  # 0.05 / 1.05
        (False, 0.048)
    """
    leaves, treedef = _checked_point(x, grad, has_aux, random_directions, eps)
    if grad is None:
        g = compiled_transform(jax.grad, f, 0, has_aux, "gd.check_gradient")(x, *args)
        g = g[0] if has_aux else g
    else:
        g = grad(x, *args)
    g = _same_structure_as_x(g, x, treedef, leaves)
    fd, gv, value, h, eps, u_value = _differences(
        f, has_aux, x, g, args, eps, random_directions, seed
    )
    rel = _relative_errors(g, fd, gv, value, h, u_value, random_directions)
    if rtol is None:
        u_gradient = max(float(jnp.finfo(jnp.result_type(a)).eps) for a in jax.tree.leaves(g))
        rtol = 1e-6 if max(u_gradient, u_value) <= 1e-15 else max(1e-3, 4 * u_gradient)
    names = _direction_names(x, random_directions)
    worst = int(np.argmax(rel))
    result = GradientCheck(
        ok=bool(rel[worst] <= rtol),
        max_relative_error=float(rel[worst]),
        worst_direction=names[worst],
        directions=names,
        relative_errors=rel,
        from_gradient=gv,
        finite_difference=fd,
        gradient=g,
        eps=eps,
        rtol=float(rtol),
    )
    if raise_on_fail and not result.ok:
        raise GradientCheckError(
            f"gradient check failed: relative error {rel[worst]:.3g} > rtol {rtol:g} along "
            f"{names[worst]} (the gradient gives {gv[worst]:.6g}, finite differences in "
            f"float64 {fd[worst]:.6g})."
        )
    return result


def _checked_point(x, grad, has_aux, random_directions, eps):
    """``x``'s leaves and structure, once the arguments of `check_gradient`
    are checked (a clear error for each that is not what it should be)."""
    check_has_aux(has_aux, "gd.check_gradient")
    for path, leaf in jax.tree_util.tree_flatten_with_path(x)[0]:
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise TypeError(
                f"check_gradient: x{jax.tree_util.keystr(path)} must hold floating-point "
                f"values, got dtype {jnp.result_type(leaf)}; pass floats "
                "(e.g. jnp.asarray(x, jnp.float32))."
            )
    if grad is not None and not callable(grad):
        raise TypeError(
            f"check_gradient: grad must be your gradient function grad(x, *args), got "
            f"{type(grad).__name__}; pass the function itself (or grad=None for autodiff's)."
        )
    if (
        isinstance(random_directions, bool)
        or not isinstance(random_directions, int)
        or random_directions < 0
    ):
        raise ValueError(
            f"check_gradient: random_directions must be an integer >= 0, got {random_directions!r}."
        )
    if eps is not None and not (isinstance(eps, (int, float)) and math.isfinite(eps) and eps > 0):
        raise ValueError(f"check_gradient: eps must be a finite number > 0, got {eps!r}.")
    leaves, treedef = jax.tree.flatten(x)
    if not leaves:
        raise ValueError("check_gradient: x holds no arrays; pass the point to check at.")
    return leaves, treedef


def _differences(f, has_aux, x, g, args, eps, random_directions, seed):
    """``(fd, gv, f(x), h, eps, u)``: the central differences of ``f`` in float64
    and ``<g, v>`` along each direction (see `check_gradient`), the step
    ``h`` and base step ``eps`` used, and ``u``, the machine epsilon of ``f``'s
    value."""
    with jax.enable_x64(True):
        x64, g64 = (jax.tree.map(lambda a: np.asarray(a, np.float64), t) for t in (x, g))
        args64 = jax.tree.map(_to_float64, args)
        value_dtype = jax.eval_shape(_value_of(f, has_aux), x64, *args64).dtype
        u_value = float(jnp.finfo(value_dtype).eps)
        eps = u_value ** (1 / 3) if eps is None else float(eps)
        sizes = [int(np.size(a)) for a in jax.tree.leaves(x)]
        leaf_of = np.repeat(np.arange(len(sizes)), sizes)
        rng = np.random.default_rng(seed)
        in_leaves = rng.standard_normal(leaf_of.size)
        over_all = rng.standard_normal((random_directions, leaf_of.size))
        traced, static = partition(f)
        directions = (leaf_of, in_leaves, over_all)
        out = _directional_check(static, has_aux, traced, x64, g64, directions, eps, args64)
        fd, gv, value, h = (np.asarray(a, np.float64) for a in out)
    return fd, gv, value, h, eps, u_value


def _relative_errors(g, fd, gv, value, h, u_value, random_directions):
    """``|<g, v> - fd| / max(|<g, v>|, |fd|, s, 10 u |f(x)| / h)`` along each
    direction ``v`` (see `check_gradient`); NaN counts as infinite."""
    g_leaves = jax.tree.leaves(g)
    sizes = [int(np.size(a)) for a in g_leaves]
    # s = |g_S| / sqrt(n_S) for each direction's support S.
    leaf_norms = np.array([np.linalg.norm(np.asarray(a, np.float64)) for a in g_leaves])
    in_leaf = leaf_norms / np.sqrt(sizes)
    over_x = np.linalg.norm(leaf_norms) / np.sqrt(sum(sizes))
    scale = np.concatenate([in_leaf, in_leaf, np.full(random_directions, over_x)])
    # The central difference's own round-off, u |f| / h, is no error of g.
    noise = 10 * u_value * abs(float(value)) / float(h)
    denominator = np.maximum.reduce([np.abs(gv), np.abs(fd), scale, np.full_like(fd, noise)])
    difference = np.abs(gv - fd)
    rel = np.where(difference == 0, 0.0, difference / np.where(denominator > 0, denominator, 1))
    return np.where(np.isnan(rel), np.inf, rel)


def _to_float64(a):
    dtype = getattr(a, "dtype", None)
    if dtype is not None and jnp.issubdtype(dtype, jnp.floating):
        return np.asarray(a, np.float64)
    return a


def _same_structure_as_x(g, x, treedef, leaves):
    g_leaves, g_treedef = jax.tree.flatten(g)
    shapes = [np.shape(a) for a in leaves]
    if g_treedef != treedef or [np.shape(a) for a in g_leaves] != shapes:
        raise ValueError(
            f"check_gradient: the gradient must be structured like x ({treedef}, shapes "
            f"{shapes}), got {g_treedef}, shapes {[np.shape(a) for a in g_leaves]}; "
            "return one array per leaf of x, of its shape."
        )
    return g


def _value_of(f, has_aux):
    if not has_aux:
        return f
    return lambda *a: f(*a)[0]


def _direction_names(x, random_directions):
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(x)[0]]
    part = lambda p: f"x{p}" if p else "x"
    return tuple(
        [f"the gradient's part in {part(p)}" for p in paths]
        + [f"a random direction in {part(p)}" for p in paths]
        + [f"random direction {i} over all of x" for i in range(random_directions)]
    )


@functools.partial(jax.jit, static_argnums=(0, 1))
def _directional_check(static, has_aux, traced, x, g, directions, eps, args):
    """Central differences of ``f`` and ``<g, v>`` along each direction ``v``
    (see `check_gradient`), one direction at a time (memory: a few ``x``).

    ``directions`` is ``(leaf_of, in_leaves, over_all)``: ``leaf_of[i]`` is the
    leaf of flat coordinate ``i``; ``in_leaves`` holds,
    in each leaf's coordinates, the random direction within that leaf;
    ``over_all[k]`` is the ``k``-th random direction over all of ``x``.
    """
    f = combine(traced, static)  # f split as jaxgd._partition splits it
    leaf_of, in_leaves, over_all = directions
    flat, unravel = ravel_pytree(x)  # here, not outside: a new unravel would recompile
    value = lambda y: _value_of(f, has_aux)(unravel(y), *args)
    g = ravel_pytree(g)[0]
    n_leaves = len(jax.tree.leaves(x))
    h = eps * jnp.maximum(1.0, jnp.max(jnp.abs(flat)))

    def along(d):
        last = jnp.maximum(over_all.shape[0] - 1, 0)
        v = jnp.where(
            d < n_leaves,
            jnp.where(leaf_of == d, g, 0.0),
            jnp.where(
                d < 2 * n_leaves,
                jnp.where(leaf_of == d - n_leaves, in_leaves, 0.0),
                over_all[jnp.clip(d - 2 * n_leaves, 0, last)] if over_all.shape[0] else 0.0,
            ),
        )
        norm = jnp.linalg.norm(v)
        v = v / jnp.where(norm > 0, norm, 1.0)
        return (value(flat + h * v) - value(flat - h * v)) / (2 * h), jnp.vdot(g, v)

    fd, gv = jax.lax.map(along, jnp.arange(2 * n_leaves + over_all.shape[0]))
    return fd, gv, value(flat), h
