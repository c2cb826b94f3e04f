"""A vmapped sweep without tol or target runs as one masked ``lax.scan``
(``Spec.fixed_length``): it must give what each run gives alone (the
``while_loop``), divergence, history stride, recorded params and sharpness
included."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd

SCALES = jnp.array([1.0, 10.0])


def _quad(p):
    return jnp.sum(SCALES * (p - 1.0) ** 2)


# Gradient descent on _quad diverges above lr = 2 / 20: lr 1.0 multiplies the
# stiff coordinate's error by 19 a step and overflows float32 within 40 steps.
RATES = [0.01, 0.05, 1.0]


def _run(lr, **options):
    return gd.minimize(_quad, jnp.zeros(2), gd.sgd(lr), steps=60, **options)


def _assert_close(swept, alone, where):
    """Same NaN positions, and values equal to float32 round-off: vmap batches
    the same float32 operations, which XLA may fuse differently (a few ulp)."""
    swept, alone = np.asarray(swept), np.asarray(alone)
    assert swept.shape == alone.shape, where
    np.testing.assert_array_equal(np.isnan(swept), np.isnan(alone), err_msg=where)
    np.testing.assert_allclose(swept, alone, rtol=1e-5, atol=1e-6, err_msg=where)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"history_every": 7, "record_params": True},
        {"sharpness_every": 5, "sharpness_iters": 30},
    ],
    ids=["plain", "stride-and-params", "curvature"],
)
def test_a_vmapped_sweep_gives_each_run_alone(options):
    swept = jax.vmap(lambda lr: _run(lr, **options))(jnp.array(RATES))
    statuses = []
    for i, lr in enumerate(RATES):
        alone = _run(lr, **options)  # called from Python: the while loop
        assert int(swept.steps[i]) == int(alone.steps), lr
        assert int(swept.status[i]) == int(alone.status), lr
        statuses.append(gd.Status(int(alone.status)))
        pairs = jax.tree_util.tree_leaves_with_path((swept.params, swept.loss, swept.history))
        mine = jax.tree.leaves((alone.params, alone.loss, alone.history))
        assert len(pairs) == len(mine)
        for (path, a), b in zip(pairs, mine, strict=True):
            _assert_close(a[i], b, f"lr={lr} {jax.tree_util.keystr(path)}")
    assert statuses == [gd.Status.MAX_STEPS, gd.Status.MAX_STEPS, gd.Status.DIVERGED]


def test_a_vmapped_minibatch_sweep_gives_each_run_alone():
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    data = (x, x @ jnp.array([1.0, 2.0, -1.0]))

    def run(lr):
        loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)  # noqa: E731
        return gd.minimize(
            loss, jnp.zeros(3), gd.adam(lr), steps=30, data=data, batch_size=8,
            key=jax.random.PRNGKey(1),
        )  # fmt: skip

    rates = [0.01, 0.1]
    swept = jax.vmap(run)(jnp.array(rates))
    for i, lr in enumerate(rates):
        alone = run(lr)
        for a, b in zip(jax.tree.leaves(swept), jax.tree.leaves(alone), strict=True):
            _assert_close(a[i], b, f"lr={lr}")


def test_the_sweep_is_a_scan_and_a_sweep_with_a_stopping_rule_a_while_loop():
    rates = jnp.array(RATES)
    sweep = str(jax.make_jaxpr(jax.vmap(_run))(rates))
    assert "scan[" in sweep and "while[" not in sweep
    ruled = str(jax.make_jaxpr(jax.vmap(lambda lr: _run(lr, tol=1e-3)))(rates))
    assert "while[" in ruled


def test_a_diverged_run_in_the_sweep_keeps_its_last_finite_params_and_nan_after():
    swept = jax.vmap(lambda lr: _run(lr))(jnp.array(RATES))
    i = RATES.index(1.0)
    stopped = int(swept.steps[i])
    assert 0 < stopped < 60
    assert np.all(np.isfinite(np.asarray(swept.params[i])))
    history = np.asarray(swept.history.loss[i])
    assert np.all(np.isfinite(history[:stopped]))  # the steps taken
    assert not np.isfinite(history[stopped])  # the step that saw the non-finite loss
    assert np.all(np.isnan(history[stopped + 1 :]))  # nothing after the stop
