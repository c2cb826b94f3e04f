# %% [markdown]
# # A Flax NNX model trained with gd.minimize
#
# A Flax NNX network classifies handwritten digits, trained by `gd.minimize`
# in one compiled loop: minibatches of 64 images, Adam, and the loss on
# images kept aside evaluated inside the loop every 50 steps.

# %%
import jax
import jax.numpy as jnp
import jaxgd as gd
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx
from sklearn.datasets import load_digits

x, y = load_digits(return_X_y=True)
order = np.random.default_rng(0).permutation(len(y))
x = jnp.asarray(x[order] / 16.0, jnp.float32)
y = jnp.asarray(y[order])
train, held_out = (x[:1400], y[:1400]), (x[1400:], y[1400:])
print("train", train[0].shape, "held out", held_out[0].shape)

# %% [markdown]
# The model is ordinary NNX. To hand it to `minimize`, split it: the
# parameters (`nnx.Param`) are the params `minimize` descends on; the rest
# (its graph, anything else) is closed over, and the loss merges them back.


# %%
class MLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 64, rngs=rngs)
        self.out = nnx.Linear(64, 10, rngs=rngs)

    def __call__(self, images):
        return self.out(nnx.relu(self.hidden(images)))


graphdef, params, rest = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)


def loss(params, batch):
    images, labels = batch
    model = nnx.merge(graphdef, params, rest)
    logits = model(images)
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, labels
    ).mean()


def accuracy(params, batch):
    images, labels = batch
    logits = nnx.merge(graphdef, params, rest)(images)
    return float(jnp.mean(jnp.argmax(logits, axis=1) == labels))


result = gd.minimize(
    loss,
    params,
    gd.adam(3e-3),
    data=train,
    batch_size=64,
    key=jax.random.PRNGKey(1),
    steps=1500,
    eval_data=held_out,
    eval_every=50,
)
print(
    gd.Status(int(result.status)).name,
    f"training loss (last minibatch) {float(result.loss):.4f}",
)

# %% [markdown]
# The history holds the minibatch loss of every step and the held-out loss
# every 50 steps.

# %%
evaluated = ~np.isnan(np.asarray(result.history.eval_loss))
fig, ax = plt.subplots(figsize=(6.4, 3.6))
ax.semilogy(np.asarray(result.history.loss), lw=0.5, label="minibatch loss")
ax.semilogy(
    np.asarray(result.history.step)[evaluated],
    np.asarray(result.history.eval_loss)[evaluated],
    "o-",
    label="held-out loss",
)
ax.set(xlabel="step", ylabel="cross-entropy", title="Flax NNX MLP on digits")
ax.legend()
plt.show()

# %% [markdown]
# The trained parameters go back into the model with `nnx.merge` (or
# `nnx.update`); the model then classifies images it never saw.

# %%
train_acc, held_acc = (
    accuracy(result.params, train),
    accuracy(result.params, held_out),
)
print(f"accuracy: training {train_acc:.3f}, held out {held_acc:.3f}")
trained = nnx.merge(graphdef, result.params, rest)
assert isinstance(trained, MLP)
assert gd.Status(int(result.status)) == gd.Status.MAX_STEPS
assert train_acc > 0.99 and held_acc > 0.95
