"""The descent variants: the update rules, written out, and the registry of them.

Every optimizer here follows optax's protocol:

* ``init(params) -> state`` builds the state (a ``NamedTuple`` of arrays whose
  fields carry optax's names: ``count``, ``trace``, ``mu``, ``nu``,
  ``sum_of_squares``, so ``optax.tree.get(state, "mu")`` finds them);
* ``update(grads, state, params=None, **extra_args) -> (updates, state)``
  returns the updates to be **added** to the params (``apply_updates``),
  exactly as optax does; extra keyword arguments (``value=``, ``grad=``,
  ``value_fn=``, which optax's line searches use) are accepted and ignored.

So a jaxgd optimizer drops into ``optax.chain``, ``optax.MultiSteps``,
``optimistix.OptaxMinimiser``, Flax's ``nnx.Optimizer`` and any optax training
loop, and reproduces its optax counterpart's numbers (the test suite checks
each against optax, and runs optax's own optimizer tests against them).
Complex params follow optax: squares are ``|g|^2``.

Each optimizer is a frozen dataclass registered with
``jax.tree_util.register_dataclass``: its *numeric* hyperparameters
(``learning_rate``, ``beta``, ``eps`` ...) are leaves, so a compiled run loop
takes a new learning rate without recompiling and a batch of optimizers can be
``jax.vmap``-ped, which is how learning-rate sweeps run. Flags (``nesterov``)
are static fields, and so is a learning-rate *schedule* (any callable
``step -> lr``, such as optax's schedules).

Hyperparameters are checked when the optimizer is built (a negative learning
rate, a decay rate outside ``[0, 1)``, a non-positive ``eps`` raise
``ValueError`` naming the argument); values that are being traced (inside
``jit``/``vmap``) are left alone, so sweeps over hyperparameters still work.

Writing a rule of your own: subclass :class:`Optimizer` (see its docstring).

Notation in the docstrings: ``g`` is the gradient, ``t`` the step counted from
1, ``lr`` the learning rate (``lr_t`` when it is a schedule).
"""

from __future__ import annotations

import dataclasses
import functools
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
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "armijo",
    "decay_rate",
    "get",
    "is_optimizer",
    "momentum",
    "names",
    "nonnegative",
    "positive",
    "rmsprop",
    "sgd",
    "static",
]

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule

apply_updates = optax.apply_updates
"""``params + updates`` leaf by leaf, keeping each param's dtype (optax's own)."""


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
    """
    return dataclasses.field(default=default, metadata={_CHECK: "decay", _ONE_MINUS: one_minus})


def positive(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter that must be a finite number > 0, such as ``eps``."""
    return dataclasses.field(default=default, metadata={_CHECK: "positive"})


