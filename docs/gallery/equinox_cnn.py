# %% [markdown]
# # An Equinox network trained with gd.minimize
#
# A small convolutional network, written in Equinox, learns the handwritten
# digits (8x8 images) with `gd.minimize`: `eqx.partition` separates the
# trainable arrays from the rest of the model, and the loss puts it back
# together. Momentum at two rates, 600 steps of 128 images each.

# %%
import equinox as eqx
import jax
import jax.numpy as jnp
import jaxgd as gd
import matplotlib.pyplot as plt
import numpy as np
import optax
from sklearn.datasets import load_digits

x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(y))
images = jnp.asarray(x[order].reshape(-1, 1, 8, 8) / 16.0, jnp.float32)
labels = jnp.asarray(y[order])
train, held_out = (
    (images[:1400], labels[:1400]),
    (images[1400:], labels[1400:]),
)


class CNN(eqx.Module):
    conv: eqx.nn.Conv2d
    head: eqx.nn.MLP

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.conv = eqx.nn.Conv2d(1, 8, kernel_size=3, padding=1, key=k1)
        self.head = eqx.nn.MLP(8 * 4 * 4, 10, 32, depth=1, key=k2)

    def __call__(self, image):  # one image, (1, 8, 8)
        h = jax.nn.relu(self.conv(image))  # (8, 8, 8)
        h = h.reshape(8, 4, 2, 4, 2).max(axis=(2, 4))  # 2x2 max-pool
        return self.head(h.ravel())


model = CNN(jax.random.PRNGKey(0))
params, static = eqx.partition(model, eqx.is_inexact_array)
n_params = sum(leaf.size for leaf in jax.tree.leaves(params))
print(f"{n_params} trainable numbers")


def loss(params, batch):
    net = eqx.combine(params, static)
    logits = jax.vmap(net)(batch[0])
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, batch[1]
    ).mean()


def accuracy(params, batch):
    logits = jax.vmap(eqx.combine(params, static))(batch[0])
    return float(jnp.mean(jnp.argmax(logits, axis=1) == batch[1]))


# %% [markdown]
# `params` is a pytree of the model's arrays with `None` where the static
# parts were: `minimize`, the optimizers and the history all take it as it is.

# %%
runs = {
    lr: gd.minimize(
        loss,
        params,
        gd.momentum(lr, beta=0.9),
        data=train,
        batch_size=128,
        key=jax.random.PRNGKey(1),
        steps=600,
        eval_data=held_out,
        eval_every=100,
    )
    for lr in (0.01, 0.1)
}


def held_out_curve(run):
    """The steps at which the held-out loss was evaluated, and its values."""
    values = np.asarray(run.history.eval_loss)
    seen = ~np.isnan(values)  # evaluated every 100 steps, NaN in between
    return np.asarray(run.history.step)[seen], values[seen]


fig, ax = plt.subplots(figsize=(6.4, 3.6))
for lr, run in runs.items():
    ax.semilogy(*held_out_curve(run), "o-", label=f"momentum, lr {lr}")
ax.set(xlabel="step", ylabel="held-out loss", title="Equinox CNN on digits")
ax.legend()
plt.show()

# %% [markdown]
# The larger rate learns faster and ends better on the held-out images; the
# trained model is `eqx.combine(result.params, static)`, an ordinary Equinox
# module.

# %%
last = {lr: held_out_curve(run)[1][-1] for lr, run in runs.items()}
for lr, run in runs.items():
    print(
        f"lr {lr}: held-out loss {last[lr]:.3f} at step "
        f"{held_out_curve(run)[0][-1]}, accuracy "
        f"{accuracy(run.params, held_out):.3f}"
    )
fast = runs[0.1]
assert last[0.1] < last[0.01] / 1.5
assert accuracy(fast.params, held_out) > 0.95
assert isinstance(eqx.combine(fast.params, static), CNN)
