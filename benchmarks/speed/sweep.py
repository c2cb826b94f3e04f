"""Target group: a learning-rate sweep, 64 rates x 1000 steps in one vmapped
``minimize`` against 64 sequential calls and a raw vmapped optax scan."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgd as gd

from .run_loop import linear_loss, optax_scan, regression
from .timing import block, medians, ratio_of, samples


def bench_sweep(repeats: int) -> dict:
    steps, n = 1000, 64
    x, y = regression()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = {"w": jnp.zeros(2), "b": jnp.zeros(())}
    rates = np.logspace(-4, 0, n).astype(np.float32)
    rates_j = jnp.asarray(rates)

    @jax.jit
    def swept(lrs):
        return jax.vmap(
            lambda lr: gd.minimize(linear_loss, params, gd.adam(lr), steps=steps, data=data)
        )(lrs)

    def sequential():
        return block(
            [
                gd.minimize(linear_loss, params, gd.adam(float(lr)), steps=steps, data=data)
                for lr in rates
            ]
        )

    @jax.jit
    def raw_scan(lrs):
        """The hand-written sweep: a vmapped lax.scan of optax Adam steps keeping its loss curve."""
        return jax.vmap(lambda lr: optax_scan(optax.adam(lr), params, data, steps))(lrs)

    raw = samples(
        {
            "vmapped": lambda: block(swept(rates_j)),
            "raw_vmapped_scan": lambda: block(raw_scan(rates_j)),
            "sequential": sequential,
        },
        repeats,
    )
    t = medians(raw)
    return {
        "runs": n,
        "steps": steps,
        "seconds": t,
        "speedup": t["sequential"] / t["vmapped"],
        "vs_raw_vmapped_scan": ratio_of(raw, "vmapped", "raw_vmapped_scan"),
    }
