"""The built-in descent variants: each rule written out, its formula in its docstring.

Each equals its optax counterpart (named in its docstring) bit for bit in a
jitted loop; the states carry optax's field names (``count``, ``trace``,
``mu``, ``nu``, ``sum_of_squares``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax
from jax.flatten_util import ravel_pytree

from jaxgd.optimizers._base import (
    Optimizer,
    ScalarOrSchedule,
    StabilityLimit,
    _abs_sq,
    _count,
    _zeros_like,
    decay_rate,
    nonnegative,
    positive,
    static,
)

__all__ = [
    "AdagradState",
    "AdamState",
    "MomentumState",
    "RmspropState",
    "SgdState",
    "adagrad",
    "adam",
    "adamw",
    "armijo",
    "momentum",
    "rmsprop",
    "sgd",
]


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

    $$
    p \leftarrow p - \eta\, g
    $$

    with $g$ the gradient and $\eta$ the learning rate.

    Equals ``optax.sgd(learning_rate)``.

    Attributes:
        learning_rate: the step size ``lr`` (>= 0), or a schedule ``step -> lr``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.sgd(0.1)
        >>> params = jnp.array([1.0, -2.0])
        >>> state = opt.init(params)
        >>> for _ in range(3):
        ...     grads = jax.grad(lambda p: jnp.sum(p**2))(params)
        ...     updates, state = opt.update(grads, state)
        ...     params = optax.apply_updates(params, updates)
        >>> [round(float(p), 4) for p in params]  # each step multiplies by 1 - 2 * 0.1
        [0.512, -1.024]
    """

    learning_rate: ScalarOrSchedule

    def init(self, params):
        return SgdState(count=_count())

    def rule(self, grads, state, params):
        return self.descend(grads, state.count), SgdState(optax.safe_increment(state.count))

    def stability_limit(self, lr):
        """``2 / lr``: on a quadratic, ``x <- (1 - lr lambda) x`` shrinks only while
        ``|1 - lr lambda| < 1``."""
        return StabilityLimit("sharpness", 2 / lr, "2/lr")


class momentum(Optimizer):  # noqa: N801
    r"""Heavy-ball momentum: keep a running velocity of past gradients.

    $$
    \begin{aligned}
    v &\leftarrow g + \beta\, v \\
    p &\leftarrow p - \eta\, v
    \qquad \text{(Nesterov: } p \leftarrow p - \eta\,(g + \beta\, v)\text{)}
    \end{aligned}
    $$

    Equals ``optax.sgd(learning_rate, momentum=beta, nesterov=nesterov)``;
    the velocity is the state's ``trace``, as in optax.

    Attributes:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        beta: how much velocity survives a step, in ``[0, 1)``.
        nesterov: look ahead: step along ``g + beta * v`` instead of ``v``.

    Examples:
        >>> import jax, jax.numpy as jnp, jaxgd as gd
        >>> opt = gd.momentum(0.1, beta=0.5)
        >>> params = jnp.array([1.0])
        >>> state = opt.init(params)
        >>> for _ in range(2):
        ...     updates, state = opt.update(2 * params, state)  # grad of p**2
        ...     params = optax.apply_updates(params, updates)
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
        velocity = jax.tree.map(lambda g, v: g + self.beta * v, grads, state.trace)  # g + beta v
        if self.nesterov:  # look ahead: g + beta * v, with the new v
            direction = jax.tree.map(lambda g, v: g + self.beta * v, grads, velocity)
        else:
            direction = velocity
        updates = self.descend(direction, state.count)
        return updates, MomentumState(optax.safe_increment(state.count), velocity)

    def stability_limit(self, lr):
        """``(2 + 2 beta) / lr`` for heavy ball: ``x_{k+1} = (1 + beta - lr lambda) x_k
        - beta x_{k-1}`` is stable for ``lr lambda < 2 + 2 beta`` (Cohen et al.
        2021, appendix). None for Nesterov's form, whose limit we do not claim."""
        if self.nesterov:
            return None
        return StabilityLimit("sharpness", (2 + 2 * float(self.beta)) / lr, "(2+2β)/lr")


