"""jaxgd optimizers inside the libraries JAX users already have.

Each test trains the same thing twice, once with a jaxgd optimizer and once
with its optax counterpart, through the library's own API, and asks for the
same numbers. Where the library compiles the optimizer in (its hyperparameters
are Python floats, as optax's are), jaxgd's rule is the same operations in the
same order, so the results are compared bit for bit; nothing here is a
tolerance that a wrong formula could slip through.
"""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import optimistix as optx
import pytest
from flax import nnx
from helpers import assert_same_bits

import jaxgd as gd

# --------------------------------------------------------------------------- #
# optimistix: OptaxMinimiser passes value=, grad= and value_fn= to update
# --------------------------------------------------------------------------- #


def _rosenbrock(y, args):
    return (1.0 - y[0]) ** 2 + args * (y[1] - y[0] ** 2) ** 2


@pytest.mark.parametrize("label", ["adam", "momentum"])
def test_optimistix_minimise_with_a_jaxgd_optimizer_equals_optax(label):
    ours = {"adam": gd.adam(1e-2), "momentum": gd.momentum(1e-3)}[label]
    theirs = {"adam": optax.adam(1e-2), "momentum": optax.sgd(1e-3, momentum=0.9)}[label]
    y0, args = jnp.array([-0.5, 0.5]), 5.0

    def solve(optim):  # about 650 steps to optimistix's Cauchy criterion at 1e-4
        solver = optx.OptaxMinimiser(optim, rtol=1e-4, atol=1e-4)
        return optx.minimise(_rosenbrock, solver, y0, args, max_steps=1000)

    expected, actual = solve(theirs), solve(ours)
    assert actual.result == optx.RESULTS.successful  # converged, not stopped by max_steps
    assert int(actual.stats["num_steps"]) == int(expected.stats["num_steps"])
    assert_same_bits(actual.value, expected.value)
    np.testing.assert_allclose(actual.value, [1.0, 1.0], atol=5e-2)  # near the minimum (1, 1)


# --------------------------------------------------------------------------- #
# Flax NNX: nnx.Optimizer(model, tx, wrt=nnx.Param)
# --------------------------------------------------------------------------- #


class _NnxMLP(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.hidden = nnx.Linear(3, 16, rngs=rngs)
        self.out = nnx.Linear(16, 1, rngs=rngs)

    def __call__(self, x):
        return self.out(jnp.tanh(self.hidden(x)))[:, 0]


def _regression_data():
    kx, kn = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(kx, (64, 3))
    y = jnp.sin(x @ jnp.array([1.0, -0.5, 0.25])) + 0.1 * jax.random.normal(kn, (64,))
    return x, y


@pytest.mark.parametrize("label", ["adam", "adamw", "nesterov"])
def test_flax_nnx_optimizer_with_a_jaxgd_optimizer_equals_optax(label):
    ours = {
        "adam": gd.adam(1e-2),
        "adamw": gd.adamw(1e-2, weight_decay=0.05),
        "nesterov": gd.optimizers.get("nesterov")(1e-2),
    }
    theirs = {
        "adam": optax.adam(1e-2),
        "adamw": optax.adamw(1e-2, weight_decay=0.05),
        "nesterov": optax.sgd(1e-2, momentum=0.9, nesterov=True),
    }
    x, y = _regression_data()

    def train(tx, steps=20):
        model = _NnxMLP(nnx.Rngs(0))
        optimizer = nnx.Optimizer(model, tx, wrt=nnx.Param)

        @nnx.jit
        def step(model, optimizer):
            loss, grads = nnx.value_and_grad(lambda m: jnp.mean((m(x) - y) ** 2))(model)
            optimizer.update(model, grads)
            return loss

        losses = [float(step(model, optimizer)) for _ in range(steps)]
        return nnx.state(model, nnx.Param), losses

    (expected, expected_losses), (actual, actual_losses) = train(theirs[label]), train(ours[label])
    assert_same_bits(actual, expected)
    assert actual_losses == expected_losses
    assert actual_losses[-1] < actual_losses[0]  # it trained


# --------------------------------------------------------------------------- #
# Equinox: a model's arrays (eqx.partition) trained by a jaxgd optimizer
# --------------------------------------------------------------------------- #


@pytest.mark.parametrize("label", ["adam", "vanilla", "adagrad"])
def test_equinox_mlp_trained_with_a_jaxgd_optimizer_equals_optax(label):
    lr = {"adam": 1e-2, "vanilla": 5e-2, "adagrad": 5e-2}[label]
    ours = gd.optimizers.get(label)(lr)
    theirs = {"adam": optax.adam, "vanilla": optax.sgd, "adagrad": optax.adagrad}[label](lr)
    x, y = _regression_data()
    model = eqx.nn.MLP(3, 1, width_size=16, depth=1, activation=jnp.tanh, key=jax.random.PRNGKey(1))
    params, static = eqx.partition(model, eqx.is_inexact_array)

    def loss(params):
        model = eqx.combine(params, static)
        return jnp.mean((jax.vmap(model)(x)[:, 0] - y) ** 2)

    def train(tx, steps=200):
        @jax.jit
        def step(params, state):
            value, grads = jax.value_and_grad(loss)(params)
            updates, state = tx.update(grads, state, params)
            return eqx.apply_updates(params, updates), state, value

        p, state, values = params, tx.init(params), []
        for _ in range(steps):
            p, state, value = step(p, state)
            values.append(float(value))
        return p, values

    (expected, expected_values), (actual, actual_values) = train(theirs), train(ours)
    assert_same_bits(actual, expected)
    assert actual_values == expected_values
    assert actual_values[-1] < 0.5 * actual_values[0]  # it trained
