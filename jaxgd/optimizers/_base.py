"""The base class of the descent variants, and of a rule of your own.

Subclassing `Optimizer` makes a frozen dataclass registered as a
pytree: the hyperparameters declared as fields are traced leaves
(``decay_rate``, ``positive``, ``nonnegative`` check them), flags declared
``static`` are compiled in, and a learning-rate schedule is held static. A
decay rate ``b`` travels with ``1 - b`` as a second leaf, rounded as optax
rounds it (see `one_minus`). `Optimizer.update` is optax's
protocol around the subclass's ``rule``.
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
    "one_minus",
    "positive",
    "static",
]

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule


# --------------------------------------------------------------------------- #
# Declaring hyperparameters
# --------------------------------------------------------------------------- #

_CHECK = "jaxgd_check"  # field metadata: the rule a concrete value must obey


def decay_rate(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter in ``[0, 1)``: a decay rate such as Adam's ``b1``.

    It travels with its complement ``1 - b`` as a second traced leaf,
    computed when the optimizer is flattened (`one_minus`), and
    `Optimizer.one_minus` returns it: a rule written
    ``one_minus("b1") * g + b1 * m`` has optax's bits even where ``b1`` is
    traced (as it is in `jaxgd.minimize`).

    Examples:
        >>> import jaxgd as gd
        >>> from jaxgd.optimizers import decay_rate
        >>> class ema_sgd(gd.Optimizer):  # declares its hyperparameters only
        ...     learning_rate: float
        ...     b1: float = decay_rate(0.9)
        >>> ema_sgd(0.1).one_minus("b1")
        0.09999999999999998
        >>> ema_sgd(0.1, b1=1.0)
        Traceback (most recent call last):
        ...
        ValueError: ema_sgd: b1 must be a number in [0, 1), got 1.0; use a value such as 0.9; ...
    """
    return dataclasses.field(default=default, metadata={_CHECK: "decay"})


def one_minus(value: Any) -> Any:
    """``1 - value``, rounded as optax rounds ``1 - b1``: in float64 for a
    Python number (optax folds ``1 - 0.9`` in as a float64 constant), in its
    own dtype for a concrete array (NumPy: nothing compiles), and with
    ``jax.numpy`` for a traced value.

    Only the last can part from optax: a decay rate that is itself traced
    when the optimizer is built (``jax.vmap(lambda b1: gd.adam(0.1, b1=b1))``)
    computes ``1 - b1`` from a float32 ``b1``: off optax's constant by
    float32's rounding of ``b1``, at most one ulp of ``b1``
    (tests/optimizers/test_optimizers.py checks the bound). A rate
    traced only later, as `jaxgd.minimize` traces every hyperparameter,
    keeps the complement computed here, which travels with it as a leaf.

    Examples:
        >>> import numpy as np
        >>> one_minus(0.9), one_minus(np.float32(0.9))
        (0.09999999999999998, np.float32(0.100000024))
    """
    if isinstance(value, bool) or value is None:
        return value  # a placeholder that a filter unflattens with (equinox's masks)
    if isinstance(value, int | float):
        return 1.0 - value
    if isinstance(value, jax.core.Tracer):
        return 1 - value
    if isinstance(value, jax.Array | np.ndarray | np.generic | list | tuple):
        return 1 - np.asarray(value)
    return value  # another placeholder (object(), a shape)


