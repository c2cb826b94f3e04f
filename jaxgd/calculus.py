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
"""

from __future__ import annotations

import functools
import inspect
import math
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

    An integer input is taken as a float (``df(2)`` is ``df(2.0)``).

    Example:
        >>> import jaxgd as gd
        >>> df = gd.derivative(lambda x: x**3)
        >>> float(df(2.0))  # 3 * 2**2
        12.0
        >>> float(df(2))
        12.0
    """
    df = jax.jit(lambda x: jax.grad(f)(_as_floating(x)))
    return functools.wraps(f)(lambda x: df(x))


def _default_float():
    return jax.dtypes.canonicalize_dtype(jnp.float64)  # float32 unless x64 is on


def _as_floating(tree):
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
    ``gradient`` twice with the same ``f`` returns the same compiled function.

    Args:
        f: a function returning a scalar, or ``(scalar, aux)`` with
            ``has_aux=True``.
        argnums: which positional argument(s) to differentiate.
        has_aux: ``f`` returns ``(value, aux)``; the gradient function then
            returns ``(grad, aux)``, as ``jax.grad(..., has_aux=True)`` does.
            A tuple returned without ``has_aux=True`` is an error that says so.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> g = gd.gradient(lambda w: jnp.sum(w**2))
        >>> g(jnp.array([1.0, -2.0]))
        Array([ 2., -4.], dtype=float32)
        >>> loss = lambda w: (jnp.sum(w**2), {"norm": jnp.linalg.norm(w)})
        >>> grad, aux = gd.gradient(loss, has_aux=True)(jnp.array([3.0, 4.0]))
        >>> grad, float(aux["norm"])
        (Array([6., 8.], dtype=float32), 5.0)
    """
    return _compiled(jax.grad, f, _argnums(argnums), _check_has_aux(has_aux), "gd.gradient")


def _argnums(argnums):
    return tuple(argnums) if isinstance(argnums, list) else argnums


def _check_has_aux(has_aux):
    if not isinstance(has_aux, bool):
        raise TypeError(f"has_aux must be True or False, got {has_aux!r}.")
    return has_aux


def _compiled(transform, f, argnums, has_aux, who):
    """``jax.jit(transform(f, argnums, has_aux))``, built once per function; ``who``
    (the public function's name) only labels the errors about ``f``'s output."""
    return _once(_labelled_cached, transform, f, argnums, has_aux, who)


def _once(cached, *key):
    """``cached(*key)``, or, for an unhashable callable in ``key``, built afresh."""
    try:
        return cached(*key)
    except TypeError as error:
        if "unhashable" not in str(error):
            raise
        return cached.__wrapped__(*key)


@functools.lru_cache(maxsize=64)
def _labelled_cached(transform, f, argnums, has_aux, who):
    # The caches hold the 64 most recent, so they keep few closures alive.
    return _labelled(_once(_compiled_cached, transform, f, argnums, has_aux), who)


@functools.lru_cache(maxsize=64)
def _compiled_cached(transform, f, argnums, has_aux):
    return _compile(transform, f, argnums, has_aux)


def _compile(transform, f, argnums, has_aux):
    return jax.jit(transform(_checked_output(f, has_aux), argnums=argnums, has_aux=has_aux))


class _OutputMismatch(TypeError):
    """``f``'s output does not fit ``has_aux``; the message names ``{who}``."""


def _labelled(compiled, who):
    @functools.wraps(compiled)
    def call(*args, **kwargs):
        try:
            return compiled(*args, **kwargs)
        except _OutputMismatch as error:
            raise TypeError(str(error).replace("{who}", who)) from None

    return call


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

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> value, grad = gd.value_and_gradient(lambda w: jnp.sum(w**2))(jnp.array([3.0]))
        >>> float(value), grad
        (9.0, Array([6.], dtype=float32))
        >>> loss = lambda w: (jnp.sum(w**2), w.size)
        >>> (value, size), grad = gd.value_and_gradient(loss, has_aux=True)(jnp.array([3.0]))
        >>> float(value), int(size), grad
        (9.0, 1, Array([6.], dtype=float32))
    """
    return _compiled(
        jax.value_and_grad, f, _argnums(argnums), _check_has_aux(has_aux), "gd.value_and_gradient"
    )


def partials(f: Callable[..., Any], *args: Any, has_aux: bool = False, **kwargs: Any) -> Any:
    """The partial derivatives of scalar ``f``: how ``f`` moves with each
    variable when every other is held fixed.

    Which arguments are the variables (one rule, no guessing from values):

    * **Named quantities.** When every argument is a plain number (a Python or
      NumPy scalar, or a 0-d array), or when every argument is given by
      keyword, *every* argument is a variable and the partials come back as a
      dict named by ``f``'s parameter names, in call order:
      ``partials(marks, 6.0, 90.0)`` and ``partials(marks, hours=6.0,
      attendance=90.0)`` both give ``{"hours": ..., "attendance": ...}``.
      Integers are taken as floats.
    * **Params and data.** Otherwise the first argument is ``params`` (any
      pytree: a dict of named weights gives back the same names, an array an
      array) and the rest, passed by position, are held fixed:
      ``partials(loss, params, batch)``. Keyword arguments cannot be mixed
      with this form (which would they be?): that is an error.

    Args:
        f: a function returning a scalar (``(scalar, aux)`` with ``has_aux``).
        *args: the point, as above.
        has_aux: ``f`` returns ``(value, aux)``; then ``(partials, aux)`` is
            returned.
        **kwargs: named variables, as above.

    Example:
        >>> import jaxgd as gd
        >>> def marks(hours, attendance):
        ...     return 2 * hours + 0.5 * attendance + 0.01 * hours * attendance
        >>> d = gd.partials(marks, hours=6.0, attendance=90.0)
        >>> {name: round(float(v), 4) for name, v in d.items()}  # 2 + 0.01 * 90, 0.5 + 0.01 * 6
        {'hours': 2.9, 'attendance': 0.56}
        >>> {name: round(float(v), 4) for name, v in gd.partials(marks, 6, 90).items()}
        {'hours': 2.9, 'attendance': 0.56}

        Params and data: the partials of a model's prediction, named like its
        params, with the inputs held fixed.

        >>> def predicted_marks(p, hours, attendance):
        ...     return p["hours_studied"] * hours + p["attendance"] * attendance + p["bias"]
        >>> p = {"hours_studied": 5.0, "attendance": 0.3, "bias": 20.0}
        >>> d = gd.partials(predicted_marks, p, 6.0, 90.0)
        >>> {name: float(v) for name, v in d.items()}
        {'attendance': 90.0, 'bias': 1.0, 'hours_studied': 6.0}
    """
    _check_has_aux(has_aux)
    names = _variable_names(f, args, kwargs, "gd.partials")
    if names is None:
        return _compiled(jax.grad, f, 0, has_aux, "gd.partials")(*args)
    positional, keywords = names
    values = _as_floating({**dict(zip(positional, args, strict=True)), **kwargs})
    out = _once(_named_gradient, f, positional, keywords, has_aux)(values)
    grads, aux = out if has_aux else (out, None)
    grads = {name: grads[name] for name in positional + keywords}  # call order, not sorted
    return (grads, aux) if has_aux else grads


def _is_plain_number(a) -> bool:
    if isinstance(a, bool):
        return False
    if isinstance(a, (int, float, np.number)):
        return True
    dtype = getattr(a, "dtype", None)
    return (
        getattr(a, "shape", None) == ()
        and dtype is not None
        and (jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.floating))
    )


def _variable_names(f, args, kwargs, who):
    """``(positional names, keyword names)`` when every argument is a named
    variable (see :func:`partials`); None for the params-and-data form."""
    if not args and not kwargs:
        raise TypeError(
            f"{who}: no point to differentiate at; pass it: {who}(f, params) or "
            f"{who}(f, hours=6.0, attendance=90.0)."
        )
    every_number = all(_is_plain_number(a) for a in (*args, *kwargs.values()))
    if args and not every_number:
        if kwargs:
            raise TypeError(
                f"{who}: keyword arguments {sorted(kwargs)} with a params pytree first is "
                f"ambiguous; pass every variable by keyword ({who}(f, w=..., b=...)) for "
                f"named partials, or the fixed arguments by position ({who}(f, params, data))."
            )
        return None
    if not args:
        return (), tuple(kwargs)
    signature = None
    try:
        signature = inspect.signature(f)
        signature.bind(*args, **kwargs)
    except ValueError:  # no signature (a builtin): the positions cannot be named
        signature = None
    except TypeError as error:
        if signature is None:
            raise TypeError(f"{who}: f must be a function, got {type(f).__name__}.") from None
        raise TypeError(f"{who}: f{signature} cannot take these arguments ({error}).") from None
    positional = []
    parameters = [] if signature is None else list(signature.parameters.values())
    for parameter in parameters[: len(args)]:
        if parameter.kind not in (parameter.POSITIONAL_ONLY, parameter.POSITIONAL_OR_KEYWORD):
            break
        positional.append(parameter.name)
    if len(positional) < len(args):
        raise TypeError(
            f"{who}: the arguments of f cannot be named (it takes *args or has no "
            f"signature), so its partials cannot be; give it named parameters "
            f"({who}(lambda hours, attendance: f(hours, attendance), 6.0, 90.0)) or pack "
            f"the variables into one array or dict ({who}(f, params, ...))."
        )
    return tuple(positional), tuple(kwargs)


@functools.lru_cache(maxsize=64)
def _named_gradient(f, positional, keywords, has_aux):
    """The compiled gradient of ``values -> f(*positional values, **keyword values)``."""

    def of_named_values(values):
        return f(*(values[n] for n in positional), **{k: values[k] for k in keywords})

    return _labelled(_compile(jax.grad, of_named_values, 0, has_aux), "gd.partials")


def partial(f: Callable[..., Any], name: Any) -> Callable[..., Any]:
    """The partial derivative of ``f`` with respect to one variable, ``name``.

    The result is a function of the same arguments as ``f``; its variables
    follow the rule of :func:`partials`. ``name`` is the parameter's name
    (``"hours"``) or its position among the arguments (``0``) when every
    argument is a plain number or given by keyword; otherwise it is a key of
    the params dict (or an index of a params tuple, list or array).

    Example:
        >>> import jaxgd as gd
        >>> def marks(hours, attendance):
        ...     return 2 * hours + 0.5 * attendance + 0.01 * hours * attendance
        >>> round(float(gd.partial(marks, 0)(6.0, 90.0)), 4)  # d marks / d hours
        2.9
        >>> round(float(gd.partial(marks, "attendance")(6.0, 90.0)), 4)
        0.56
        >>> f = lambda p: p["a"] ** 2 * p["b"]
        >>> float(gd.partial(f, "a")({"a": 3.0, "b": 2.0}))  # 2 * a * b
        12.0
    """

    def partial_derivative(*args, **kwargs):
        names = _variable_names(f, args, kwargs, "gd.partial")
        if names is not None:
            named = names[0] + names[1]
            if _is_index(name) and -len(named) <= name < len(named):
                return partials(f, *args, **kwargs)[named[name]]
            if name in named:
                return partials(f, *args, **kwargs)[name]
            raise KeyError(
                f"gd.partial: no parameter named {name!r}; f's variables here are "
                f"{list(named)} (or their positions 0..{len(named) - 1})."
            )
        params = args[0]
        if not _has_part(params, name):
            raise KeyError(
                f"gd.partial: no parameter named {name!r}; the params have {_parts(params)}."
            )
        return partials(f, *args)[name]

    return partial_derivative


def _is_index(name) -> bool:
    return isinstance(name, (int, np.integer)) and not isinstance(name, bool)


def _has_part(params, name) -> bool:
    if isinstance(params, dict):
        return name in params
    if isinstance(params, (tuple, list)) or getattr(params, "ndim", 0) >= 1:
        return _is_index(name) and -len(params) <= name < len(params)
    return False


def _parts(params) -> str:
    if isinstance(params, dict):
        return str(list(params))
    if isinstance(params, (tuple, list)) or getattr(params, "ndim", 0) >= 1:
        return f"positions 0..{len(params) - 1}"
    return "no parts (it is a single number: use gd.derivative, or name the variables)"


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
    """Raised by ``check_gradient(..., raise_on_fail=True)`` when the gradient
    and finite differences disagree."""


class GradientCheck(NamedTuple):
    """The outcome of :func:`check_gradient`.

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
    networks in float64: under 1e-8).

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
        raise_on_fail: raise :class:`GradientCheckError` instead of returning
            a result with ``ok=False``.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> f = lambda x: jnp.sum(jnp.sin(x) * x)
        >>> gd.check_gradient(f, jnp.array([0.5, 2.0])).ok
        True
        >>> wrong = lambda x: 1.05 * (jnp.sin(x) + x * jnp.cos(x))  # 5 % too large
        >>> check = gd.check_gradient(f, jnp.array([0.5, 2.0]), grad=wrong)
        >>> check.ok, round(check.max_relative_error, 3)  # 0.05 / 1.05
        (False, 0.048)
    """
    _check_has_aux(has_aux)
    leaves, treedef = jax.tree.flatten(x)
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
    if not leaves:
        raise ValueError("check_gradient: x holds no arrays; pass the point to check at.")

    if grad is None:
        g = _compiled(jax.grad, f, 0, has_aux, "gd.check_gradient")(x, *args)
        g = g[0] if has_aux else g
    else:
        g = grad(x, *args)
    g = _same_structure_as_x(g, x, treedef, leaves)
    u_gradient = max(float(jnp.finfo(jnp.result_type(a)).eps) for a in jax.tree.leaves(g))

    with jax.enable_x64(True):
        x64, g64 = (jax.tree.map(lambda a: np.asarray(a, np.float64), t) for t in (x, g))
        args64 = jax.tree.map(_to_float64, args)
        value_dtype = jax.eval_shape(_value_of(f, has_aux), x64, *args64).dtype
        u_value = float(jnp.finfo(value_dtype).eps)
        eps = u_value ** (1 / 3) if eps is None else float(eps)
        sizes = [int(np.size(a)) for a in leaves]
        leaf_of = np.repeat(np.arange(len(leaves)), sizes)
        rng = np.random.default_rng(seed)
        in_leaves = rng.standard_normal(leaf_of.size)
        over_all = rng.standard_normal((random_directions, leaf_of.size))
        check = _once(_compiled_directional_check, f, has_aux)
        out = check(x64, g64, leaf_of, in_leaves, over_all, eps, args64)
        fd, gv, value, h = (np.asarray(a, np.float64) for a in out)
    # s = |g_S| / sqrt(n_S) for each direction's support S (see above).
    leaf_norms = np.array([np.linalg.norm(np.asarray(a, np.float64)) for a in jax.tree.leaves(g)])
    in_leaf = leaf_norms / np.sqrt(sizes)
    over_x = np.linalg.norm(leaf_norms) / np.sqrt(sum(sizes))
    scale = np.concatenate([in_leaf, in_leaf, np.full(random_directions, over_x)])
    # The central difference's own round-off, u |f| / h, is no error of g.
    noise = 10 * u_value * abs(float(value)) / float(h)
    denominator = np.maximum.reduce([np.abs(gv), np.abs(fd), scale, np.full_like(fd, noise)])
    difference = np.abs(gv - fd)
    rel = np.where(difference == 0, 0.0, difference / np.where(denominator > 0, denominator, 1))
    rel = np.where(np.isnan(rel), np.inf, rel)
    if rtol is None:
        rtol = 1e-6 if max(u_gradient, u_value) <= 1e-15 else 1e-3
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


@functools.lru_cache(maxsize=64)
def _compiled_directional_check(f, has_aux):
    return jax.jit(functools.partial(_directional_check, f, has_aux))


def _directional_check(f, has_aux, x, g, leaf_of, in_leaves, over_all, eps, args):
    """Central differences of ``f`` and ``<g, v>`` along each direction ``v``
    (see :func:`check_gradient`), one direction at a time (memory: a few ``x``).

    ``leaf_of[i]`` is the leaf of flat coordinate ``i``; ``in_leaves`` holds,
    in each leaf's coordinates, the random direction within that leaf;
    ``over_all[k]`` is the ``k``-th random direction over all of ``x``.
    """
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
