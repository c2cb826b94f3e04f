"""The descent variants: the update rules, written out, and the registry of them.

Every optimizer here follows optax's protocol:

* ``init(params) -> state`` builds the state (a ``NamedTuple`` of arrays whose
  fields carry optax's names: ``count``, ``trace``, ``mu``, ``nu``,
  ``sum_of_squares``, so ``optax.tree.get(state, "mu")`` finds them);
* ``update(grads, state, params=None, **extra_args) -> (updates, state)``
  returns the updates to be **added** to the params (``optax.apply_updates``),
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

Writing a rule of your own: subclass `Optimizer` (see its docstring).

Layout: `jaxgd.optimizers._base` holds the base class and the
declarations of hyperparameters (``decay_rate``, ``positive``,
``nonnegative``, ``static``); `jaxgd.optimizers._rules` the built-in
variants; `jaxgd.optimizers._effective` the effective learning rate ``d * lr``
of the optimizers that adapt it (`effective_lr`); this module re-exports them
and keeps the registry by label (`names`, `get`).

Notation in the docstrings: ``g`` is the gradient, ``t`` the step counted from
1, ``lr`` the learning rate (``lr_t`` when it is a schedule).
"""

from __future__ import annotations

from jaxgd.optimizers._base import (  # noqa: F401 (other wings')
    Optimizer,
    StabilityLimit,
    check_optimizer,
    decay_rate,
    is_optimizer,
    nonnegative,
    positive,
    static,
)
from jaxgd.optimizers._contrib import NOT_RUN as CONTRIB_NOT_RUN
from jaxgd.optimizers._effective import (
    ADAPTS_ITS_RATE,
    effective_lr,
    why_no_effective_lr,  # noqa: F401 (other wings')
)
from jaxgd.optimizers._registry import get, names
from jaxgd.optimizers._rules import adagrad, adam, adamw, armijo, momentum, rmsprop, sgd
from jaxgd.optimizers._stability import stability_limit

__all__ = [
    "ADAPTS_ITS_RATE",
    "CONTRIB_NOT_RUN",
    "Optimizer",
    "StabilityLimit",
    "adagrad",
    "adam",
    "adamw",
    "armijo",
    "decay_rate",
    "effective_lr",
    "get",
    "momentum",
    "names",
    "nonnegative",
    "positive",
    "rmsprop",
    "sgd",
    "stability_limit",
    "static",
]
