"""Derivatives and gradients, compiled: ``derivative``, ``gradient``,
``value_and_gradient`` and ``directional_derivative``.

Each is ``jax.jit`` of a JAX transform (``jax.grad``, ``jax.value_and_grad``,
``jax.jvp``). The function is split as a run splits its loss
(`jaxgd._partition`): its traced leaves (the arrays and floats of a
``jax.tree_util.Partial`` or an Equinox module) are arguments of one jitted
function per transform, its static rest a static argument; so a ``Partial``
with new values reuses the compiled program, and no cache is kept besides
``jax.jit``'s own. A function whose output does not fit ``has_aux`` is
refused while tracing, with an error that names the public function called.
That machinery (`compiled_transform`, `check_has_aux`) is shared
with `jaxgd.calculus._partials` and `jaxgd.calculus._gradient_check`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxgd._partition import combine, partition

__all__ = [
    "as_floating",
    "check_has_aux",
    "compiled_transform",
    "derivative",
    "directional_derivative",
    "gradient",
    "value_and_gradient",
]


def derivative(f: Callable[[Any], Any]) -> Callable[[Any], jax.Array]:
    """The compiled derivative ``df/dx`` of a scalar function of one scalar.

    An integer input is taken as a float (``df(2)`` is ``df(2.0)``).

    Examples:
        >>> import jaxgd as gd
        >>> df = gd.derivative(lambda x: x**3)
        >>> float(df(2.0))  # 3 * 2**2
        12.0
        >>> float(df(2))
        12.0
    """
    traced, static = partition(f)
    return functools.update_wrapper(lambda x: _derivative(static, traced, x), f, updated=())


@functools.partial(jax.jit, static_argnums=0)
def _derivative(static, traced, x):
    return jax.grad(combine(traced, static))(as_floating(x))


def _default_float():
    return jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 unless x64 is on


def as_floating(tree):
    """``tree`` with integer leaves (Python ints, integer arrays) turned into floats."""

    def convert(a):
        dtype = jnp.result_type(a)
        if jnp.issubdtype(dtype, jnp.integer) and not isinstance(a, bool):
            return jnp.asarray(a, _default_float())
        return a

    return jax.tree.map(convert, tree)


def gradient(
    f: Callable[..., Any], argnums: int | tuple[int, ...] = 0, *, has_aux: bool = False
) -> Callable[..., Any]:
    """``jax.jit(jax.grad(f, argnums, has_aux))``: the compiled gradient of scalar ``f``.

    The result has the structure of the differentiated argument. Calling
    ``gradient`` again with the same ``f``, or with a ``jax.tree_util.Partial``
    or Equinox module that holds new array or float values, reuses the
    compiled program (see `jaxgd._partition`).

    Args:
        f: a function returning a scalar, or ``(scalar, aux)`` with
            ``has_aux=True``.
        argnums: which positional argument(s) to differentiate.
        has_aux: ``f`` returns ``(value, aux)``; the gradient function then
            returns ``(grad, aux)``, as ``jax.grad(..., has_aux=True)`` does.
            A tuple returned without ``has_aux=True`` is an error that says so.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> g = gd.gradient(lambda w: jnp.sum(w**2))
        >>> g(jnp.array([1.0, -2.0]))
        Array([ 2., -4.], dtype=float32)
        >>> loss = lambda w: (jnp.sum(w**2), {"norm": jnp.linalg.norm(w)})
        >>> grad, aux = gd.gradient(loss, has_aux=True)(jnp.array([3.0, 4.0]))
        >>> grad, float(aux["norm"])
        (Array([6., 8.], dtype=float32), 5.0)
    """
    has_aux = check_has_aux(has_aux, "gd.gradient")
    return compiled_transform(jax.grad, f, _argnums(argnums), has_aux, "gd.gradient")


def _argnums(argnums):
    return tuple(argnums) if isinstance(argnums, list) else argnums


def check_has_aux(has_aux, who):
    if not isinstance(has_aux, bool):
        raise TypeError(
            f"{who}: has_aux must be True or False, got {has_aux!r}; pass has_aux=True when "
            "the function returns (value, aux)."
        )
    return has_aux


def compiled_transform(transform, f, argnums, has_aux, who):
    """``jax.jit(transform(f, argnums, has_aux))``, with ``f`` split into traced
    leaves and a static rest (`jaxgd._partition`); ``who`` (the public
    function's name) only labels the errors about ``f``'s output."""
    traced, static = partition(f)

    def call(*args, **kwargs):
        try:
            return _transformed(transform, static, argnums, has_aux, traced, *args, **kwargs)
        except _OutputMismatch as error:
            raise TypeError(str(error).replace("{who}", who)) from None

    return functools.update_wrapper(call, f, updated=())


@functools.partial(jax.jit, static_argnums=(0, 1, 2, 3))
def _transformed(transform, static, argnums, has_aux, traced, *args, **kwargs):
    f = _checked_output(combine(traced, static), has_aux)
    return transform(f, argnums=argnums, has_aux=has_aux)(*args, **kwargs)


class _OutputMismatch(TypeError):
    """``f``'s output does not fit ``has_aux``; the message names ``{who}``."""


def _checked_output(f, has_aux):
    """``f``, raising a clear error (while tracing, before anything compiles)
    when its output does not fit ``has_aux``."""

    @functools.wraps(f)
    def checked(*args, **kwargs):
        out = f(*args, **kwargs)
        is_pair = isinstance(out, (tuple, list)) and len(out) == 2
        if has_aux and not is_pair:
            raise _OutputMismatch(
                f"{{who}}: has_aux=True, but f returned {_describe(out)}, not a (value, aux) "
                "pair; return (value, aux) from f, or drop has_aux=True."
            )
        if not has_aux and isinstance(out, (tuple, list)):
            raise _OutputMismatch(
                f"{{who}}: f returned {_describe(out)}, not a scalar. If it returns "
                "(value, aux), pass has_aux=True ({who}(f, ..., has_aux=True)); "
                "otherwise return the scalar alone."
            )
        return out

    return checked


def _describe(out) -> str:
    if isinstance(out, (tuple, list)):
        return f"a {type(out).__name__} of {len(out)}"
    shape = getattr(out, "shape", None)
    if shape is None or not hasattr(out, "dtype"):
        return f"a {type(out).__name__}"
    return f"an array of shape {tuple(shape)}"


def value_and_gradient(
    f: Callable[..., Any], argnums: int | tuple[int, ...] = 0, *, has_aux: bool = False
) -> Callable[..., tuple[Any, Any]]:
    """``jax.jit(jax.value_and_grad(f, argnums, has_aux))``: ``f`` and its gradient in one pass.

    With ``has_aux=True`` (``f`` returns ``(value, aux)``) it returns
    ``((value, aux), grad)``, as ``jax.value_and_grad`` does.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> value, grad = gd.value_and_gradient(lambda w: jnp.sum(w**2))(jnp.array([3.0]))
        >>> float(value), grad
        (9.0, Array([6.], dtype=float32))
        >>> loss = lambda w: (jnp.sum(w**2), w.size)
        >>> (value, size), grad = gd.value_and_gradient(loss, has_aux=True)(jnp.array([3.0]))
        >>> float(value), int(size), grad
        (9.0, 1, Array([6.], dtype=float32))
    """
    has_aux = check_has_aux(has_aux, "gd.value_and_gradient")
    return compiled_transform(
        jax.value_and_grad, f, _argnums(argnums), has_aux, "gd.value_and_gradient"
    )


def directional_derivative(f: Callable[..., Any], x: Any, v: Any, *args: Any) -> jax.Array:
    """``grad f(x) . v``: how fast ``f`` changes when ``x`` moves along ``v``.

    Computed as one forward-mode product (a JVP), without forming the gradient.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: jnp.sum(x**2)
        >>> float(gd.directional_derivative(f, jnp.array([1.0, 2.0]), jnp.array([1.0, 0.0])))
        2.0
    """
    traced, static = partition(f)
    return _jvp(static, traced, x, v, args)


@functools.partial(jax.jit, static_argnums=0)
def _jvp(static, traced, x, v, args):
    f = combine(traced, static)
    return jax.jvp(lambda y: f(y, *args), (x,), (v,))[1]
