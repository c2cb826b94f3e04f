# %% [markdown]
# # Four instruments on one network: α, cosine, update ratio, noise scale
#
# `minimize(..., diagnostics=...)` records, inside the compiled loop, why each
# step went as it did: α (where the step landed on the parabola along it),
# the cosine between successive updates, each layer's update relative to its
# weights, and the gradient noise scale. Here they read four runs of Adam on a
# small network: two learning rates, full batch and minibatches of 20.

# %%
import jax
import jax.numpy as jnp
import jaxgd as gd
import matplotlib.pyplot as plt
import numpy as np

features, marks = gd.problems.student_marks_data()
x, y = jnp.asarray(features), jnp.asarray(marks)
mean_x, sd_x = x.mean(axis=0), x.std(axis=0)


def network(params, inputs):
    z = (inputs - mean_x) / sd_x
    units = jnp.tanh(z @ params["w1"] + params["b1"])
    return (units @ params["w2"] + params["b2"]) * y.std() + y.mean()


def loss(params, batch):
    return jnp.mean((network(params, batch[0]) - batch[1]) ** 2) / y.var()


k1, k2 = jax.random.split(jax.random.PRNGKey(0))
params0 = {
    "w1": jax.random.normal(k1, (2, 8)) / jnp.sqrt(2.0),
    "b1": jnp.zeros(8),
    "w2": jax.random.normal(k2, (8,)) / jnp.sqrt(8.0),
    "b2": jnp.zeros(()),
}
runs = {}
for lr in (0.03, 0.3):
    for batch in (None, 20):
        minibatches = {"batch_size": batch, "key": jax.random.PRNGKey(1)}
        runs[lr, batch] = gd.minimize(
            loss,
            params0,
            gd.adam(lr),
            data=(x, y),
            steps=1000,
            diagnostics=("alpha", "cosine", "update_ratio", "noise_scale"),
            **(minibatches if batch else {}),
        )
full_loss = {key: float(loss(run.params, (x, y))) for key, run in runs.items()}
for (lr, batch), value in full_loss.items():
    print(f"lr {lr}, batch {batch or 'all 200'}: full-data loss {value:.4f}")

# %%
fig, axes = plt.subplots(2, 2, figsize=(10, 6), sharex=True)
for (lr, batch), run in runs.items():
    label = f"lr {lr}, batch {batch or 200}"
    style = "-" if batch is None else "--"
    axes[0, 0].plot(np.asarray(run.history.alpha), style, lw=0.6, label=label)
    axes[0, 1].plot(np.asarray(run.history.cosine), style, lw=0.6)
    ratio = max(
        run.history.update_ratio.values(),
        key=lambda leaf: float(np.nanmedian(leaf)),
    )
    axes[1, 0].semilogy(np.asarray(ratio), style, lw=0.6)
    axes[1, 1].semilogy(np.asarray(run.history.noise_scale), style, lw=0.6)
axes[0, 0].set(ylabel="alpha", ylim=(-1.5, 1.5))
axes[0, 0].legend(fontsize=7)
axes[0, 1].set(ylabel="cosine of successive updates")
axes[1, 0].set(xlabel="step", ylabel="update / weights\n(largest layer)")
axes[1, 0].axhline(1e-3, color="k", ls=":", lw=1)
axes[1, 1].set(xlabel="step", ylabel="noise scale B_simple")
axes[1, 1].axhline(200, color="k", ls=":", lw=1)
plt.show()

# %% [markdown]
# What they say, each checked below.
#
# * **Full batch, the end: crawling.** The cosine is 1 (each step repeats the
#   last) and α is near −1 (each step covers a sliver of the way to the
#   parabola's bottom): steady, small, safe steps.
# * **The noise scale grows as the run converges.** $B_\text{simple} =
#   \operatorname{tr}\Sigma / \lVert G\rVert^2$ starts below the 200 students
#   and ends far above: near a minimum the mean gradient $G$ vanishes while
#   the per-example gradients do not. A batch much smaller than
#   $B_\text{simple}$ takes steps that are mostly noise, so the minibatch runs
#   end higher than the full-batch ones at the same rate.
# * **One layer moves too fast.** At rate 0.3 with minibatches, the largest
#   layer's update is about a tenth of its weights every step, a hundred times
#   the usual rule of thumb (dotted, $10^{-3}$), and that run ends with the
#   highest loss of the four.

# %%
early, late = slice(0, 50), slice(-100, None)
for lr in (0.03, 0.3):
    full = runs[lr, None]
    cosine = float(np.nanmedian(full.history.cosine[late]))
    alpha = float(np.nanmedian(full.history.alpha[late]))
    start, end = (
        float(np.nanmedian(full.history.noise_scale[part]))
        for part in (early, late)
    )
    print(
        f"lr {lr}, full batch: cosine {cosine:.3f}, alpha {alpha:.2f}; "
        f"noise scale {start:.0f} -> {end:.3g}"
    )
    assert cosine > 0.99 and alpha < -0.9
    assert start < 200 < 100 * 200 < end
    assert full_loss[lr, 20] > full_loss[lr, None]
ratios = {
    key: max(
        float(np.nanmedian(v[500:])) for v in run.history.update_ratio.values()
    )
    for key, run in runs.items()
}
print({f"lr {lr}, batch {b}": f"{r:.1e}" for (lr, b), r in ratios.items()})
assert ratios[0.3, 20] > 0.05 and ratios[0.3, 20] == max(ratios.values())
assert max(full_loss, key=full_loss.get) == (0.3, 20)
