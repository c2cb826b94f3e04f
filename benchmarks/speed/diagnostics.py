"""Target group: what ``minimize(diagnostics=...)`` costs, on the 64-128-10 MLP of
``mlp.py`` (500 Adam steps on digits): plain, alpha and the cosine, all four
instruments; full batch (1797 examples) and minibatches of 128."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxgd as gd

from .mlp import _digits, _mlp_init, _mlp_loss
from .timing import block, interleaved

SETS = {
    "plain": (),
    "alpha_cosine": ("alpha", "cosine"),
    "all_four": ("alpha", "cosine", "update_ratio", "noise_scale"),
}


def bench_diagnostics(repeats: int) -> dict:
    steps, lr = 500, 1e-2
    x, y = _digits()
    data = (jnp.asarray(x), jnp.asarray(y))
    params = jax.tree.map(jnp.asarray, _mlp_init())
    out: dict = {"steps": steps, "examples": int(x.shape[0])}
    for batch, extra in (
        ("full_batch", {}),
        ("batch_128", {"batch_size": 128, "key": jax.random.PRNGKey(0)}),
    ):

        def make(names, extra=extra):
            return lambda: block(
                gd.minimize(
                    _mlp_loss,
                    params,
                    gd.adam(lr),
                    steps=steps,
                    data=data,
                    diagnostics=names,
                    **extra,
                )  # fmt: skip
            )

        t = interleaved({name: make(names) for name, names in SETS.items()}, repeats)
        out[batch] = {
            "seconds": t,
            "alpha_cosine_over_plain": t["alpha_cosine"] / t["plain"],
            "all_four_over_plain": t["all_four"] / t["plain"],
        }
    return out
