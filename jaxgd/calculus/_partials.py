"""Partial derivatives, named like the variables: ``partials`` and ``partial_derivative``.

One rule says which arguments are the variables: every argument when all are
plain numbers or all are given by keyword (the partials come back named by
``f``'s parameters), else the first argument, a params pytree, with the rest
held fixed (see `partials`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd.calculus._derivatives import as_floating, check_has_aux, compiled_transform

__all__ = ["partial_derivative", "partials"]


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

    Examples:
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
    check_has_aux(has_aux, "gd.partials")
    names = _variable_names(f, args, kwargs, "gd.partials")
    if names is None:
        return compiled_transform(jax.grad, f, 0, has_aux, "gd.partials")(*args)
    positional, keywords = names
    values = as_floating({**dict(zip(positional, args, strict=True)), **kwargs})
    of_values = jax.tree_util.Partial(_of_named_values, f, positional, keywords)
    out = compiled_transform(jax.grad, of_values, 0, has_aux, "gd.partials")(values)
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
    variable (see `partials`); None for the params-and-data form."""
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


def _of_named_values(f, positional, keywords, values):
    """``f(*positional values, **keyword values)``, the values given as one dict."""
    return f(*(values[n] for n in positional), **{k: values[k] for k in keywords})


def partial_derivative(f: Callable[..., Any], name: Any) -> Callable[..., Any]:
    """The partial derivative of ``f`` with respect to one variable, ``name``.

    The result is a function of the same arguments as ``f``; its variables
    follow the rule of `partials`. ``name`` is the parameter's name
    (``"hours"``) or its position among the arguments (``0``) when every
    argument is a plain number or given by keyword; otherwise it is a key of
    the params dict (or an index of a params tuple, list or array).

    Examples:
        >>> import jaxgd as gd
        >>> def marks(hours, attendance):
        ...     return 2 * hours + 0.5 * attendance + 0.01 * hours * attendance
        >>> round(float(gd.partial_derivative(marks, 0)(6.0, 90.0)), 4)  # d marks / d hours
        2.9
        >>> round(float(gd.partial_derivative(marks, "attendance")(6.0, 90.0)), 4)
        0.56
        >>> f = lambda p: p["a"] ** 2 * p["b"]
        >>> float(gd.partial_derivative(f, "a")({"a": 3.0, "b": 2.0}))  # 2 * a * b
        12.0
    """

    def of_args(*args, **kwargs):
        names = _variable_names(f, args, kwargs, "gd.partial_derivative")
        if names is not None:
            named = names[0] + names[1]
            if _is_index(name) and -len(named) <= name < len(named):
                return partials(f, *args, **kwargs)[named[name]]
            if name in named:
                return partials(f, *args, **kwargs)[name]
            raise KeyError(
                f"gd.partial_derivative: no parameter named {name!r}; f's variables here are "
                f"{list(named)} (or their positions 0..{len(named) - 1})."
            )
        params = args[0]
        if not _has_part(params, name):
            raise KeyError(
                f"gd.partial_derivative: no parameter named {name!r}; the params have "
                f"{_parts(params)}."
            )
        return partials(f, *args)[name]

    return of_args


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
