"""The base class of the descent variants, and of a rule of your own.

Subclassing :class:`Optimizer` makes a frozen dataclass registered with
``jax.tree_util.register_dataclass``: the hyperparameters declared as fields
are traced leaves (``decay_rate``, ``positive``, ``nonnegative`` check them),
flags declared ``static`` are compiled in, and a learning-rate schedule is
held static. :meth:`Optimizer.update` is optax's protocol around the
subclass's ``rule``.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

if sys.version_info >= (3, 11):
    from typing import dataclass_transform
else:  # pragma: no cover - Python 3.10
    dataclass_transform = lambda **_: lambda cls: cls

__all__ = [
    "Optimizer",
    "StabilityLimit",
    "ScalarOrSchedule",
    "Schedule",
    "check_optimizer",
    "decay_rate",
    "is_optimizer",
    "nonnegative",
    "positive",
    "static",
]

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule


# --------------------------------------------------------------------------- #
# Declaring hyperparameters
# --------------------------------------------------------------------------- #

_CHECK = "jaxgd_check"  # field metadata: the rule a concrete value must obey
_ONE_MINUS = "jaxgd_one_minus"  # field metadata: also carry ``1 - value``


def decay_rate(default: Any = dataclasses.MISSING, *, one_minus: bool = False) -> Any:
    """A hyperparameter in ``[0, 1)``: a decay rate such as Adam's ``b1``.

    Args:
        default: the default value (none: the argument is required).
        one_minus: also carry ``1 - value``, computed once when the optimizer
            is built, in the precision the value was given in (Python floats:
            float64), as :meth:`Optimizer.one_minus` returns it. Computed later
            from a traced float32 value, ``1 - b1`` rounds differently from the
            constant optax folds in, and trajectories part by an ulp; with
            ``one_minus=True`` a rule written ``one_minus("b1") * g + b1 * m``
            matches optax bit for bit even when ``b1`` is traced.

    Example:
        >>> import jaxgd as gd
        >>> from jaxgd.optimizers import decay_rate
        >>> class ema_sgd(gd.Optimizer):  # declares its hyperparameters only
        ...     learning_rate: float
        ...     b1: float = decay_rate(0.9, one_minus=True)
        >>> ema_sgd(0.1).one_minus("b1")
        0.09999999999999998
        >>> ema_sgd(0.1, b1=1.0)
        Traceback (most recent call last):
        ...
        ValueError: ema_sgd: b1 must be a number in [0, 1), got 1.0; use a value such as 0.9; ...
    """
    return dataclasses.field(default=default, metadata={_CHECK: "decay", _ONE_MINUS: one_minus})


def positive(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter that must be a finite number > 0, such as ``eps``.

    Example:
        >>> import jaxgd as gd
        >>> gd.adam(eps=-1e-8)  # adam declares ``eps: float = positive(1e-8)``
        Traceback (most recent call last):
        ...
        ValueError: adam: eps must be a finite number > 0, got -1e-08; use a small positive ...
    """
    return dataclasses.field(default=default, metadata={_CHECK: "positive"})