def nonnegative(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter that must be a finite number >= 0, such as ``weight_decay``."""
    return dataclasses.field(default=default, metadata={_CHECK: "nonnegative"})


def static(default: Any = dataclasses.MISSING) -> Any:
    """A flag or setting that is not a number to trace (``nesterov``): part of
    the compiled program, so a new value compiles again."""
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


@dataclass_transform(
    frozen_default=True, field_specifiers=(dataclasses.field, decay_rate, positive, nonnegative)
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

    # -- read by minimize's checkpoint fingerprint -----------------------------
    def _tree_flatten(self) -> tuple[list[Any], tuple[tuple[str, ...], tuple[Any, ...]]]:
        """``(numbers, (their names, ((name, value) of flags and schedules)))``."""
        leaves, names, static_items = [], [], []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.metadata.get("static") or callable(value):
                static_items.append((field.name, value))
            else:
                names.append(field.name)
                leaves.append(value)
        return leaves, (tuple(names), tuple(static_items))


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

_RULES = {
    "learning_rate": "a finite number >= 0 (or a schedule step -> lr)",
    "decay": "a number in [0, 1)",
    "positive": "a finite number > 0",
    "nonnegative": "a finite number >= 0",
}


def _check_hyperparameter(owner: str, name: str, value: Any, rule: str) -> None:
    if (rule == "learning_rate" and callable(value)) or isinstance(value, bool):
        return  # a schedule; or a mask that a filter unflattens with (eqx.partition)
    if isinstance(value, str | bytes | complex):
        raise TypeError(
            f"{owner}: {name} must be {_RULES[rule]}, got {value!r} of type "
            f"{type(value).__name__}; pass a float."
        )
    if isinstance(value, jax.Array):
        if isinstance(value, jax.core.Tracer) or not value.is_fully_addressable:
            return  # being traced (jit, vmap): checked where it was concrete
    elif not isinstance(value, int | float | np.ndarray | np.generic | list | tuple):
        return  # a placeholder JAX unflattens with (None, object(), a shape)
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(
            f"{owner}: {name} must be {_RULES[rule]}, got {value!r} of type "
            f"{type(value).__name__}; pass a float."
        ) from None
    finite = bool(np.all(np.isfinite(arr)))
    if rule == "decay":
        ok = finite and bool(np.all((arr >= 0) & (arr < 1)))
        fix = f"use a value such as 0.9; {name}=1 would never forget a gradient"
    elif rule == "positive":
        ok = finite and bool(np.all(arr > 0))
        fix = "use a small positive value such as 1e-8"
    elif rule == "learning_rate":
        ok = finite and bool(np.all(arr >= 0))
        fix = "use a positive step size such as 0.01 (descent already steps against the gradient)"
    else:  # nonnegative
        ok = finite and bool(np.all(arr >= 0))
        fix = "use 0 to switch it off, or a positive value"
    if not ok:
        raise ValueError(f"{owner}: {name} must be {_RULES[rule]}, got {value!r}; {fix}.")


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


# --------------------------------------------------------------------------- #
# The states (field names as optax's, so optax.tree.get finds them)
# --------------------------------------------------------------------------- #


class SgdState(NamedTuple):
    count: jax.Array  # steps taken, int32


class MomentumState(NamedTuple):
    count: jax.Array
    trace: Any  # the velocity, same structure as params (optax's TraceState.trace)


class AdamState(NamedTuple):
    count: jax.Array
    mu: Any  # first moment (mean of gradients)
    nu: Any  # second moment (mean of squared gradients)


class RmspropState(NamedTuple):
    count: jax.Array
    nu: Any  # running mean of squared gradients


class AdagradState(NamedTuple):
    count: jax.Array
    sum_of_squares: Any  # running sum of squared gradients


# --------------------------------------------------------------------------- #
# The variants
# --------------------------------------------------------------------------- #


class sgd(Optimizer):  # noqa: N801 - named like optax's factory
    r"""Vanilla gradient descent: step against the gradient.

    .. math:: p \leftarrow p - lr \cdot g

    Equals ``optax.sgd(learning_rate)``.

    Args:
        learning_rate: the step size ``lr`` (>= 0), or a schedule ``step -> lr``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.sgd(0.1)
        >>> params = jnp.array([1.0, -2.0])
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     grads = jax.grad(lambda p: jnp.sum(p**2))(params)
        ...     updates, state = opt.update(grads, state)
        ...     params = gd.apply_updates(params, updates)
        >>> [round(float(p), 4) for p in params]  # each step multiplies by 1 - 2 * 0.1
        [0.512, -1.024]
    """

    learning_rate: ScalarOrSchedule

    def init(self, params):
        return SgdState(count=_count())

    def rule(self, grads, state, params):
        return self.descend(grads, state.count), SgdState(optax.safe_increment(state.count))


class momentum(Optimizer):  # noqa: N801
    r"""Heavy-ball momentum: keep a running velocity of past gradients.

    .. math::
        v &\leftarrow g + \beta v \\
        p &\leftarrow p - lr \cdot v \qquad
        \text{(Nesterov: } p \leftarrow p - lr \cdot (g + \beta v)\text{)}

    Equals ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``;
    the velocity is the state's ``trace``, as in optax.

    Args:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        beta: how much velocity survives a step, in ``[0, 1)``.
        nesterov: look ahead: step along ``g + beta * v`` instead of ``v``.

    Example:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.momentum(0.1, beta=0.5)
        >>> params = jnp.array([1.0])
        >>> state = opt.init(params)
        >>> for _ in range(2):
        ...     updates, state = opt.update(2 * params, state)  # grad of p**2
        ...     params = gd.apply_updates(params, updates)
        >>> params  # 1 - 0.1*2 = 0.8; v = 1.6 + 0.5*2 = 2.6; 0.8 - 0.26
        Array([0.54], dtype=float32)

    References:
        Polyak, "Some methods of speeding up the convergence of iteration
        methods", 1964; Sutskever et al., ICML 2013 (Nesterov form).
    """

    learning_rate: ScalarOrSchedule
    beta: float = decay_rate(0.9)
    nesterov: bool = static(False)

    def init(self, params):
        return MomentumState(count=_count(), trace=_zeros_like(params))

    def rule(self, grads, state, params):
        velocity = jax.tree.map(lambda g, v: g + self.beta * v, grads, state.trace)
        if self.nesterov:
            direction = jax.tree.map(lambda g, v: g + self.beta * v, grads, velocity)
        else:
            direction = velocity
        updates = self.descend(direction, state.count)
        return updates, MomentumState(optax.safe_increment(state.count), velocity)


class adam(Optimizer):  # noqa: N801
    r"""Adam: momentum on the gradient, scaled by a running RMS of the gradient.

    Kingma & Ba (2015), Algorithm 1:

    .. math::
        m &\leftarrow \beta_1 m + (1-\beta_1) g \\
        v &\leftarrow \beta_2 v + (1-\beta_2) |g|^2 \\
        \hat m &= m / (1-\beta_1^t), \quad \hat v = v / (1-\beta_2^t) \\
        p &\leftarrow p - lr \cdot \hat m / (\sqrt{\hat v} + \epsilon)

    ``eps`` sits outside the square root. Equals ``optax.adam(...)``.

    Args:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        b1: decay of the first moment, in ``[0, 1)``.
        b2: decay of the second moment, in ``[0, 1)``.
        eps: added to the denominator (> 0).

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.adam(0.1)
        >>> params = jnp.array([3.0, -3.0])
        >>> state = opt.init(params)
        >>> updates, state = opt.update(2 * params, state)  # grad of sum(p**2)
        >>> updates  # the first Adam step has length lr whatever the gradient's scale
        Array([-0.1,  0.1], dtype=float32)

    References:
        Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015.
    """

    learning_rate: ScalarOrSchedule = 1e-3
    b1: float = decay_rate(0.9, one_minus=True)
    b2: float = decay_rate(0.999, one_minus=True)
    eps: float = positive(1e-8)

    def init(self, params):
        return AdamState(count=_count(), mu=_zeros_like(params), nu=_zeros_like(params))

    def _direction(self, grads, state):
        """Adam's bias-corrected ``m_hat / (sqrt(v_hat) + eps)`` and its new state."""
        b1, one_minus_b1 = self.b1, self.one_minus("b1")
        b2, one_minus_b2 = self.b2, self.one_minus("b2")
        t = optax.safe_increment(state.count)
        mu = jax.tree.map(lambda g, m: one_minus_b1 * g + b1 * m, grads, state.mu)
        nu = jax.tree.map(lambda g, v: one_minus_b2 * _abs_sq(g) + b2 * v, grads, state.nu)
        m_hat = optax.tree.bias_correction(mu, b1, t)  # m / (1 - b1^t), as optax rounds it
        v_hat = optax.tree.bias_correction(nu, b2, t)
        direction = jax.tree.map(lambda m, v: m / (jnp.sqrt(v) + self.eps), m_hat, v_hat)
        return direction, AdamState(count=t, mu=mu, nu=nu)

    def rule(self, grads, state, params):
        direction, new_state = self._direction(grads, state)
        return self.descend(direction, state.count), new_state


class adamw(adam):  # noqa: N801
    r"""AdamW: Adam with weight decay applied to the params, not the gradient.

    .. math::
        p \leftarrow p - lr \cdot \big(\hat m / (\sqrt{\hat v} + \epsilon)
        + \lambda p\big)

    with ``m_hat``, ``v_hat`` as in :class:`adam` and ``lambda`` the
    ``weight_decay``. Equals ``optax.adamw(...)``.

    Args:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        b1: decay of the first moment, in ``[0, 1)``.
        b2: decay of the second moment, in ``[0, 1)``.
        eps: added to the denominator (> 0).
        weight_decay: ``lambda`` (>= 0); it is multiplied by the learning rate.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.adamw(0.1, weight_decay=0.5)
        >>> params = jnp.array([2.0])
        >>> updates, _ = opt.update(jnp.array([0.0]), opt.init(params), params)
        >>> updates  # zero gradient: only the decay acts, -0.1 * 0.5 * 2
        Array([-0.1], dtype=float32)

    References:
        Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019.
    """

    weight_decay: float = nonnegative(1e-4)

    def rule(self, grads, state, params):
        if params is None:
            raise ValueError(
                "adamw.update needs params (weight decay acts on them): "
                "call opt.update(grads, state, params)."
            )
        direction, new_state = self._direction(grads, state)
        decayed = jax.tree.map(lambda d, p: d + self.weight_decay * p, direction, params)
        return self.descend(decayed, state.count), new_state


class rmsprop(Optimizer):  # noqa: N801
    r"""RMSProp: divide the gradient by a running root mean square of it.

    .. math::
        v &\leftarrow \rho v + (1-\rho) |g|^2 \\
        p &\leftarrow p - lr \cdot g / \sqrt{v + \epsilon}

    ``eps`` sits inside the square root, as in optax. Equals
    ``optax.rmsprop(learning_rate, decay=decay, eps=eps)``.

    Args:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        decay: ``rho``, the decay of the running mean, in ``[0, 1)``.
        eps: added inside the square root (> 0).

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.rmsprop(0.01, decay=0.75)
        >>> params = jnp.array([1.0])
        >>> updates, _ = opt.update(jnp.array([4.0]), opt.init(params))
        >>> updates  # v = 0.25 * 16 = 4, so the step is 0.01 * 4 / 2
        Array([-0.02], dtype=float32)

    References:
        Tieleman & Hinton, Coursera "Neural Networks for Machine Learning",
        lecture 6.5, 2012.
    """

    learning_rate: ScalarOrSchedule
    decay: float = decay_rate(0.9, one_minus=True)
    eps: float = positive(1e-8)

    def init(self, params):
        return RmspropState(count=_count(), nu=_zeros_like(params))

    def rule(self, grads, state, params):
        rho, one_minus_rho = self.decay, self.one_minus("decay")
        nu = jax.tree.map(lambda g, v: one_minus_rho * _abs_sq(g) + rho * v, grads, state.nu)
        direction = jax.tree.map(lambda g, v: jax.lax.rsqrt(v + self.eps) * g, grads, nu)
        return self.descend(direction, state.count), RmspropState(
            optax.safe_increment(state.count), nu
        )


class adagrad(Optimizer):  # noqa: N801
    r"""AdaGrad: divide the gradient by the root of the sum of all past squares.

    .. math::
        s &\leftarrow s + |g|^2 \qquad (s_0 = \text{initial\_accumulator\_value}) \\
        p &\leftarrow p - lr \cdot g / \sqrt{s + \epsilon}

    Each coordinate's step shrinks as its gradients add up. Equals
    ``optax.adagrad(learning_rate, initial_accumulator_value, eps)``.

    Args:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        initial_accumulator_value: the starting sum of squares (>= 0).
        eps: added inside the square root (> 0).

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.adagrad(1.0, initial_accumulator_value=0.0, eps=1e-12)
        >>> params = jnp.array([5.0])
        >>> updates, _ = opt.update(jnp.array([3.0]), opt.init(params))
        >>> updates  # the first step is lr * g / |g|
        Array([-1.], dtype=float32)

    References:
        Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online
        Learning and Stochastic Optimization", JMLR 2011.
    """

    learning_rate: ScalarOrSchedule
    initial_accumulator_value: float = nonnegative(0.1)
    eps: float = positive(1e-7)

    def init(self, params):
        s0 = jax.tree.map(lambda p: jnp.full_like(p, self.initial_accumulator_value), params)
        return AdagradState(count=_count(), sum_of_squares=s0)

    def rule(self, grads, state, params):
        sums = jax.tree.map(lambda g, s: _abs_sq(g) + s, grads, state.sum_of_squares)
        # 1 / sqrt(s + eps), and 0 where nothing has been summed yet
        scale = jax.tree.map(lambda s: jnp.where(s > 0, jax.lax.rsqrt(s + self.eps), 0.0), sums)
        direction = jax.tree.map(lambda c, g: c * g, scale, grads)
        return self.descend(direction, state.count), AdagradState(
            optax.safe_increment(state.count), sums
        )


class armijo(Optimizer):  # noqa: N801
    r"""Vanilla descent with a backtracking (Armijo) line search.

    Each step starts from ``lr * g`` and shrinks it by ``decrease_factor``
    until the loss falls enough (the Armijo condition):

    .. math::
        f(p - \eta\, g) \le f(p) - c\, \eta\, \|g\|^2

    It is optax's: ``optax.chain(optax.sgd(learning_rate),
    optax.scale_by_backtracking_linesearch(max_backtracking_steps))``, with
    the learning rate (the longest step tried) a traced leaf as in every jaxgd
    optimizer. The line search evaluates the loss, so ``update`` needs
    ``value=`` (the loss at ``params``), ``grad=`` and ``value_fn=`` (the loss
    function), as optax's documented loop passes them.

    Args:
        learning_rate: the first (and longest) step tried (>= 0), or a schedule.
        max_backtracking_steps: how many times a step may be shrunk.

    Example:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> f = lambda p: jnp.sum(p**2)
        >>> opt = gd.optimizers.armijo(1.0)
        >>> params = jnp.array([1.0, -2.0])
        >>> state = opt.init(params)
        >>> value, grad = jax.value_and_grad(f)(params)
        >>> updates, state = opt.update(grad, state, params, value=value, grad=grad, value_fn=f)
        >>> updates  # the step lr * g = 2p lands on -p (no decrease); 0.8 * lr lands on -0.6 p
        Array([-1.6,  3.2], dtype=float32)

    References:
        Armijo, "Minimization of functions having Lipschitz continuous first
        partial derivatives", Pacific J. Math. 1966.
    """

    learning_rate: ScalarOrSchedule
    max_backtracking_steps: int = static(15)

    def _optax(self) -> optax.GradientTransformationExtraArgs:
        return optax.chain(
            optax.sgd(self.learning_rate),
            optax.scale_by_backtracking_linesearch(self.max_backtracking_steps),
        )

    def init(self, params):
        return self._optax().init(params)

    def update(self, grads, state, params=None, **extra_args):
        missing = [k for k in ("value", "grad", "value_fn") if k not in extra_args]
        if params is None or missing:
            absent = ", ".join([f"{k}=" for k in missing] + (["params"] if params is None else []))
            raise TypeError(
                f"armijo.update needs params and the loss: {absent} missing. The line search "
                "evaluates the loss to choose the step: call opt.update(grads, state, params, "
                "value=loss, grad=grads, value_fn=loss_fn)."
            )
        return self._optax().update(grads, state, params, **extra_args)


# --------------------------------------------------------------------------- #
# The registry: optimizers by label
# --------------------------------------------------------------------------- #

_REGISTRY: dict[str, Callable[..., Optimizer]] = {
    "vanilla": sgd,
    "momentum": momentum,
    "nesterov": functools.partial(momentum, nesterov=True),
    "adam": adam,
    "adamw": adamw,
    "rmsprop": rmsprop,
    "adagrad": adagrad,
    "armijo": armijo,
}


def names() -> list[str]:
    """The registered optimizer labels, in registry order.

    Example:
        >>> import jaxgd as gd
        >>> gd.optimizers.names()
        ['vanilla', 'momentum', 'nesterov', 'adam', 'adamw', 'rmsprop', 'adagrad', 'armijo']
    """
    return list(_REGISTRY)


def get(label: str) -> Callable[..., Optimizer]:
    """The factory registered as ``label``: ``factory(learning_rate, **hyperparameters)``.

    Example:
        >>> import jaxgd as gd
        >>> gd.optimizers.get("nesterov")(0.1, beta=0.8)
        momentum(learning_rate=0.1, beta=0.8, nesterov=True)
    """
    if not isinstance(label, str) or label not in _REGISTRY:
        raise ValueError(
            f"unknown optimizer {label!r}; known optimizers: {', '.join(names())} "
            "(gd.optimizers.names() lists them)."
        )
    return _REGISTRY[label]
