"""Model state threaded through the run (issue 23): ``minimize(state=s0)`` calls
``loss(params, state[, batch])`` returning ``(value, new_state)``; the state
moves on step by step inside the compiled loop, through segments and
checkpoints, and ``Result.state`` is the last one. Flax NNX (Dropout and
BatchNorm through ``nnx.split``) and Equinox (``eqx.nn.State``) models train
on the bundled digits."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from sklearn.datasets import load_digits

import jaxgd as gd


def _digits():
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int32)
    return (jnp.asarray(x[:1200]), jnp.asarray(y[:1200])), (x[1200:], y[1200:])


def counting_loss(params, state, batch):
    """A pure-JAX state: a running mean of the batch's targets and a step count."""
    x, y = batch
    mean, count = state
    value = jnp.mean((x @ params - y) ** 2)
    return value, (0.9 * mean + 0.1 * jnp.mean(y), count + 1)


X = jnp.asarray(np.random.default_rng(0).normal(size=(32, 3)), jnp.float32)
Y = X @ jnp.array([1.0, -2.0, 0.5])
S0 = (jnp.float32(0.0), jnp.int32(0))


def _python_loop(steps):
    opt, p, s = gd.adam(0.05), jnp.zeros(3), S0
    o = opt.init(p)
    for _ in range(steps):
        (_, s_new), g = jax.value_and_grad(counting_loss, has_aux=True)(p, s, (X, Y))
        u, o = opt.update(g, o, p)
        p, s = optax.apply_updates(p, u), s_new
    return p, s


def test_state_threads_like_a_python_loop():
    result = gd.minimize(
        counting_loss, jnp.zeros(3), gd.adam(0.05), state=S0, data=(X, Y), steps=25
    )
    p, s = _python_loop(25)
    np.testing.assert_allclose(result.params, p, rtol=1e-6)
    assert int(result.state[1]) == 25  # one update a step; the final evaluation's is dropped
    np.testing.assert_allclose(result.state[0], s[0], rtol=1e-6)
    assert float(result.loss) == pytest.approx(float(counting_loss(p, s, (X, Y))[0]), rel=1e-5)


def test_state_with_aux_and_no_data():
    def loss(p, state):
        value = jnp.sum((p - 2.0) ** 2)
        return (value, {"norm": jnp.linalg.norm(p)}), state + 1

    result = gd.minimize(
        loss, jnp.zeros(2), gd.sgd(0.1), state=jnp.int32(0), has_aux=True, steps=10
    )
    assert int(result.state) == 10
    assert float(result.aux["norm"]) == pytest.approx(float(jnp.linalg.norm(result.params)))


def test_state_stops_with_the_params():
    result = gd.minimize(
        counting_loss, jnp.zeros(3), gd.adam(0.05), state=S0, data=(X, Y), steps=500, tol=1e-2
    )
    assert gd.Status(int(result.status)) is gd.Status.CONVERGED
    assert int(result.state[1]) == int(result.steps)


def test_state_under_jit_and_vmap():
    run = lambda p0: gd.minimize(  # noqa: E731
        counting_loss, p0, gd.adam(0.05), state=S0, data=(X, Y), steps=25
    )
    p, _ = _python_loop(25)
    np.testing.assert_allclose(jax.jit(run)(jnp.zeros(3)).params, p, rtol=1e-6)
    batched = jax.vmap(run)(jnp.zeros((2, 3)))
    assert batched.state[1].tolist() == [25, 25]


def test_state_in_a_checkpoint_resumes(tmp_path):
    kwargs = dict(state=S0, data=(X, Y), steps=40)
    whole = gd.minimize(counting_loss, jnp.zeros(3), gd.adam(0.05), **kwargs)
    path = tmp_path / "run"
    first = gd.minimize(
        counting_loss, jnp.zeros(3), gd.adam(0.05), checkpoint=path, checkpoint_every=10, **kwargs
    )
    again = gd.minimize(
        counting_loss, jnp.zeros(3), gd.adam(0.05), checkpoint=path, checkpoint_every=10, **kwargs
    )
    for r in (first, again):
        np.testing.assert_array_equal(np.asarray(r.params), np.asarray(whole.params))
        assert int(r.state[1]) == 40


