# %% [markdown]
# # Three optimizers, each at its own edge of stability
#
# Full-batch training drives the curvature up until it meets the limit the
# optimizer's step can bear, and holds it there: $2/\eta$ for plain descent,
# $(2 + 2\beta)/\eta$ for heavy-ball momentum, and for Adam a limit on the
# *preconditioned* sharpness, $(2 + 2\beta_1)/((1 - \beta_1)\,\eta)$ (Cohen et
# al., 2021 and 2022). `minimize(sharpness_every=...)` records both kinds and
# `gd.optimizers.stability_limit` gives each optimizer's limit.

# %%
import jax
import jax.numpy as jnp
import jaxgd as gd
import matplotlib.pyplot as plt
import numpy as np

# %% [markdown]
# The network of the lesson's last section: 8 tanh units predicting a
# student's marks from hours studied and attendance; the loss is the mean
# squared error over the marks' variance.

# %%
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
optimizers = {
    "vanilla, lr 0.4": gd.sgd(0.4),
    "momentum 0.9, lr 0.5": gd.momentum(0.5, beta=0.9),
    "adam, lr 0.03": gd.adam(0.03),
}
runs = {
    label: gd.minimize(
        loss, params0, opt, data=(x, y), steps=1500, sharpness_every=50
    )
    for label, opt in optimizers.items()
}

# %%
fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
late = {}
for ax, (label, run) in zip(axes, runs.items(), strict=True):
    limit = gd.optimizers.stability_limit(optimizers[label])
    recorded = (
        run.history.preconditioned
        if limit.kind == "preconditioned"
        else run.history.sharpness
    )
    values = np.asarray(recorded)
    seen = ~np.isnan(values)
    steps, values = np.asarray(run.history.step)[seen], values[seen]
    if limit.kind == "preconditioned":  # at step 0 Adam has no P yet
        steps, values = steps[1:], values[1:]
    ax.plot(steps, values, ".-", label=limit.kind)
    ax.axhline(limit.limit, color="k", ls="--", lw=1, label=limit.formula)
    ax.set(title=label, xlabel="step")
    ax.legend(fontsize=8)
    late[label] = (values[steps >= 500], limit)
axes[0].set_ylabel("largest eigenvalue")
plt.show()

# %% [markdown]
# From step 500 on, each optimizer's recorded sharpness comes up to its own
# limit, within 10 %, and does not pass it by more than 10 %, while the loss
# keeps falling: three different limits, one behaviour.

# %%
for label, (values, limit) in late.items():
    run = runs[label]
    print(
        f"{label}: limit {limit.formula} = {limit.limit:.2f}; from step 500 "
        f"{values.min():.2f} to {values.max():.2f}; loss "
        f"{float(run.history.loss[0]):.3f} -> {float(run.loss):.4f}"
    )
    assert 0.9 * limit.limit < values.max() < 1.1 * limit.limit, label
    assert float(run.loss) < float(run.history.loss[0]) / 10
