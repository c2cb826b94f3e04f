"""The descent variants: the update rules, written out.

Every optimizer here is a small frozen dataclass that follows optax's protocol:

* ``init(params) -> state`` builds the state (a ``NamedTuple`` of arrays);
* ``update(grads, state, params=None) -> (updates, state)`` returns the updates
  to be **added** to the params (``apply_updates``), exactly as optax does.

So a jaxgd optimizer drops into ``optax.chain`` and any optax training loop,
and reproduces its optax counterpart's numbers (the test suite checks each one
against optax over hundreds of steps).

Each optimizer is also a JAX pytree whose *numeric* hyperparameters
(``learning_rate``, ``beta``, ``eps`` ...) are leaves: a compiled run loop takes
a new learning rate without recompiling, and a whole batch of optimizers can be
``jax.vmap``-ped, which is how learning-rate sweeps run. Flags (``nesterov``)
and learning-rate *schedules* (any callable ``step -> lr``, such as optax's
schedules) are static.

Hyperparameters are checked when the optimizer is built (a negative learning
rate, a beta outside ``[0, 1)``, a non-positive ``eps`` raise ``ValueError``
naming the argument); values that are being traced (inside ``jit``/``vmap``)
are left alone, so sweeps over hyperparameters still work.

Notation in the docstrings: ``g`` is the gradient, ``t`` the step counted from
1, ``lr`` the learning rate (``lr_t`` when it is a schedule).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

__all__ = [
    "Optimizer",
    "adagrad",
    "adam",
    "adamw",
    "apply_updates",
    "is_optimizer",
    "momentum",
    "rmsprop",
    "sgd",
]

Schedule = Callable[[jax.Array], jax.Array]
ScalarOrSchedule = float | jax.Array | Schedule

apply_updates = optax.apply_updates
"""``params + updates`` leaf by leaf, keeping each param's dtype (optax's own)."""


# --------------------------------------------------------------------------- #
# The base class: pytree registration and hyperparameter checks
# --------------------------------------------------------------------------- #


class Optimizer:
    """Base class of the descent variants.

    Subclasses are frozen dataclasses; ``_static`` names the fields that are
    flags (not numbers), and ``_checks`` maps a numeric field to the rule its
    concrete values must obey.
    """

    _static: ClassVar[tuple[str, ...]] = ()
    _checks: ClassVar[dict[str, str]] = {}
    _complements: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name, rule in self._checks.items():
            _check_hyperparameter(type(self).__name__, name, getattr(self, name), rule)
        # ``1 - decay`` is computed once, here, in the precision the decay was
        # given in (Python floats: float64), and travels as a leaf of its own.
        # Computed later from a traced float32 decay it would round differently
        # from optax's constant and the trajectories would part by an ulp.
        for name in self._complements:
            value = getattr(self, name)
            one_minus = 1.0 - value if isinstance(value, int | float) else 1 - value
            object.__setattr__(self, f"_one_minus_{name}", one_minus)

    def _one_minus(self, name: str) -> Any:
        """``1 - getattr(self, name)``, rounded as optax rounds it."""
        return getattr(self, f"_one_minus_{name}")

    def init(self, params: Any) -> Any:  # pragma: no cover - abstract
        raise NotImplementedError

    def update(self, grads: Any, state: Any, params: Any = None) -> tuple[Any, Any]:
        raise NotImplementedError  # pragma: no cover - abstract

    def _learning_rate(self, count: jax.Array) -> jax.Array:
        """The learning rate of the step that has ``count`` steps before it."""
        lr = self.learning_rate  # type: ignore[attr-defined]
        return lr(count) if callable(lr) else lr

    # -- pytree protocol: numeric hyperparameters are leaves -------------------
    def _tree_flatten(self):
        leaves, leaf_names, static = [], [], []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name in self._static or callable(value):
                static.append((f.name, value))
            else:
                leaf_names.append(f.name)
                leaves.append(value)
        for name in self._complements:
            leaf_names.append(f"_one_minus_{name}")
            leaves.append(self._one_minus(name))
        return leaves, (tuple(leaf_names), tuple(static))

    @classmethod
    def _tree_unflatten(cls, aux, leaves):
        leaf_names, static = aux
        obj = object.__new__(cls)  # no checks: leaves may be tracers or placeholders
        for name, value in zip(leaf_names, leaves, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in static:
            object.__setattr__(obj, name, value)
        return obj


def _optimizer(cls):
    """Make ``cls`` a frozen dataclass registered as a pytree."""
    cls = dataclasses.dataclass(frozen=True)(cls)
    jax.tree_util.register_pytree_node(cls, cls._tree_flatten, cls._tree_unflatten)
    return cls


_RULES = {
    "learning_rate": "a finite number >= 0 (or a schedule step -> lr)",
    "decay": "a number in [0, 1)",
    "eps": "a finite number > 0",
    "nonnegative": "a finite number >= 0",
}


def _check_hyperparameter(owner: str, name: str, value: Any, rule: str) -> None:
    if rule == "learning_rate" and callable(value):
        return
    if isinstance(value, jax.core.Tracer):
        return  # being traced (jit, vmap): checked where it was concrete
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
    elif rule == "eps":
        ok = finite and bool(np.all(arr > 0))
        fix = "use a small positive value such as 1e-8"
    else:  # learning_rate, nonnegative
        ok = finite and bool(np.all(arr >= 0))
        fix = (
            "use a positive step size such as 0.01 (descent already steps against the gradient)"
            if rule == "learning_rate"
            else "use 0 to switch it off, or a positive value"
        )
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


def _zeros_like(params):
    return jax.tree.map(jnp.zeros_like, params)


def _as(x, like):
    """``x`` (a hyperparameter) in the dtype of the array ``like``."""
    return jnp.asarray(x, dtype=like.dtype)


# --------------------------------------------------------------------------- #
# The states
# --------------------------------------------------------------------------- #


class SgdState(NamedTuple):
    count: jax.Array  # steps taken, int32


class MomentumState(NamedTuple):
    count: jax.Array
    velocity: Any  # same structure as params


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


def _count() -> jax.Array:
    return jnp.zeros([], jnp.int32)


# --------------------------------------------------------------------------- #
# The variants
# --------------------------------------------------------------------------- #


@_optimizer
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
    _checks: ClassVar = {"learning_rate": "learning_rate"}

    def init(self, params):
        return SgdState(count=_count())

    def update(self, grads, state, params=None):
        lr = self._learning_rate(state.count)
        updates = jax.tree.map(lambda g: -_as(lr, g) * g, grads)
        return updates, SgdState(count=optax.safe_increment(state.count))


@_optimizer
class momentum(Optimizer):  # noqa: N801
    r"""Heavy-ball momentum: keep a running velocity of past gradients.

    .. math::
        v &\leftarrow g + \beta v \\
        p &\leftarrow p - lr \cdot v \qquad
        \text{(Nesterov: } p \leftarrow p - lr \cdot (g + \beta v)\text{)}

    Equals ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``.

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
    beta: float = 0.9
    nesterov: bool = False
    _static: ClassVar = ("nesterov",)
    _checks: ClassVar = {"learning_rate": "learning_rate", "beta": "decay"}

    def init(self, params):
        return MomentumState(count=_count(), velocity=_zeros_like(params))

    def update(self, grads, state, params=None):
        lr = self._learning_rate(state.count)
        velocity = jax.tree.map(lambda g, v: g + _as(self.beta, g) * v, grads, state.velocity)
        if self.nesterov:
            direction = jax.tree.map(lambda g, v: g + _as(self.beta, g) * v, grads, velocity)
        else:
            direction = velocity
        updates = jax.tree.map(lambda d: -_as(lr, d) * d, direction)
        return updates, MomentumState(optax.safe_increment(state.count), velocity)


