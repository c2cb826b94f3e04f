"""Tests for jaxgd.run._outer: per-example gradient moments without writing them out.

``per_example_moments`` must give what the per-example gradients written out give
(``vmap(grad)``, summed with weights and squared per example), whatever shape the
model's gradients take: dense layers on a batch of one (a transposed outer product),
on a single example (an outer product with no contracting dimension), weights used
twice (a sum of outer products), a convolution, nested jit, extra batch dimensions.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxgd.run._outer import per_example_moments, written_bytes

RTOL = 1e-5  # float32: products of norms against sums of squared products


def _mlp(params, x):
    hidden = jnp.tanh(x @ params["w1"] + params["b1"])
    return jnp.sum((hidden @ params["w2"] + params["b2"]) ** 2)


def _single(params, x):  # one example, no batch axis (Equinox's layout: W @ x)
    return jnp.sum(jnp.tanh(params["w"] @ x) ** 2)


def _shared(params, x):  # the same weight twice: its gradient is a sum of two products
    return jnp.sum(jnp.tanh(jnp.tanh(x @ params["w"]) @ params["w"]))


def _conv(params, x):
    out = jax.lax.conv_general_dilated(x[:, None], params["k"], (1,), "SAME")
    return jnp.sum(out**2)


@jax.jit
def _inner(x, w):
    return jnp.tanh(x @ w)


def _nested(params, x):
    return jnp.sum(_inner(x, params["w"]) ** 2)


def _heads(params, x):  # a batched matrix product per example (attention-like heads)
    return jnp.sum(jnp.einsum("hi,hij->hj", x, params["w"]) ** 2)


KEY = jax.random.PRNGKey(0)
CASES = {
    "mlp": (_mlp, {"w1": (5, 7), "b1": (7,), "w2": (7, 3), "b2": (3,)}, (6, 1, 5)),
    "single": (_single, {"w": (4, 5)}, (6, 5)),
    "shared": (_shared, {"w": (4, 4)}, (6, 1, 4)),
    "conv": (_conv, {"k": (2, 1, 3)}, (6, 1, 9)),
    "nested": (_nested, {"w": (5, 3)}, (6, 1, 5)),
    "heads": (_heads, {"w": (2, 3, 4)}, (6, 2, 3)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_the_moments_equal_the_per_example_gradients_written_out(case):
    loss, shapes, data_shape = CASES[case]
    keys = iter(jax.random.split(KEY, len(shapes) + 2))
    params = {k: jax.random.normal(next(keys), s) for k, s in shapes.items()}
    data = jax.random.normal(next(keys), data_shape)
    weights = jax.random.uniform(next(keys), (data_shape[0],))
    per_example = jax.vmap(jax.grad(loss), (None, 0))
    grads = jax.tree.leaves(per_example(params, data))
    sums, norms = jax.jit(per_example_moments(per_example))(weights, params, data)
    assert len(sums) == len(norms) == len(grads)
    for g, s, n in zip(grads, sums, norms, strict=True):
        np.testing.assert_allclose(s, jnp.tensordot(weights, g, axes=(0, 0)), rtol=RTOL, atol=1e-6)
        np.testing.assert_allclose(n, jnp.sum(g**2, axis=tuple(range(1, g.ndim))), rtol=RTOL)


def test_a_dense_layers_squares_are_never_written_out():
    # The MLP's weight gradients (B x 5 x 7 and B x 7 x 3) must not appear in the program.
    loss, shapes, data_shape = CASES["mlp"]
    params = {k: jnp.ones(s) for k, s in shapes.items()}
    moments = per_example_moments(jax.vmap(jax.grad(loss), (None, 0)))
    text = jax.jit(moments).lower(jnp.ones(6), params, jnp.ones(data_shape)).as_text()
    assert "6x5x7" not in text and "6x7x5" not in text and "6x7x3" not in text


def _mlp_batch():
    """The MLP case on 23 random examples: its loss, params, data and the batch's mean loss."""
    loss, shapes, _ = CASES["mlp"]
    keys = iter(jax.random.split(KEY, len(shapes) + 2))
    params = {k: jax.random.normal(next(keys), s) for k, s in shapes.items()}
    x = jax.random.normal(next(keys), (23, 5))
    mean_loss = lambda p, batch: jnp.mean(jax.vmap(loss, (None, 0))(p, batch[:, None]))  # noqa: E731
    return loss, params, x, mean_loss


def test_the_noise_scale_is_the_same_in_chunks_as_in_one(monkeypatch):
    # A batch taken in chunks (the last one padded with weight 0) gives one chunk's value.
    from jaxgd.run import _diagnostics

    loss, params, x, batch_loss = _mlp_batch()
    whole = _diagnostics.noise_scale(batch_loss, params, x)
    size = 4 * (7 + 3)  # one example's bias gradients: the weights' are not written out
    monkeypatch.setattr(_diagnostics, "CHUNK_BYTES", 5 * size)  # 5 chunks of 5: 2 padded
    chunked = _diagnostics.noise_scale(batch_loss, params, x)
    np.testing.assert_allclose(chunked, whole, rtol=RTOL)
    per_example = jax.vmap(jax.grad(lambda p, e: batch_loss(p, e[None])), (None, 0))(params, x)
    flat = jnp.concatenate([g.reshape(23, -1) for g in jax.tree.leaves(per_example)], axis=1)
    mean = flat.mean(0)
    expected = jnp.sum((flat - mean) ** 2) / 22 / jnp.sum(mean**2)
    np.testing.assert_allclose(whole, expected, rtol=1e-4)


@pytest.mark.parametrize(
    ("case", "written"),
    [("mlp", ("b1", "b2")), ("single", ()), ("conv", ("k",)), ("heads", ())],
)
def test_the_written_bytes_count_only_the_gradients_not_taken_from_factors(case, written):
    # The noise scale's chunks are sized by these: an MLP's weights are outer products.
    loss, shapes, data_shape = CASES[case]
    params = {k: jnp.ones(s) for k, s in shapes.items()}
    per_example = jax.vmap(jax.grad(loss), (None, 0))
    expected = sum(4 * int(np.prod(shapes[k])) for k in written)
    assert written_bytes(per_example, params, jnp.ones(data_shape)) == expected


def test_the_shared_step_is_the_mean_loss_and_gradient_in_chunks_as_in_one(monkeypatch):
    # noise_and_step (a loss said to be a mean over examples): the loss, gradient and noise
    # scale of the batch, whether the batch is one chunk or five (the last padded).
    from jaxgd.run import _diagnostics

    loss, params, x, mean_loss = _mlp_batch()
    value, grads = jax.value_and_grad(mean_loss)(params, x)
    noise = _diagnostics.noise_scale(mean_loss, params, x)
    one = lambda p, example: loss(p, example[None])  # noqa: E731
    whole = _diagnostics.noise_and_step(one, params, x)
    monkeypatch.setattr(_diagnostics, "CHUNK_BYTES", 5 * 4 * (7 + 3))  # 5 chunks of 5
    chunked = _diagnostics.noise_and_step(one, params, x)
    for got in (whole, chunked):
        np.testing.assert_allclose(got[0], value, rtol=RTOL)
        for name in params:
            np.testing.assert_allclose(got[1][name], grads[name], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(got[2], noise, rtol=1e-4)