class adam(Optimizer):  # noqa: N801
    r"""Adam: momentum on the gradient, scaled by a running RMS of the gradient.

    Kingma & Ba (2015), Algorithm 1:

    $$
    \begin{aligned}
    m &\leftarrow \beta_1 m + (1-\beta_1)\, g \\
    v &\leftarrow \beta_2 v + (1-\beta_2)\, |g|^2 \\
    \hat m &= m / (1-\beta_1^t), \quad \hat v = v / (1-\beta_2^t) \\
    p &\leftarrow p - \eta\, \hat m / (\sqrt{\hat v} + \epsilon)
    \end{aligned}
    $$

    with $t$ the step, from 1, and $|g|^2$ taken coordinate by coordinate.

    ``eps`` sits outside the square root. Equals ``optax.adam(...)``.

    Attributes:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        b1: decay of the first moment, in ``[0, 1)``.
        b2: decay of the second moment, in ``[0, 1)``.
        eps: added to the denominator (> 0).

    Examples:
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
    b1: float = decay_rate(0.9)
    b2: float = decay_rate(0.999)
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

    def stability_limit(self, lr):
        """``(2 + 2 b1) / ((1 - b1) lr)`` on the *preconditioned* sharpness (of
        ``P^-1 H``), 38 / lr at ``b1 = 0.9``: Adam is heavy ball on
        ``m = b1 m + (1 - b1) g`` with preconditioner ``P`` (Cohen et al. 2022, eq. 2)."""
        b1 = float(self.b1)
        return StabilityLimit(
            "preconditioned", (2 + 2 * b1) / ((1 - b1) * lr), "(2+2β1)/((1−β1) lr)"
        )

    def preconditioner(self, grads, state):
        """``P = (1 - b1^t) (sqrt(v / (1 - b2^t)) + eps)``, flat, where ``v``
        already includes this step's gradient and ``t`` counts this step: Adam
        written as preconditioned heavy ball on ``m``, the running mean of
        gradients without bias correction, steps ``p <- p - lr P^-1 m``
        (Cohen et al. 2022, section 2)."""
        t = state.count + 1
        b1, b2 = self.b1, self.b2
        nu = jax.tree.map(lambda g, v: b2 * v + (1 - b2) * _abs_sq(g), grads, state.nu)
        flat_nu = ravel_pytree(nu)[0]
        return (1 - b1**t) * (jnp.sqrt(flat_nu / (1 - b2**t)) + self.eps)


class adamw(adam):  # noqa: N801
    r"""AdamW: Adam with weight decay applied to the params, not the gradient.

    $$
    p \leftarrow p - \eta\, \big(\hat m / (\sqrt{\hat v} + \epsilon) + \lambda\, p\big)
    $$

    with $\hat m$, $\hat v$ as in `adam` and $\lambda$ the ``weight_decay``.
    Equals ``optax.adamw(...)``.

    Attributes:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        b1: decay of the first moment, in ``[0, 1)``.
        b2: decay of the second moment, in ``[0, 1)``.
        eps: added to the denominator (> 0).
        weight_decay: ``lambda`` (>= 0); it is multiplied by the learning rate.

    Examples:
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

    $$
    \begin{aligned}
    v &\leftarrow \rho\, v + (1-\rho)\, |g|^2 \\
    p &\leftarrow p - \eta\, g / \sqrt{v + \epsilon}
    \end{aligned}
    $$

    with $\rho$ the ``decay``.

    ``eps`` sits inside the square root, as in optax. Equals
    ``optax.rmsprop(learning_rate, decay=decay, eps=eps)``.

    Attributes:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        decay: ``rho``, the decay of the running mean, in ``[0, 1)``.
        eps: added inside the square root (> 0).

    Examples:
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
    decay: float = decay_rate(0.9)
    eps: float = positive(1e-8)

    def init(self, params):
        return RmspropState(count=_count(), nu=_zeros_like(params))

    def rule(self, grads, state, params):
        rho, one_minus_rho = self.decay, self.one_minus("decay")
        nu = jax.tree.map(lambda g, v: one_minus_rho * _abs_sq(g) + rho * v, grads, state.nu)
        direction = jax.tree.map(lambda g, v: jax.lax.rsqrt(v + self.eps) * g, grads, nu)
        updates = self.descend(direction, state.count)
        return updates, RmspropState(optax.safe_increment(state.count), nu)


class adagrad(Optimizer):  # noqa: N801
    r"""AdaGrad: divide the gradient by the root of the sum of all past squares.

    $$
    \begin{aligned}
    s &\leftarrow s + |g|^2 \qquad (s_0 = \texttt{initial_accumulator_value}) \\
    p &\leftarrow p - \eta\, g / \sqrt{s + \epsilon}
    \end{aligned}
    $$

    Each coordinate's step shrinks as its gradients add up. Equals
    ``optax.adagrad(learning_rate, initial_accumulator_value, eps)``.

    Attributes:
        learning_rate: the step size (>= 0), or a schedule ``step -> lr``.
        initial_accumulator_value: the starting sum of squares (>= 0).
        eps: added inside the square root (> 0).

    Examples:
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
        updates = self.descend(direction, state.count)
        return updates, AdagradState(optax.safe_increment(state.count), sums)


class armijo(Optimizer):  # noqa: N801
    r"""Vanilla descent with a backtracking (Armijo) line search.

    Each step starts from ``lr * g`` and shrinks it by ``decrease_factor``
    until the loss falls enough (the Armijo condition):

    $$
    f(p - \eta\, g) \le f(p) - c\, \eta\, \|g\|^2
    $$

    It is optax's: ``optax.chain(optax.sgd(learning_rate),
    optax.scale_by_backtracking_linesearch(max_backtracking_steps))``, with
    the learning rate (the longest step tried) a traced leaf as in every jaxgd
    optimizer. The line search evaluates the loss, so ``update`` needs
    ``value=`` (the loss at ``params``), ``grad=`` and ``value_fn=`` (the loss
    function), as optax's documented loop passes them.

    Attributes:
        learning_rate: the first (and longest) step tried (>= 0), or a schedule.
        max_backtracking_steps: how many times a step may be shrunk.

    Examples:
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