def nonnegative(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter that must be a finite number >= 0, such as ``weight_decay``.

    Example:
        >>> import jaxgd as gd  # adamw declares ``weight_decay: float = nonnegative(1e-4)``
        >>> gd.adamw(weight_decay=0.0).weight_decay
        0.0
    """
    return dataclasses.field(default=default, metadata={_CHECK: "nonnegative"})


def static(default: Any = dataclasses.MISSING) -> Any:
    """A flag or setting that is not a number to trace (``nesterov``): part of
    the compiled program, so a new value compiles again.

    Example:
        >>> import jax, jaxgd as gd  # momentum declares ``nesterov: bool = static(False)``
        >>> jax.tree.leaves(gd.momentum(0.1, beta=0.5, nesterov=True))  # no leaf for the flag
        [0.1, 0.5]
    """
    return dataclasses.field(default=default, metadata={"static": True})


@jax.tree_util.register_static
@dataclasses.dataclass(frozen=True)
class _Schedule:
    """A learning-rate schedule held as a static (compiled-in) pytree node.

    One dataclass field holds either a number (a traced leaf) or a schedule;
    field by field, ``register_dataclass`` can only make it one or the other,
    so a schedule is wrapped in this leafless node. It calls and prints as the
    schedule it wraps.
    """

    fn: Callable[[jax.Array], jax.Array]

    def __call__(self, count: jax.Array) -> jax.Array:
        return self.fn(count)

    def __repr__(self) -> str:
        return repr(self.fn)


# --------------------------------------------------------------------------- #
# The base class: the extension point
# --------------------------------------------------------------------------- #


class StabilityLimit(NamedTuple):
    """Where an optimizer's step starts to overshoot (see :meth:`Optimizer.stability_limit`).

    Attributes:
        kind: ``"sharpness"`` (the largest eigenvalue of the Hessian ``H``) or
            ``"preconditioned"`` (of ``P^-1 H``, with the optimizer's
            :meth:`~Optimizer.preconditioner` ``P``): the value the limit bounds.
        limit: the limit's value at the rate asked for.
        formula: the limit as a formula of the rate and the hyperparameters.
    """

    kind: str
    limit: float
    formula: str


@dataclass_transform(
    frozen_default=True,
    field_specifiers=(dataclasses.field, decay_rate, positive, nonnegative, static),
)
class Optimizer:
    """Base class of the descent variants, and of yours.

    A subclass is made a frozen dataclass and registered as a pytree
    (``jax.tree_util.register_dataclass``) when it is defined. Declare its
    hyperparameters as fields:

    * ``learning_rate`` (by that name): checked as a step size (>= 0); it may
      be a schedule ``step -> lr``, which is held static;
    * ``decay_rate(0.9)``, ``positive(1e-8)``, ``nonnegative(0.0)``: numbers,
      checked when built; a plain annotation (``lam: float = 0.1``) is an
      unchecked number. Numbers are traced leaves: new values never recompile;
    * ``static(False)``: a flag, compiled in.

    Then write ``init(params) -> state`` (a ``NamedTuple`` with a ``count``)
    and ``rule(grads, state, params) -> (updates, state)``: the formula.
    :meth:`update` (optax's protocol) calls ``rule``, accepts optax's extra
    keyword arguments, and returns the updates in the dtype of the grads and
    the state in its own dtypes, so a rule need not cast anything. Helpers:
    :meth:`descend` (``-lr_t * direction``), :meth:`learning_rate_at`,
    :meth:`one_minus` (``1 - decay``, rounded as optax rounds it).

    Example:
        Lion (Chen et al., 2023) in a few lines, checked against optax's:

        >>> import jax, jax.numpy as jnp, optax
        >>> from typing import NamedTuple
        >>> from jaxgd.optimizers import Optimizer, decay_rate
        >>> class LionState(NamedTuple):
        ...     count: jax.Array
        ...     mu: jax.Array
        >>> class lion(Optimizer):
        ...     learning_rate: float
        ...     b1: float = decay_rate(0.9, one_minus=True)
        ...     b2: float = decay_rate(0.99, one_minus=True)
        ...
        ...     def init(self, params):
        ...         return LionState(jnp.zeros([], jnp.int32), jnp.zeros_like(params))
        ...
        ...     def rule(self, g, state, params):
        ...         b1, b2, m = self.b1, self.b2, state.mu
        ...         direction = jnp.sign(self.one_minus("b1") * g + b1 * m)
        ...         mu = self.one_minus("b2") * g + b2 * m
        ...         return self.descend(direction, state.count), LionState(state.count + 1, mu)
        >>> params, grads = jnp.array([1.0, -2.0]), jnp.array([0.5, -3.0])
        >>> opt = lion(0.1)
        >>> updates, state = opt.update(grads, opt.init(params))
        >>> updates  # the sign of the gradient, times lr
        Array([-0.1,  0.1], dtype=float32)
        >>> reference = optax.lion(0.1, weight_decay=0.0)
        >>> bool(jnp.all(updates == reference.update(grads, reference.init(params), params)[0]))
        True
        >>> jax.tree.leaves(opt)  # lr, b1, b2 and the two complements: traced, never compiled in
        [0.1, 0.9, 0.99, 0.09999999999999998, 0.010000000000000009]
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _add_complement_fields(cls)
        dataclasses.dataclass(frozen=True)(cls)
        jax.tree_util.register_dataclass(cls)

    def __post_init__(self) -> None:
        owner = type(self).__name__
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "learning_rate":
                _check_hyperparameter(owner, field.name, value, "learning_rate")
                if callable(value) and not isinstance(value, _Schedule) and _is_leaf(value):
                    object.__setattr__(self, field.name, _Schedule(value))
            elif _CHECK in field.metadata:
                _check_hyperparameter(owner, field.name, value, field.metadata[_CHECK])
            if field.metadata.get(_ONE_MINUS):
                hidden = _complement_name(field.name)
                object.__setattr__(self, hidden, _one_minus_value(value, getattr(self, hidden)))

    # -- optax's protocol ------------------------------------------------------
    def init(self, params: Any) -> Any:
        """The state for ``params`` (a ``NamedTuple``; ``count`` starts at 0)."""
        raise NotImplementedError(
            f"{type(self).__name__} must define init(self, params) -> state; see the "
            "example in gd.Optimizer's docstring."
        )

    def rule(self, grads: Any, state: Any, params: Any) -> tuple[Any, Any]:
        """The update rule: ``(updates, new state)`` from the grads and the state."""
        raise NotImplementedError(
            f"{type(self).__name__} must define rule(self, grads, state, params) -> "
            "(updates, state); see the example in gd.Optimizer's docstring."
        )

    def update(
        self, grads: Any, state: Any, params: Any = None, **extra_args: Any
    ) -> tuple[Any, Any]:
        """optax's ``update``: the updates to add to the params, and the new state.

        ``extra_args`` (``value=``, ``grad=``, ``value_fn=`` ...) are accepted
        for optax's protocol and ignored. The updates come back in the grads'
        dtypes and the state in its own, whatever dtype the hyperparameters
        have (a swept learning rate is a float32 array even for bfloat16
        params).
        """
        updates, new_state = self.rule(grads, state, params)
        return optax.tree.cast_like(updates, grads), optax.tree.cast_like(new_state, state)

    # -- what the run loop and the report ask an optimizer ------------------------
    def stability_limit(self, lr: float) -> StabilityLimit | None:
        """The sharpness above which a step at rate ``lr`` overshoots, and its formula.

        None (the default) where no limit is known. A rule of your own may
        override it; the run loop, the comparison and the report ask the
        optimizer, never its class (see :func:`jaxgd.optimizers.stability_limit`).
        """
        return None

    def preconditioner(self, grads: Any, state: Any) -> jax.Array | None:
        """The diagonal preconditioner ``P`` (flat) of the step about to be taken
        from ``state`` with ``grads``, for the preconditioned sharpness
        (largest eigenvalue of ``P^-1 H``); None (the default) for a rule that
        has none."""
        return None

    # -- helpers for rules -----------------------------------------------------
    def learning_rate_at(self, count: jax.Array) -> Any:
        """The learning rate of the step that has ``count`` steps before it."""
        lr = self.learning_rate  # type: ignore[attr-defined]
        return lr(count) if callable(lr) else lr

    def descend(self, direction: Any, count: jax.Array) -> Any:
        """``-lr_t * direction`` leaf by leaf: the step downhill along ``direction``.

        ``lr_t`` is the learning rate after ``count`` steps, put in each
        leaf's dtype before the product, as optax's ``scale_by_learning_rate``
        does (the same bits).
        """
        lr = self.learning_rate_at(count)
        return jax.tree.map(lambda d: -jnp.asarray(lr, d.dtype) * d, direction)

    def one_minus(self, name: str) -> Any:
        """``1 - getattr(self, name)`` for a ``decay_rate(..., one_minus=True)``
        field, computed when the optimizer was built (see :func:`decay_rate`)."""
        return getattr(self, _complement_name(name))


def _complement_name(name: str) -> str:
    return f"_one_minus_{name}"


def _add_complement_fields(cls: type) -> None:
    """For each ``decay_rate(..., one_minus=True)`` field declared on ``cls``, add
    the hidden keyword-only field that carries ``1 - value`` as a leaf."""
    annotations = dict(cls.__dict__.get("__annotations__", {}))
    for name in list(annotations):
        field = cls.__dict__.get(name)
        if isinstance(field, dataclasses.Field) and field.metadata.get(_ONE_MINUS):
            hidden = _complement_name(name)
            annotations[hidden] = "Any"
            setattr(
                cls,
                hidden,
                dataclasses.field(default=None, kw_only=True, repr=False, compare=False),
            )
    cls.__annotations__ = annotations


def _one_minus_value(value: Any, given: Any) -> Any:
    """``1 - value`` for a decay rate, or the complement ``given`` with it.

    A complement that came with its decay rate is kept, even where the rate
    was rounded since (``jax.tree.map(jnp.asarray, opt)`` makes 0.9 a float32
    0.89999998, whose ``1 - b1`` is not optax's 0.1). One that belongs to
    another rate (``dataclasses.replace(opt, b1=0.8)`` copies the old one) is
    computed afresh. Placeholders that JAX or a filter unflattens with (None,
    ``object()``, equinox's bool masks) pass through.
    """
    if isinstance(value, bool) or value is None:
        return given
    if isinstance(value, int | float):
        fresh = 1.0 - value  # Python float64, rounded once where it is used
    elif isinstance(value, np.ndarray | np.generic | list | tuple):
        fresh = 1 - np.asarray(value)
    elif isinstance(value, jax.core.Tracer):
        return 1 - value if given is None else given
    elif isinstance(value, jax.Array):  # concrete: numpy computes it, nothing compiles
        fresh = 1 - np.asarray(value)
    else:
        return given
    if given is None or isinstance(given, jax.core.Tracer):
        return fresh if given is None else given
    # Both concrete: the given complement stays unless it is another rate's.
    tol = 2 * max(_resolution(value), _resolution(given))
    stale = not np.allclose(given, 1 - np.asarray(value, np.float64), rtol=0, atol=tol)
    return fresh if stale else given


def _resolution(x: Any) -> float:
    """Machine epsilon of ``x``'s float type (float64 for Python numbers)."""
    dtype = np.dtype(x.dtype) if hasattr(x, "dtype") else np.result_type(x)
    return float(np.finfo(dtype).eps) if np.issubdtype(dtype, np.inexact) else 2.0**-52


def _is_leaf(value: Any) -> bool:
    """True when ``value`` is an opaque pytree leaf (a plain function), False for a
    callable pytree (a ``jax.tree_util.Partial``) whose own leaves stay traced."""
    leaves = jax.tree.leaves(value)
    return len(leaves) == 1 and leaves[0] is value


# --------------------------------------------------------------------------- #
# Hyperparameter checks
# --------------------------------------------------------------------------- #


class _Rule(NamedTuple):
    says: str  # what the rule allows, in words
    within: Callable[[Any], Any]  # the values it allows, elementwise
    fix: str  # the fix to suggest ({name}: the hyperparameter)


_RULES = {
    "learning_rate": _Rule(
        "a finite number >= 0 (or a schedule step -> lr)",
        lambda a: a >= 0,
        "use a positive step size such as 0.01 (descent already steps against the gradient)",
    ),
    "decay": _Rule(
        "a number in [0, 1)",
        lambda a: (a >= 0) & (a < 1),
        "use a value such as 0.9; {name}=1 would never forget a gradient",
    ),
    "positive": _Rule(
        "a finite number > 0", lambda a: a > 0, "use a small positive value such as 1e-8"
    ),
    "nonnegative": _Rule(
        "a finite number >= 0", lambda a: a >= 0, "use 0 to switch it off, or a positive value"
    ),
}


def _check_hyperparameter(owner: str, name: str, value: Any, rule: str) -> None:
    if (rule == "learning_rate" and callable(value)) or isinstance(value, bool):
        return  # a schedule; or a mask that a filter unflattens with (eqx.partition)
    if isinstance(value, str | bytes | complex):
        raise TypeError(
            f"{owner}: {name} must be {_RULES[rule].says}, got {value!r} of type "
            f"{type(value).__name__}; pass a float."
        )
    if isinstance(value, jax.Array):
        if isinstance(value, jax.core.Tracer) or not value.is_fully_addressable:
            return  # being traced (jit, vmap): checked where it was concrete
    elif not isinstance(value, int | float | np.ndarray | np.generic | list | tuple):
        return  # a placeholder JAX unflattens with (None, object(), a shape)
    within = _RULES[rule].within
    if type(value) in (float, int):  # the usual case, without NumPy (a call's hot path)
        ok = math.isfinite(value) and within(value)
    else:
        try:
            arr = np.asarray(value, dtype=np.float64)
        except (TypeError, ValueError):
            raise TypeError(
                f"{owner}: {name} must be {_RULES[rule].says}, got {value!r} of type "
                f"{type(value).__name__}; pass a float."
            ) from None
        ok = bool(np.all(np.isfinite(arr)) and np.all(within(arr)))
    if not ok:
        fix = _RULES[rule].fix.format(name=name)
        raise ValueError(f"{owner}: {name} must be {_RULES[rule].says}, got {value!r}; {fix}.")


def is_optimizer(obj: Any) -> bool:
    """True for a jaxgd optimizer or an optax ``GradientTransformation``."""
    return isinstance(obj, Optimizer | optax.GradientTransformation)


def check_optimizer(obj: Any, caller: str) -> None:
    """Raise ``TypeError`` (naming ``caller`` and the fix) unless ``obj`` is an optimizer."""
    if not is_optimizer(obj):
        raise TypeError(
            f"{caller}: optimizer must be a jaxgd optimizer (gd.sgd(0.1), gd.adam(1e-3), ...) "
            f"or an optax GradientTransformation, got {obj!r}. Did you pass the factory "
            "without calling it? Use gd.adam(learning_rate) rather than gd.adam."
        )


def _zeros_like(params: Any) -> Any:
    return jax.tree.map(jnp.zeros_like, params)


def _count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


def _abs_sq(g: jax.Array) -> jax.Array:
    """``|g|^2``: ``g**2`` for real ``g``; ``Re(conj(g) g)`` for complex (optax's ``abs_sq``)."""
    return g**2 if jnp.isrealobj(g) else (g.conj() * g).real