@_optimizer
class adam(Optimizer):  # noqa: N801
    r"""Adam: momentum on the gradient, scaled by a running RMS of the gradient.

    Kingma & Ba (2015), Algorithm 1:

    .. math::
        m &\leftarrow \beta_1 m + (1-\beta_1) g \\
        v &\leftarrow \beta_2 v + (1-\beta_2) g^2 \\
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
    b1: float = 0.9
    b2: float = 0.999
    eps: float = 1e-8
    _checks: ClassVar = {
        "learning_rate": "learning_rate",
        "b1": "decay",
        "b2": "decay",
        "eps": "eps",
    }
    _complements: ClassVar = ("b1", "b2")

    def init(self, params):
        return AdamState(count=_count(), mu=_zeros_like(params), nu=_zeros_like(params))

    def _direction(self, grads, state):
        """Adam's bias-corrected ``m_hat / (sqrt(v_hat) + eps)`` and its new state."""
        t = optax.safe_increment(state.count)
        one_minus_b1, one_minus_b2 = self._one_minus("b1"), self._one_minus("b2")
        mu = jax.tree.map(lambda g, m: one_minus_b1 * g + self.b1 * m, grads, state.mu)
        nu = jax.tree.map(lambda g, v: one_minus_b2 * g**2 + self.b2 * v, grads, state.nu)
        mu = jax.tree.map(lambda m, g: m.astype(g.dtype), mu, grads)
        nu = jax.tree.map(lambda v, g: v.astype(g.dtype), nu, grads)
        correction1 = 1 - self.b1**t
        correction2 = 1 - self.b2**t
        direction = jax.tree.map(
            lambda m, v: (m / _as(correction1, m)) / (jnp.sqrt(v / _as(correction2, v)) + self.eps),
            mu,
            nu,
        )
        direction = jax.tree.map(lambda d, g: d.astype(g.dtype), direction, grads)
        return direction, AdamState(count=t, mu=mu, nu=nu)

    def update(self, grads, state, params=None):
        lr = self._learning_rate(state.count)
        direction, state = self._direction(grads, state)
        updates = jax.tree.map(lambda d: -_as(lr, d) * d, direction)
        return updates, state


