"""The learning-rate range test (Smith 2017; the fastai "lr finder").

One short run in which the learning rate grows geometrically, step by step,
from ``min_lr`` to ``max_lr``. While the rate is small the loss barely moves;
then it falls; once the step overshoots (for plain gradient descent: past
``2 / L``, ``L`` the largest curvature) the loss stops falling and blows up.
The rate where the loss bottoms out is already too large to keep; a tenth of
it is the suggestion.

The run is :func:`jaxgd.minimize` with a schedule (optax's
``exponential_decay`` with a growth factor), so it is one compiled program.
The figure is drawn by :func:`jaxgd.report.draw_lr_range`; this module
computes and imports nothing that draws.

Reference: L. N. Smith, "Cyclical Learning Rates for Training Neural
Networks", WACV 2017 (the "LR range test").
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np
import optax

from jaxgd.optimizers import is_optimizer
from jaxgd.run import minimize

__all__ = ["LRRangeTest", "lr_range_test"]


class LRRangeTest(NamedTuple):
    """What :func:`lr_range_test` found.

    Attributes:
        learning_rates: the rate of step ``k``, ``min_lr * (max_lr /
            min_lr) ** (k / (steps - 1))``, shape ``(steps,)``.
        losses: ``losses[k]``, the loss right after step ``k`` (the one taken
            at ``learning_rates[k]``); in a minibatch run, on the next
            minibatch. Non-finite where the run blew up, NaN after it stopped.
        smoothed: the losses smoothed by a debiased exponential moving average
            (``smoothing``; equal to ``losses`` when it is 0).
        initial_loss: the loss before the first step.
        best: the rate at which the smoothed loss is lowest.
        suggested: ``best / 10``.
        blow_up: the first rate at which the smoothed loss exceeds
            ``blow_up_factor`` times its lowest value so far (the loss before
            the first step included), or stops being finite; None if the loss
            never blew up in the range.
    """

    learning_rates: np.ndarray
    losses: np.ndarray
    smoothed: np.ndarray
    initial_loss: float
    best: float
    suggested: float
    blow_up: float | None


def lr_range_test(
    loss: Callable[..., Any],
    params: Any,
    factory: Callable[[Any], Any],
    *,
    data: Any = None,
    min_lr: float = 1e-6,
    max_lr: float = 10.0,
    steps: int = 100,
    batch_size: int | None = None,
    key: Any = None,
    has_aux: bool = False,
    smoothing: float = 0.0,
    blow_up_factor: float = 4.0,
) -> LRRangeTest:
    """Run the learning-rate range test: one run with the rate growing geometrically.

    Step ``k`` (of ``steps``) is taken at ``min_lr * (max_lr / min_lr) **
    (k / (steps - 1))``, and the loss after each step is recorded. **The
    rule**: ``suggested`` is a tenth of the rate at which the (smoothed) loss
    is lowest (fastai's classic "minimum / 10"). Why a tenth: the loss bottoms
    out at a rate that is already at or past the edge of stability (on Booth,
    ``L = 18``, it bottoms out near 0.2-0.3 while gradient descent is stable
    only below ``2 / L = 0.111``: the overshoot along the steep direction
    needs a few steps to grow back from the tiny size the earlier steps left
    it), so the rate to keep lies below it; a tenth is safely inside. When the
    loss reaches its floor before the blow-up (a plateau), the lowest point
    lies somewhere on the plateau, at a rate where the run had converged; a
    tenth of it is then cautious, never too large.

    A run that blows up still gives its losses up to the blow-up (the run stops
    at the first non-finite loss; ``losses`` is NaN after it).

    Args:
        loss: ``loss(params)``, or ``loss(params, batch)`` with ``data``.
        params: where to start (as for :func:`jaxgd.minimize`).
        factory: the optimizer as a function of its learning rate:
            ``gd.sgd``, ``gd.adam``, ``optax.adam``, ``lambda lr:
            gd.momentum(lr, beta=0.9)``. It is given a schedule ``step -> lr``.
        data: passed to :func:`jaxgd.minimize`.
        min_lr: the first rate (> 0).
        max_lr: the last rate (> ``min_lr``). Take it large enough that the
            loss blows up (a warning says when it did not).
        steps: how many steps (>= 2); 100 as in fastai.
        batch_size: minibatches of this size (then ``key`` too), as for
            :func:`jaxgd.minimize`; with minibatches use ``smoothing`` (fastai
            uses 0.98).
        key: PRNG key of the minibatch order.
        has_aux: ``loss`` returns ``(value, aux)`` (as for :func:`jaxgd.minimize`).
        smoothing: the weight ``beta`` of the moving average ``s_k = beta
            s_(k-1) + (1 - beta) loss_k`` (debiased by ``1 - beta^(k+1)``);
            0 for none (full-batch runs need none). The average trails the
            losses by about ``1 / (1 - beta)`` steps, which moves ``best``
            to a larger rate.
        blow_up_factor: the loss counts as blown up once it exceeds this many
            times its lowest value so far (fastai: 4).

    Returns:
        An :class:`LRRangeTest`. Draw it with
        ``jaxgd.report.draw_lr_range(result, "lr_range.png")``.

    Examples:
        >>> import jax, jaxgd as gd
        >>> booth = gd.problems.get("booth")  # curvature L = 18: stable below 2/18
        >>> test = gd.lr_range_test(booth.loss, booth.init(jax.random.PRNGKey(0)), gd.sgd,
        ...                         min_lr=1e-4, max_lr=10.0, steps=100)
        >>> bool(test.suggested < 2 / 18 < test.best), bool(test.blow_up > 2 / 18)
        (True, True)
    """
    _check_arguments(factory, min_lr, max_lr, steps, smoothing, blow_up_factor)
    min_lr, max_lr = float(min_lr), float(max_lr)
    growth = max_lr / min_lr
    # lr(k) = min_lr * growth ** (k / (steps - 1)), held at max_lr after the last step.
    schedule = optax.exponential_decay(
        init_value=min_lr, transition_steps=steps - 1, decay_rate=growth, end_value=max_lr
    )
    watched = _Watched(schedule)
    optimizer = factory(watched)
    if not is_optimizer(optimizer):
        raise TypeError(
            f"lr_range_test: factory(learning_rate) must return an optimizer, got "
            f"{type(optimizer).__name__}; pass a function of the rate such as gd.sgd, "
            "optax.adam or lambda lr: gd.momentum(lr, beta=0.9)."
        )
    # One step more than the range: history.loss[k + 1] is the loss after step k.
    result = minimize(
        loss,
        params,
        optimizer,
        steps=steps + 1,
        data=data,
        batch_size=batch_size,
        key=key,
        has_aux=has_aux,
        history_every=1,  # every step's loss, however long the range
    )
    if not watched.called:  # traced into the run's program when the optimizer uses it
        raise ValueError(
            "lr_range_test: factory ignores the learning rate it is given (the optimizer "
            "it made never read it), so every step ran at the same rate and the test "
            "cannot tell rates apart; pass a function that builds the optimizer from its "
            "argument, such as optax.adam or lambda lr: optax.adam(lr) (not lambda lr: "
            "optax.adam(1e-3))."
        )
    recorded = np.asarray(result.history.loss, np.float64)
    if not np.isfinite(recorded[0]):
        raise ValueError(
            f"lr_range_test: the loss is {recorded[0]} at params, before the first step, so "
            "no learning rate can be tested (a lower min_lr cannot help); check that "
            "loss(params) is finite at the starting params (and on the data) first."
        )
    learning_rates = min_lr * growth ** (np.arange(steps) / (steps - 1))
    losses = recorded[1:]
    return _summarise(learning_rates, losses, float(recorded[0]), smoothing, blow_up_factor)


class _Watched:
    """The rate schedule handed to the factory, noting whether it was ever read.

    A plain object, not a function: the run compiles it in by identity (it is
    not looked into as optax closures are), and calls it while tracing."""

    def __init__(self, schedule: Callable[[Any], Any]) -> None:
        self.schedule = schedule
        self.called = False

    def __call__(self, step: Any) -> Any:
        self.called = True
        return self.schedule(step)


def _summarise(learning_rates, losses, initial_loss, smoothing, blow_up_factor) -> LRRangeTest:
    """Smooth the losses, find the minimum and the blow-up, apply the rule."""
    smoothed = _smooth(losses, smoothing)
    finite = np.isfinite(smoothed)
    lowest_so_far = np.minimum.accumulate(np.where(finite, smoothed, np.inf))
    lowest_so_far = np.minimum(lowest_so_far, initial_loss)  # the start counts too
    blown = ~finite | (smoothed > blow_up_factor * lowest_so_far)
    first_blown = int(np.argmax(blown)) if blown.any() else None
    considered = smoothed[: max(first_blown or losses.size, 1)]  # up to the blow-up
    at_best = int(np.nanargmin(considered)) if np.isfinite(considered).any() else 0
    best = float(learning_rates[at_best])
    blow_up = None if first_blown is None else float(learning_rates[first_blown])
    if blow_up is None:
        warnings.warn(
            f"lr_range_test: the loss did not blow up by max_lr = {learning_rates[-1]:.3g}, "
            "so the suggestion may be too cautious; raise max_lr.",
            stacklevel=3,
        )
    elif at_best == 0:
        warnings.warn(
            "lr_range_test: the loss was lowest at the first rate (or blew up from the first "
            f"step), so the suggestion may be too large; lower min_lr (now "
            f"{learning_rates[0]:.3g}).",
            stacklevel=3,
        )
    return LRRangeTest(
        learning_rates=learning_rates,
        losses=losses,
        smoothed=smoothed,
        initial_loss=initial_loss,
        best=best,
        suggested=best / 10,
        blow_up=blow_up,
    )


def _smooth(losses: np.ndarray, beta: float) -> np.ndarray:
    """The debiased exponential moving average (fastai's), with ``beta = 0`` the identity.

    A non-finite loss stays non-finite from there on (it is the blow-up)."""
    if beta == 0:
        return losses.copy()
    out = np.empty_like(losses)
    average = 0.0
    for k, value in enumerate(losses):
        average = beta * average + (1 - beta) * value
        out[k] = average / (1 - beta ** (k + 1))
    return out


def _check_arguments(factory, min_lr, max_lr, steps, smoothing, blow_up_factor) -> None:
    """Every argument check, before anything compiles."""
    if not callable(factory):
        raise TypeError(
            "lr_range_test: factory must be a function of the learning rate (gd.sgd, "
            f"optax.adam, lambda lr: gd.momentum(lr, beta=0.9)), got {type(factory).__name__}; "
            "pass the factory itself, not an optimizer built from it."
        )
    for name, value in (("min_lr", min_lr), ("max_lr", max_lr)):
        if not _is_real(value) or not (math.isfinite(value) and value > 0):
            raise ValueError(
                f"lr_range_test: {name} must be a finite number > 0, got {value!r}; "
                "a range such as min_lr=1e-6, max_lr=10."
            )
    if not min_lr < max_lr:
        raise ValueError(
            f"lr_range_test: min_lr ({min_lr:g}) must be below max_lr ({max_lr:g}); the rate "
            "grows from min_lr to max_lr (e.g. min_lr=1e-6, max_lr=10)."
        )
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 2:
        raise ValueError(
            f"lr_range_test: steps must be an integer >= 2 (one rate per step), got {steps!r}; "
            "100 is usual."
        )
    if not _is_real(smoothing) or not 0 <= smoothing < 1:
        raise ValueError(
            f"lr_range_test: smoothing must be in [0, 1), got {smoothing!r}; 0 for none, "
            "0.98 as fastai for minibatches."
        )
    if not _is_real(blow_up_factor) or not blow_up_factor > 1:
        raise ValueError(
            f"lr_range_test: blow_up_factor must be a number > 1, got {blow_up_factor!r}; 4 is "
            "usual."
        )


def _is_real(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
