"""Runs whose results are recorded bit for bit (tests/run/golden_runs.json).

The values were recorded with jaxgd 0.1 before the run loop was rebuilt;
``test_golden.py`` replays each run and asserts the same bits. Regenerate
only for a deliberate change of results: ``python tests/run/golden_runs.py``.
"""

from __future__ import annotations

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgd as gd

PATH = pathlib.Path(__file__).parent / "golden_runs.json"


def _quad(p):
    return jnp.sum(jnp.array([1.0, 10.0]) * (p - jnp.array([1.0, -2.0])) ** 2)


def _regression():
    x = jax.random.normal(jax.random.PRNGKey(1), (64, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5]) + 0.3
    return x, y


def _mse(p, batch):
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


P0 = {"w": jnp.zeros(3), "b": jnp.zeros(())}


def runs():
    """name -> a function returning the Result to record."""
    data = _regression()
    rosen = gd.problems.get("rosenbrock")
    return {
        "sgd_quadratic": lambda: gd.minimize(
            _quad, jnp.zeros(2), gd.sgd(0.04), steps=200, record_params=True
        ),
        "nesterov_quadratic_tol": lambda: gd.minimize(
            _quad, jnp.zeros(2), gd.momentum(0.02, beta=0.8, nesterov=True), steps=500, tol=1e-4
        ),
        "adam_rosenbrock": lambda: gd.minimize(
            rosen.loss, rosen.init(jax.random.PRNGKey(0)), gd.adam(0.05), steps=300
        ),
        "adamw_minibatch": lambda: gd.minimize(
            _mse,
            P0,
            gd.adamw(0.05, weight_decay=0.01),
            steps=150,
            data=data,
            batch_size=8,
            key=jax.random.PRNGKey(3),
        ),
        "rmsprop_fullbatch_target": lambda: gd.minimize(
            _mse, P0, gd.rmsprop(0.01), steps=400, data=data, target=0.05
        ),
        "adagrad_schedule": lambda: gd.minimize(
            _quad, jnp.zeros(2), gd.adagrad(optax.exponential_decay(0.5, 50, 0.5)), steps=200
        ),
        "optax_adam_minibatch": lambda: gd.minimize(
            _mse,
            P0,
            optax.adam(0.02),
            steps=120,
            data=data,
            batch_size=16,
            key=jax.random.PRNGKey(4),
        ),
        "sgd_diverges": lambda: gd.minimize(_quad, jnp.zeros(2), gd.sgd(0.5), steps=300),
        "vmapped_sweep": lambda: jax.vmap(
            lambda lr: gd.minimize(_quad, jnp.zeros(2), gd.momentum(lr), steps=100)
        )(jnp.array([0.001, 0.01, 0.05, 0.2])),
        "chunked_checkpointless_progress_free": lambda: gd.minimize(
            _mse,
            P0,
            gd.adam(0.03),
            steps=90,
            data=data,
            batch_size=10,
            key=jax.random.PRNGKey(5),
            checkpoint_every=None,
        ),
    }


def encode(result) -> dict:
    """Every array of a Result as hex bytes with shape and dtype."""
    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(result):
        a = np.asarray(leaf)
        out[jax.tree_util.keystr(path)] = [list(a.shape), str(a.dtype), a.tobytes().hex()]
    return out


def main() -> None:
    recorded = {name: encode(make()) for name, make in runs().items()}
    PATH.write_text(json.dumps(recorded, indent=1) + "\n")
    print(f"wrote {PATH} ({len(recorded)} runs)")


if __name__ == "__main__":
    main()
