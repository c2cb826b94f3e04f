"""Target group: what ``minimize(diagnostics=...)`` costs, on the 64-128-10 MLP of
``mlp.py`` (500 Adam steps on digits): plain, alpha and the cosine, all four
instruments, and all four on the same loss said to be a mean over examples
(its step then shares the noise scale's per-example pass), each against the
plain batch-loss run; full batch (1797 examples) and minibatches of 128. The goals are
tested on the ratio of the fastest rounds (what a loaded machine disturbs
least; a 500-step minibatch run lasts about 0.1 s, and on a shared machine
its rounds vary 2x), the median ratio shown beside it."""

from __future__ import annotations

import jax
import jax.numpy as jnp

import jaxgd as gd

from .mlp import _digits, _mlp_init, _mlp_loss
from .timing import block, medians, ratio_of, samples

SETS = {
    "plain": (),
    "alpha_cosine": ("alpha", "cosine"),
    "all_four": ("alpha", "cosine", "update_ratio", "noise_scale"),
}
MEAN_SETS = {"plain_mean": (), "all_four_mean": SETS["all_four"]}
"""The same with the loss said to be a mean over examples (gd.run.mean_over_examples):
the step then takes its gradient from the noise scale's per-example pass."""


def _example_loss(params, example):  # mlp.py's loss on a batch of one
    return _mlp_loss(params, jax.tree.map(lambda a: a[None], example))


MEAN_LOSS = gd.run.mean_over_examples(_example_loss)


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

        def make(names, extra=extra, loss=_mlp_loss):
            return lambda: block(
                gd.minimize(
                    loss,
                    params,
                    gd.adam(lr),
                    steps=steps,
                    data=data,
                    diagnostics=names,
                    **extra,
                )  # fmt: skip
            )

        runs = {name: make(names) for name, names in SETS.items()}
        runs |= {name: make(names, loss=MEAN_LOSS) for name, names in MEAN_SETS.items()}
        times = samples(runs, repeats)
        out[batch] = {
            "seconds": medians(times),
            "alpha_cosine_over_plain": ratio_of(times, "alpha_cosine", "plain"),
            "all_four_over_plain": ratio_of(times, "all_four", "plain"),
            "all_four_mean_over_plain": ratio_of(times, "all_four_mean", "plain"),
            "plain_mean_over_plain": ratio_of(times, "plain_mean", "plain"),
        }
    return out
