# %% [markdown]
# # Data parallel: one run over four devices
#
# A mesh with a `"data"` axis splits every minibatch over the devices; each
# takes the gradient of its rows and XLA sums them. The run gives the
# one-device answer to float round-off. Here the four devices are CPU devices
# that XLA makes on request, so the page runs anywhere; on GPUs or TPU cores
# nothing changes but the devices.

# %%
import os

# Before JAX starts: four CPU devices instead of one.
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + " --xla_force_host_platform_device_count=4"
)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import jaxgd as gd  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402

print(jax.devices())
assert len(jax.devices()) == 4

# %% [markdown]
# The model: softmax regression on the digits, 1792 images (divisible by 4),
# minibatches of 256, so 64 rows a device.

# %%
x, y = load_digits(return_X_y=True)
data = (jnp.asarray(x[:1792] / 16.0, jnp.float32), jnp.asarray(y[:1792]))


def loss(params, batch):
    logits = batch[0] @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(
        logits, batch[1]
    ).mean()


params0 = {"w": jnp.zeros((64, 10)), "b": jnp.zeros(10)}
mesh = gd.distributed.data_mesh()
print(mesh)
runs = {
    where: gd.minimize(
        loss,
        params0,
        gd.momentum(0.5),
        data=data,
        batch_size=256,
        key=jax.random.PRNGKey(0),
        steps=400,
        mesh=mesh if where == "mesh" else None,
    )
    for where in ("one device", "mesh")
}

# %% [markdown]
# The same global minibatches (they depend on the `key`, not on the device
# count), the same steps: the two runs agree to float32 round-off, the
# all-reduce summing the gradient in another order.

# %%
alone, spread = runs["one device"], runs["mesh"]
for name in params0:
    gap = float(jnp.max(jnp.abs(alone.params[name] - spread.params[name])))
    print(f"{name}: largest difference {gap:.2e}")
    np.testing.assert_allclose(
        alone.params[name], spread.params[name], rtol=1e-5, atol=1e-5
    )
print("params of the mesh run live on", spread.params["w"].sharding)
accuracy = jnp.mean(
    jnp.argmax(data[0] @ spread.params["w"] + spread.params["b"], 1) == data[1]
)
print(
    f"final loss {float(spread.loss):.4f}; training accuracy {float(accuracy):.3f}"
)
assert float(accuracy) > 0.95
np.testing.assert_allclose(
    alone.history.loss, spread.history.loss, rtol=1e-4, atol=1e-6
)

# %%
fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 4.6), sharex=True)
for where, run in runs.items():
    top.semilogy(np.asarray(run.history.loss), lw=0.8, label=where)
top.set(ylabel="minibatch loss", title="One device and four: the same run")
top.legend()
bottom.semilogy(
    np.abs(np.asarray(spread.history.loss) - np.asarray(alone.history.loss))
    + 1e-10
)
bottom.set(xlabel="step", ylabel="|difference|")
plt.show()
