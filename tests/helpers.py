"""What several test modules share: one list of optimizers, one bit-equality check.

Test modules import it as ``from helpers import ...`` (``tests/`` is on the path:
its conftest.py lives there).
"""

from __future__ import annotations

import optax

import jaxgd as gd

STEPS = 2000  # length of the compared trajectories (the schedule decays over it)
SCHEDULE = optax.cosine_decay_schedule(0.02, decay_steps=STEPS, alpha=0.1)
get = gd.optimizers.get  # the registry: label -> factory

# (name, jaxgd optimizer from the registry, optax counterpart): the one list every
# test iterates over. A name starts with its registry label.
CASES = [
    ("vanilla", get("vanilla")(0.05), optax.sgd(0.05)),
    ("momentum", get("momentum")(0.02, beta=0.9), optax.sgd(0.02, momentum=0.9)),
    (
        "nesterov",
        get("nesterov")(0.02, beta=0.9),
        optax.sgd(0.02, momentum=0.9, nesterov=True),
    ),
    ("adam", get("adam")(0.01), optax.adam(0.01)),
    ("adam_b", get("adam")(0.003, b1=0.8, b2=0.99, eps=1e-6), optax.adam(0.003, 0.8, 0.99, 1e-6)),
    ("adamw", get("adamw")(0.01, weight_decay=0.05), optax.adamw(0.01, weight_decay=0.05)),
    ("rmsprop", get("rmsprop")(0.002, decay=0.95), optax.rmsprop(0.002, decay=0.95)),
    ("adagrad", get("adagrad")(0.05), optax.adagrad(0.05)),
    ("vanilla_schedule", get("vanilla")(SCHEDULE), optax.sgd(SCHEDULE)),
    ("adam_schedule", get("adam")(SCHEDULE), optax.adam(SCHEDULE)),
]
