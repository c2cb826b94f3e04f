# %% [markdown]
# # The learning-rate range test on a small network
#
# Before any sweep, one run of 100 steps with the rate growing geometrically
# tells where plain descent starts to learn and where it blows up, on a
# 64-32-10 network on handwritten digits, and its suggestion trains the
# network. The same test misleads for Adam here, and the page shows why.

# %%
import jax
import jax.numpy as jnp
import jaxgd as gd
import matplotlib.pyplot as plt
import optax
from sklearn.datasets import load_digits

# %% [markdown]
# The network and its data: 1000 images of 8x8 pixels, ten classes, the mean
# softmax cross-entropy as the loss. `gd.problems.models.mlp` builds the
# network (tanh units; params `{"layer0": {"w", "b"}, ...}`).

# %%
x, y = load_digits(return_X_y=True)
data = (jnp.asarray(x[:1000] / 16.0, jnp.float32), jnp.asarray(y[:1000]))
model = gd.problems.models.mlp((64, 32, 10))


def loss(params, batch):
    images, labels = batch
    logits = model(params, images)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, labels
    ).mean()


params0 = model.init(jax.random.PRNGKey(0))
print(f"loss at the start: {float(loss(params0, data)):.3f}")

# %% [markdown]
# [`gd.lr_range_test`](../../api/calculus/#jaxgd.lr_range_test) takes the
# optimizer as a function of its rate. Step `k` of 100 runs at
# `1e-4 * (1e6) ** (k / 99)`; the test records the loss after each step,
# finds where it is lowest and where it blew up (4 times its lowest value),
# and suggests a tenth of the lowest point.

# %%
tests = {
    label: gd.lr_range_test(
        loss,
        params0,
        factory,
        data=data,
        min_lr=1e-4,
        max_lr=100.0,
        steps=100,
    )
    for label, factory in {"vanilla": gd.sgd, "adam": gd.adam}.items()
}
fig, ax = plt.subplots(figsize=(6.4, 3.8))
for (label, test), color in zip(tests.items(), ("C0", "C3"), strict=True):
    ax.semilogx(test.learning_rates, test.losses, color=color, label=label)
    ax.axvline(test.suggested, color=color, ls=":", lw=1)
    if test.blow_up is not None:
        ax.axvline(test.blow_up, color=color, ls="--", lw=1)
    print(
        f"{label:8s} lowest loss at {test.best:.3g}, blew up at "
        f"{test.blow_up:.3g}, suggests {test.suggested:.3g}"
    )
ax.set(
    xlabel="learning rate",
    ylabel="loss after the step",
    ylim=(0, 2 * float(loss(params0, data))),
    title="Range tests (dotted: suggested; dashed: blew up)",
)
ax.legend()
plt.show()

# %% [markdown]
# Plain descent's curve is the textbook one: flat while the rate is tiny,
# falling, then a cliff. Adam's keeps falling through rates of 10 and more
# and bottoms out near 40. Its suggestion (a tenth of that) is not a rate to
# train at, as the runs below show.

# %%
vanilla, adam = tests["vanilla"], tests["adam"]
assert vanilla.blow_up is not None and vanilla.suggested < vanilla.blow_up
assert adam.best > 10 * vanilla.best

# %% [markdown]
# The suggestions, used: 300 full-batch steps at each.

# %%
factories = {"vanilla": gd.sgd, "adam": gd.adam}
runs = {
    label: gd.minimize(
        loss, params0, factories[label](test.suggested), data=data, steps=300
    )
    for label, test in tests.items()
}
start = float(loss(params0, data))
for label, run in runs.items():
    print(
        f"{label:8s} at {tests[label].suggested:.3g}: "
        f"{gd.Status(int(run.status)).name}, loss {start:.3f} -> "
        f"{float(run.loss):.3f}"
    )
assert float(runs["vanilla"].loss) < start / 10
assert float(runs["adam"].loss) > start

# %% [markdown]
# Vanilla's suggestion trains the network; Adam's ends *above* where it
# started. The range test assumes that the loss answers the rate of the
# moment, and that a rate which lowered it during the ramp can be kept. For
# Adam, whose step moves every weight by about the rate whatever its
# gradient, the loss kept falling during the ramp at rates where a steady run
# does not train. For Adam
# (and momentum, whose velocity carries the past rates along), take the rate
# from a short sweep instead: `gd.compare` with a grid of rates, as in
# [the tutorial](../../tutorials/choosing-an-optimizer/).