@pytest.mark.slow  # compiling an NNX model: about 20 s on 2 shared cores
def test_flax_nnx_dropout_and_batchnorm():
    nnx = pytest.importorskip("flax.nnx")
    data, (x_test, y_test) = _digits()

    class MLP(nnx.Module):
        def __init__(self, rngs):
            self.linear1 = nnx.Linear(64, 32, rngs=rngs)
            self.bn = nnx.BatchNorm(32, rngs=rngs)
            self.dropout = nnx.Dropout(0.1, rngs=rngs)
            self.linear2 = nnx.Linear(32, 10, rngs=rngs)

        def __call__(self, x):
            return self.linear2(self.dropout(nnx.relu(self.bn(self.linear1(x)))))

    # The ecosystem guide's recipe: params are the nnx.Param, the rest is the state.
    graphdef, params, state = nnx.split(MLP(nnx.Rngs(0)), nnx.Param, ...)

    def loss(params, state, batch):
        x, y = batch
        model = nnx.merge(graphdef, params, state)
        value = optax.softmax_cross_entropy_with_integer_labels(model(x), y).mean()
        return value, nnx.state(model, nnx.Not(nnx.Param))

    result = gd.minimize(
        loss, params, gd.adam(1e-2), state=state, data=data, batch_size=100,
        key=jax.random.PRNGKey(0), steps=150,
    )  # fmt: skip
    assert gd.Status(int(result.status)) is gd.Status.MAX_STEPS
    assert int(result.state["dropout"]["rngs"]["count"][...]) == 150  # a dropout key a step
    assert float(jnp.abs(result.state["bn"]["mean"][...]).sum()) > 0  # batch statistics kept
    model = nnx.merge(graphdef, result.params, result.state)
    model.eval()
    accuracy = float(jnp.mean(jnp.argmax(model(jnp.asarray(x_test)), -1) == y_test))
    assert accuracy > 0.85


@pytest.mark.slow
def test_equinox_state_batchnorm():
    eqx = pytest.importorskip("equinox")
    data, (x_test, y_test) = _digits()

    class Net(eqx.Module):
        l1: eqx.nn.Linear
        bn: eqx.nn.BatchNorm
        l2: eqx.nn.Linear

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.l1 = eqx.nn.Linear(64, 32, key=k1)
            self.bn = eqx.nn.BatchNorm(32, axis_name="batch", mode="batch")
            self.l2 = eqx.nn.Linear(32, 10, key=k2)

        def __call__(self, x, state):
            h, state = self.bn(self.l1(x), state)
            return self.l2(jax.nn.relu(h)), state

    model, state = eqx.nn.make_with_state(Net)(jax.random.PRNGKey(0))
    params, static = eqx.partition(model, eqx.is_inexact_array)
    batched = lambda m: jax.vmap(m, axis_name="batch", in_axes=(0, None), out_axes=(0, None))  # noqa: E731

    def loss(params, state, batch):
        x, y = batch
        logits, state = batched(eqx.combine(params, static))(x, state)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), state

    result = gd.minimize(
        loss, params, gd.adam(1e-2), state=state, data=data, batch_size=100,
        key=jax.random.PRNGKey(1), steps=150,
    )  # fmt: skip
    assert gd.Status(int(result.status)) is gd.Status.MAX_STEPS
    model = eqx.nn.inference_mode(eqx.combine(result.params, static))
    logits, _ = jax.vmap(model, in_axes=(0, None), out_axes=(0, None))(x_test, result.state)
    assert float(jnp.mean(jnp.argmax(logits, -1) == y_test)) > 0.85


def test_a_per_step_key_kept_as_the_state():
    """The documented spelling of a per-step PRNG key: state=key, split in the loss."""

    def loss(params, key, batch):
        x, y = batch
        key, sub = jax.random.split(key)
        keep = jax.random.bernoulli(sub, 0.8, x.shape)  # dropout on the inputs
        value = jnp.mean((jnp.where(keep, x / 0.8, 0.0) @ params - y) ** 2)
        return value, key

    key0 = jax.random.PRNGKey(3)
    result = gd.minimize(
        loss, jnp.zeros(3), gd.sgd(0.01), state=key0, data=(X, Y), batch_size=8,
        key=jax.random.PRNGKey(0), steps=6,
    )  # fmt: skip
    expected = key0
    for _ in range(6):
        expected = jax.random.split(expected)[0]
    np.testing.assert_array_equal(np.asarray(result.state), np.asarray(expected))


@pytest.mark.parametrize("start", [0, jnp.int32(0)], ids=["python-int", "int32"])
def test_a_python_number_state_is_like_the_array_the_loss_returns(start):
    """``state=0`` was refused: its leaf read as ``<class 'int'>`` against the loss's
    ``int32``; a Python number is the dtype JAX gives it."""
    counted = lambda p, s: (jnp.sum((p - 3.0) ** 2), s + 1)
    result = gd.minimize(counted, jnp.zeros(2), gd.sgd(0.1), steps=10, state=start)
    assert int(result.state) == 10 and result.state.dtype == jnp.int32
