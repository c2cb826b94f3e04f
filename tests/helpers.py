"""What several test modules share: one list of optimizers, one bit-equality check
(:func:`assert_same_bits`).

Test modules import it as ``from helpers import ...`` (``tests/`` is on the path:
its conftest.py lives there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jax
import numpy as np
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


def _bits(a: np.ndarray) -> np.ndarray:
    """The raw bits of a numeric array as unsigned integers, so NaN payloads and -0.0 count."""
    return np.ascontiguousarray(a).reshape(-1).view(np.uint8)


def assert_same_bits(a: Any, b: Any, *, same_containers: bool = True) -> None:
    """``a`` and ``b`` hold the same bits: leaf by leaf, equal dtype, shape and raw bytes.

    The tree structures must be equal (with ``same_containers=False``, only the
    number of leaves: a tuple may stand for a list). Leaves that are not numbers
    or arrays (names, enums) must compare equal.
    """
    a_leaves, a_def = jax.tree_util.tree_flatten(a)
    b_leaves, b_def = jax.tree_util.tree_flatten(b)
    if same_containers:
        assert a_def == b_def, f"{a_def} != {b_def}"
    else:
        assert a_def.num_leaves == b_def.num_leaves, f"{a_def} != {b_def}"
    for i, (x, y) in enumerate(zip(a_leaves, b_leaves, strict=True)):
        x_np, y_np = np.asarray(x), np.asarray(y)
        if x_np.dtype.kind in "OUS" or y_np.dtype.kind in "OUS":
            assert x == y, f"leaf {i}: {x!r} != {y!r}"
            continue
        assert x_np.dtype == y_np.dtype, f"leaf {i}: dtype {x_np.dtype} != {y_np.dtype}"
        assert x_np.shape == y_np.shape, f"leaf {i}: shape {x_np.shape} != {y_np.shape}"
        assert np.array_equal(_bits(x_np), _bits(y_np)), f"leaf {i}: bits differ\n{x_np}\n{y_np}"


def host_devices_env(count: int) -> dict[str, str]:
    """This process's environment for a subprocess whose CPU shows ``count`` devices
    (``XLA_FLAGS``), importing this checkout's jaxgd."""
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env.update(
        JAX_PLATFORMS="cpu",
        PYTHONPATH=str(Path(__file__).resolve().parents[1]),
        XLA_FLAGS=f"--xla_force_host_platform_device_count={count}",
    )
    return env