@_optimizer
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

    weight_decay: float = 1e-4
    _checks: ClassVar = {**adam._checks, "weight_decay": "nonnegative"}

    def update(self, grads, state, params=None):
        if params is None:
            raise ValueError("adamw.update needs params (weight decay acts on them): pass params=.")
        lr = self._learning_rate(state.count)
        direction, state = self._direction(grads, state)
        updates = jax.tree.map(
            lambda d, p: -_as(lr, d) * (d + _as(self.weight_decay, d) * p), direction, params
        )
        return updates, state


@_optimizer
class rmsprop(Optimizer):  # noqa: N801
    r"""RMSProp: divide the gradient by a running root mean square of it.

    .. math::
        v &\leftarrow \rho v + (1-\rho) g^2 \\
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
    decay: float = 0.9
    eps: float = 1e-8
    _checks: ClassVar = {"learning_rate": "learning_rate", "decay": "decay", "eps": "eps"}
    _complements: ClassVar = ("decay",)

    def init(self, params):
        return RmspropState(count=_count(), nu=_zeros_like(params))

    def update(self, grads, state, params=None):
        lr = self._learning_rate(state.count)
        nu = jax.tree.map(
            lambda g, v: (self._one_minus("decay") * g**2 + self.decay * v).astype(g.dtype),
            grads,
            state.nu,
        )
        updates = jax.tree.map(
            lambda g, v: -_as(lr, g) * (jax.lax.rsqrt(v + _as(self.eps, v)) * g), grads, nu
        )
        return updates, RmspropState(optax.safe_increment(state.count), nu)


@_optimizer
class adagrad(Optimizer):  # noqa: N801
    r"""AdaGrad: divide the gradient by the root of the sum of all past squares.

    .. math::
        s &\leftarrow s + g^2 \qquad (s_0 = \text{initial\_accumulator\_value}) \\
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
    initial_accumulator_value: float = 0.1
    eps: float = 1e-7
    _checks: ClassVar = {
        "learning_rate": "learning_rate",
        "initial_accumulator_value": "nonnegative",
        "eps": "eps",
    }

    def init(self, params):
        s0 = jax.tree.map(lambda p: jnp.full_like(p, self.initial_accumulator_value), params)
        return AdagradState(count=_count(), sum_of_squares=s0)

    def update(self, grads, state, params=None):
        lr = self._learning_rate(state.count)
        sums = jax.tree.map(lambda g, s: g**2 + s, grads, state.sum_of_squares)
        updates = jax.tree.map(
            lambda g, s: (
                -_as(lr, g)
                * (jnp.where(s > 0, jax.lax.rsqrt(s + _as(self.eps, s)), 0.0).astype(g.dtype) * g)
            ),
            grads,
            sums,
        )
        return updates, AdagradState(optax.safe_increment(state.count), sums)
