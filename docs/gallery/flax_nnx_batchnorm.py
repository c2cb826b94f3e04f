# %% [markdown]
# # A Flax NNX model with BatchNorm and Dropout, trained with gd.minimize
#
# A network whose forward pass changes state (BatchNorm's running
# statistics, Dropout's random counter) trains in `gd.minimize`'s compiled
# loop: the parameters are the params, everything else is the model's
# **state**, passed as `state=` and threaded from step to step.

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


class Net(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(64, 128, rngs=rngs)
        self.norm = nnx.BatchNorm(128, rngs=rngs)
        self.dropout = nnx.Dropout(0.2, rngs=rngs)
        self.out = nnx.Linear(128, 10, rngs=rngs)

    def __call__(self, images):
        h = nnx.relu(self.norm(self.hidden(images)))
        return self.out(self.dropout(h))


graphdef, params, state = nnx.split(Net(nnx.Rngs(0)), nnx.Param, ...)

# %% [markdown]
# The loss takes `(params, state, batch)`, runs the model in training mode
# (batch statistics, dropout on) and returns its value and the new state.

# %%


def loss(params, state, batch):
    model = nnx.merge(graphdef, params, state)
    logits = model(batch[0])
    value = optax.softmax_cross_entropy_with_integer_labels(
        logits, batch[1]
    ).mean()
    return value, nnx.state(model, nnx.Not(nnx.Param))


steps = 800
result = gd.minimize(
    loss,
    params,
    gd.adam(1e-3),
    state=state,
    data=train,
    batch_size=64,
    key=jax.random.PRNGKey(1),
    steps=steps,
)
print(
    gd.Status(int(result.status)).name,
    f"last minibatch loss {float(result.loss):.4f}",
)

# %% [markdown]
# The trained model: `nnx.merge` with the final params and state, then
# `eval()`: dropout off, BatchNorm on the running statistics it gathered.

# %%
model = nnx.merge(graphdef, result.params, result.state)
model.eval()


def accuracy(batch):
    return float(jnp.mean(jnp.argmax(model(batch[0]), axis=1) == batch[1]))


print(
    f"accuracy: training {accuracy(train):.3f}, held out {accuracy(held_out):.3f}"
)
fig, ax = plt.subplots(figsize=(6.4, 3.4))
ax.semilogy(np.asarray(result.history.loss), lw=0.5)
ax.set(
    xlabel="step",
    ylabel="minibatch loss",
    title="NNX with BatchNorm and Dropout",
)
plt.show()
# one dropout draw per step, from the RNG counter carried in the state
assert int(result.state["dropout"]["rngs"]["count"][...]) == steps
assert accuracy(held_out) > 0.95
