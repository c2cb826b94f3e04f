"""Target group: the run loop with ``jax_enable_x64`` on (float64 params), against
the raw ``lax.scan`` of optax Adam steps, and the same pair with x64 off
(float32): how much of the loop's cost the float64 mode adds.

The workload is optimistix's 2-parameter Rosenbrock from ``[1.5, 1.5]``,
10 000 Adam steps (the issue 23 finding: 15-22x the float32 cost in
``minimize`` against 1.5x in the raw scan).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

import jaxgd as gd

from .timing import block, medians, ratio_of, samples

STEPS = 10_000


def rosenbrock(y):
    return jnp.sum((100 * (y[1:] - y[:-1] ** 2)) ** 2 + (1.0 - y[:-1]) ** 2)


def _pair(dtype, repeats: int) -> dict:
    """minimize and the raw scan on float ``dtype`` params: their seconds and ratio."""
    params = jnp.array([1.5, 1.5], dtype)
    opt, ours = optax.adam(1e-3), gd.adam(1e-3)

    @jax.jit
    def optax_scan(p):
        def body(carry, _):
            p, s = carry
            value, g = jax.value_and_grad(rosenbrock)(p)
            updates, s = opt.update(g, s, p)
            return (optax.apply_updates(p, updates), s), value

        return jax.lax.scan(body, (p, opt.init(p)), length=STEPS)

    raw = samples(
        {
            "minimize": lambda: block(gd.minimize(rosenbrock, params, ours, steps=STEPS)),
            "optax_scan": lambda: block(optax_scan(params)),
        },
        4 * repeats,
    )
    return {"seconds": medians(raw), "ratio": ratio_of(raw, "minimize", "optax_scan")}


def bench_x64(repeats: int) -> dict:
    before = jax.config.jax_enable_x64
    try:
        jax.config.update("jax_enable_x64", False)
        float32 = _pair(jnp.float32, repeats)
        jax.config.update("jax_enable_x64", True)
        float64 = _pair(jnp.float64, repeats)
    finally:
        jax.config.update("jax_enable_x64", before)
    return {
        "steps": STEPS,
        "float32": float32,
        "float64": float64,
        "minimize_x64_over_x32": float64["seconds"]["minimize"] / float32["seconds"]["minimize"],
        "scan_x64_over_x32": float64["seconds"]["optax_scan"] / float32["seconds"]["optax_scan"],
    }