def positive(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter that must be a finite number > 0, such as ``eps``.

    Examples:
        >>> import jaxgd as gd
        >>> gd.adam(eps=-1e-8)  # adam declares ``eps: float = positive(1e-8)``
        Traceback (most recent call last):
        ...
        ValueError: adam: eps must be a finite number > 0, got -1e-08; use a small positive ...
    """
    return dataclasses.field(default=default, metadata={_CHECK: "positive"})


def nonnegative(default: Any = dataclasses.MISSING) -> Any:
    """A hyperparameter that must be a finite number >= 0, such as ``weight_decay``.

    Examples:
        >>> import jaxgd as gd  # adamw declares ``weight_decay: float = nonnegative(1e-4)``
        >>> gd.adamw(weight_decay=0.0).weight_decay
        0.0
    """
    return dataclasses.field(default=default, metadata={_CHECK: "nonnegative"})


def static(default: Any = dataclasses.MISSING) -> Any:
    """A flag or setting that is not a number to trace (``nesterov``): part of
    the compiled program, so a new value compiles again.

    Examples:
        >>> import jax, jaxgd as gd  # momentum declares ``nesterov: bool = static(False)``
        >>> flagged, plain = gd.momentum(0.1, nesterov=True), gd.momentum(0.1)
        >>> jax.tree.structure(flagged) == jax.tree.structure(plain)  # the flag is compiled in
        False
        >>> len(jax.tree.leaves(gd.momentum(0.1, nesterov=True)))  # lr, beta, 1 - beta: no flag
        3
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
    """Where an optimizer's step starts to overshoot (see `Optimizer.stability_limit`).

    Attributes:
        kind: ``"sharpness"`` (the largest eigenvalue of the Hessian ``H``) or
            ``"preconditioned"`` (of ``P^-1 H``, with the optimizer's
            `Optimizer.preconditioner` ``P``): the value the limit bounds.
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

    A subclass is made a frozen dataclass and registered as a pytree when it
    is defined. Declare its
    hyperparameters as fields:

    * ``learning_rate`` (by that name): checked as a step size (>= 0); it may
      be a schedule ``step -> lr``, which is held static;
    * ``decay_rate(0.9)``, ``positive(1e-8)``, ``nonnegative(0.0)``: numbers,
      checked when built; a plain annotation (``lam: float = 0.1``) is an
      unchecked number. Numbers are traced leaves: new values never recompile;
    * ``static(False)``: a flag, compiled in.

    Then write ``init(params) -> state`` (a ``NamedTuple`` with a ``count``)
    and ``rule(grads, state, params) -> (updates, state)``: the formula.
    `update` (optax's protocol) calls ``rule``, accepts optax's extra
    keyword arguments, and returns the updates in the dtype of the grads and
    the state in its own dtypes, so a rule need not cast anything. Helpers:
    `descend` (``-lr_t * direction``), `learning_rate_at`,
    `one_minus` (``1 - decay``, rounded as optax rounds it; each
    ``decay_rate`` carries it as a leaf).

    Examples:
        Lion (Chen et al., 2023) in a few lines, checked against optax's:

        >>> import jax, jax.numpy as jnp, optax
        >>> from typing import NamedTuple
        >>> from jaxgd.optimizers import Optimizer, decay_rate
        >>> class LionState(NamedTuple):
        ...     count: jax.Array
        ...     mu: jax.Array
        >>> class lion(Optimizer):
        ...     learning_rate: float
        ...     b1: float = decay_rate(0.9)
        ...     b2: float = decay_rate(0.99)
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
        dataclasses.dataclass(frozen=True)(cls)
        _register(cls)

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
        optimizer, never its class (see `jaxgd.optimizers.stability_limit`).
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
        """``1 - getattr(self, name)`` for a ``decay_rate`` field, rounded as
        optax rounds it: the complement that came with the rate as a leaf, or
        `one_minus` of the rate."""
        carried = self.__dict__.get("_carried_complements")
        if carried is not None and name in carried:
            return carried[name]
        return one_minus(getattr(self, name))


def _register(cls: type) -> None:
    """Register ``cls`` as a pytree: its numeric fields are children, then each
    decay rate's complement (`Optimizer.one_minus`); its static fields
    are compiled in."""
    fields = [f for f in dataclasses.fields(cls) if f.init]
    data = [f.name for f in fields if not f.metadata.get("static")]
    meta = [f.name for f in fields if f.metadata.get("static")]
    decays = [f.name for f in fields if f.metadata.get(_CHECK) == "decay" and f.name in data]
    keys = [jax.tree_util.GetAttrKey(n) for n in data]
    keys += [jax.tree_util.GetAttrKey(f"one_minus('{n}')") for n in decays]

    def flatten(opt):
        # Made at the first flatten and kept: the optimizer is frozen, so its
        # children cannot go stale, and a warm minimize flattens it every call.
        flat = opt.__dict__.get("_flat")
        if flat is None:
            carried = opt.__dict__.get("_carried_complements")
            if carried is None:
                carried = {n: one_minus(getattr(opt, n)) for n in decays}
            children = (*(getattr(opt, n) for n in data), *(carried[n] for n in decays))
            flat = (children, tuple(getattr(opt, n) for n in meta))
            object.__setattr__(opt, "_flat", flat)
        return flat

    def flatten_with_keys(opt):
        children, static = flatten(opt)
        return list(zip(keys, children, strict=True)), static

    def unflatten(static, children):
        given = dict(zip(data, children[: len(data)], strict=True))
        opt = cls(**given, **dict(zip(meta, static, strict=True)))
        carried = {
            n: _complement(given[n], c) for n, c in zip(decays, children[len(data) :], strict=True)
        }
        object.__setattr__(opt, "_carried_complements", carried)
        return opt

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)


def _complement(rate: Any, carried: Any) -> Any:
    """The complement an unflattened optimizer uses for ``rate``: the one that
    travelled with it where it still belongs to it, else `one_minus` afresh, so
    a rate changed alone (``eqx.tree_at``, a replaced leaf) is never paired with
    a stale ``1 - b``.

    It belongs to the rate when both are traced together (a run's program, a
    vmapped batch), or when both are concrete and ``1 - complement`` rounds to
    the rate in the rate's dtype (a ``tree_map(jnp.asarray, opt)`` keeps
    optax's float64 complement). A placeholder (None, a mask, a shape) keeps
    what came.
    """
    if isinstance(rate, jax.core.Tracer):
        return carried if isinstance(carried, jax.core.Tracer) else one_minus(rate)
    concrete = float | int | np.ndarray | np.generic | jax.Array
    if isinstance(rate, bool) or not isinstance(rate, concrete):
        return carried
    if isinstance(carried, concrete) and not isinstance(carried, jax.core.Tracer):
        dtype = np.asarray(rate).dtype
        if np.array_equal(1 - np.asarray(carried, dtype), np.asarray(rate)):
            return carried
    return one_minus(rate)


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
    """True for a jaxgd optimizer, an optax ``GradientTransformation``, or an object
    with callable ``init`` and ``update`` (``optax.MultiSteps(...)``); not a class."""
    protocol = callable(getattr(obj, "init", None)) and callable(getattr(obj, "update", None))
    return isinstance(obj, Optimizer | optax.GradientTransformation) or (
        protocol and not isinstance(obj, type)
    )


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
