"""Held-out evaluation inside the compiled loop (``eval_data``, ``eval_every``):
``history.eval_loss`` is the loss on the whole held-out data at the recorded
params, in full-batch, minibatch, sweep and mesh runs; the aux too with
``has_aux``; resumed checkpoints end with the same bits; off, nothing changes.

Tolerance: the loop evaluates the loss inside its compiled program, the
reference outside it (another fusion, so the last bit may differ): rtol 1e-5
on float32 values of order 1.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_bits

import jaxgd as gd

W = np.array([1.0, -2.0, 0.5], np.float32)
X = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (32, 3)))
Y = X @ W
X_EVAL = np.asarray(jax.random.normal(jax.random.PRNGKey(1), (12, 3)))
Y_EVAL = X_EVAL @ W + 0.3  # held out, and shifted: its loss differs from the training loss
DATA, EVAL = (jnp.asarray(X), jnp.asarray(Y)), (jnp.asarray(X_EVAL), jnp.asarray(Y_EVAL))
P0 = jnp.zeros(3)
RTOL = 1e-5


def mse(p, batch):
    x, y = batch
    return jnp.mean((x @ p - y) ** 2)


def mse_with_accuracy(p, batch):
    x, y = batch
    close = jnp.abs(x @ p - y) < 0.5
    return mse(p, batch), {"accuracy": jnp.mean(close), "hits": jnp.sum(close)}


def by_hand(params):
    """The held-out loss at each of these params, in float64 NumPy."""
    params = np.asarray(params, np.float64)
    residual = X_EVAL.astype(np.float64) @ params.T - Y_EVAL[:, None]
    return np.mean(residual**2, axis=0)


def check_records(history, due):
    """``eval_loss`` holds the hand-computed loss at the entries ``due`` (a bool
    mask) and NaN elsewhere."""
    eval_loss = np.asarray(history.eval_loss)
    assert np.isnan(eval_loss[~due]).all()
    assert due.any()
    np.testing.assert_allclose(eval_loss[due], by_hand(history.params)[due], rtol=RTOL)


def test_full_batch_eval_loss_is_the_loss_at_the_recorded_params():
    result = gd.minimize(
        mse, P0, gd.sgd(0.1), steps=20, data=DATA, eval_data=EVAL, eval_every=5, record_params=True
    )
    check_records(result.history, np.arange(20) % 5 == 0)
    assert result.history.eval_aux is None  # no has_aux


def test_eval_every_not_a_multiple_of_the_stride_evaluates_at_the_multiples_of_both():
    result = gd.minimize(
        mse,
        P0,
        gd.sgd(0.1),
        steps=40,
        data=DATA,
        eval_data=EVAL,
        eval_every=6,
        history_every=4,
        record_params=True,
    )
    steps = result.history.step  # 0, 4, 8, ...: entries exist only there
    check_records(result.history, steps % 12 == 0)  # lcm(6, 4): steps 0, 12, 24, 36


def test_minibatch_runs_evaluate_the_whole_held_out_data():
    result = gd.minimize(
        mse,
        P0,
        gd.sgd(0.05),
        steps=30,
        data=DATA,
        batch_size=8,
        key=jax.random.PRNGKey(3),
        eval_data=EVAL,
        eval_every=7,
        record_params=True,
    )
    check_records(result.history, np.arange(30) % 7 == 0)


@pytest.mark.parametrize("tol", [None, 1e-2], ids=["fixed-scan", "stopping"])
def test_a_sweep_over_learning_rates_evaluates_each_run(tol):
    rates = jnp.array([0.02, 0.1, 0.3])
    sweep = jax.vmap(
        lambda lr: gd.minimize(
            mse,
            P0,
            gd.sgd(lr),
            steps=25,
            data=DATA,
            tol=tol,
            eval_data=EVAL,
            eval_every=4,
            record_params=True,
        )
    )(rates)
    for i in range(len(rates)):
        run = jax.tree.map(lambda a, i=i: a[i], sweep.history)
        # Entries up to the step that stopped the run (all 25 without tol), NaN after.
        due = (np.arange(25) % 4 == 0) & (np.arange(25) <= int(sweep.steps[i]))
        check_records(run, due)
    if tol is not None:  # the fastest run stopped early, the slowest ran on
        assert int(sweep.steps[-1]) < 25 == int(sweep.steps[0])


def test_a_mesh_run_evaluates_the_split_held_out_data():
    mesh = gd.distributed.data_mesh()
    kwargs = dict(steps=15, data=DATA, eval_data=EVAL, eval_every=5, record_params=True)
    meshed = gd.minimize(mse, P0, gd.adam(0.1), mesh=mesh, **kwargs)
    check_records(meshed.history, np.arange(15) % 5 == 0)
    assert_same_bits(meshed.history, gd.minimize(mse, P0, gd.adam(0.1), **kwargs).history)


def test_has_aux_records_the_aux_on_the_held_out_data():
    result = gd.minimize(
        mse_with_accuracy,
        P0,
        gd.sgd(0.1),
        steps=40,
        data=DATA,
        has_aux=True,
        eval_data=EVAL,
        eval_every=10,
        record_params=True,
    )
    aux = result.history.eval_aux
    due = np.arange(40) % 10 == 0
    check_records(result.history, due)
    residual = X_EVAL @ np.asarray(result.history.params)[due].T - Y_EVAL[:, None]
    hits = np.sum(np.abs(residual) < 0.5, axis=0)
    assert aux["hits"].dtype == jnp.float32  # an integer count, kept as a float for its NaN
    np.testing.assert_array_equal(np.asarray(aux["hits"])[due], hits)
    np.testing.assert_allclose(np.asarray(aux["accuracy"])[due], hits / 12, rtol=1e-6)
    assert np.isnan(np.asarray(aux["accuracy"])[~due]).all()
    assert hits[-1] > hits[0]  # the run learns: more held-out predictions come close


def test_a_resumed_checkpointed_run_equals_an_uninterrupted_one(tmp_path, monkeypatch):
    kwargs = dict(
        data=DATA,
        steps=60,
        batch_size=8,
        key=jax.random.PRNGKey(5),
        has_aux=True,
        eval_data=EVAL,
        eval_every=7,  # evaluations fall across the checkpoints' boundaries
        checkpoint_every=25,
    )
    reference = gd.minimize(
        mse_with_accuracy, P0, gd.adam(0.05), checkpoint=tmp_path / "ref", **kwargs
    )
    saves, real_save = [], gd.checkpoint.save

    def save_then_crash(*args, **kw):
        real_save(*args, **kw)
        saves.append(1)
        if len(saves) == 1:
            raise KeyboardInterrupt  # the run dies after its first checkpoint

    monkeypatch.setattr(gd.checkpoint, "save", save_then_crash)
    path = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        gd.minimize(mse_with_accuracy, P0, gd.adam(0.05), checkpoint=path, **kwargs)
    monkeypatch.setattr(gd.checkpoint, "save", real_save)
    resumed = gd.minimize(mse_with_accuracy, P0, gd.adam(0.05), checkpoint=path, **kwargs)
    assert_same_bits(reference, resumed)
    assert np.isfinite(np.asarray(resumed.history.eval_loss)[::7]).all()
    # Another held-out set is another run: its checkpoint is not resumed.
    other = (EVAL[0], EVAL[1] + 1.0)
    with pytest.raises(ValueError, match="belongs to another run.*eval_data_values"):
        gd.minimize(
            mse_with_accuracy, P0, gd.adam(0.05), checkpoint=path, **{**kwargs, "eval_data": other}
        )


def test_off_it_costs_nothing_and_on_it_changes_no_other_bit():
    off = gd.minimize(mse, P0, gd.sgd(0.1), steps=20, data=DATA)
    on = gd.minimize(mse, P0, gd.sgd(0.1), steps=20, data=DATA, eval_data=EVAL, eval_every=3)
    assert off.history.eval_loss is None and off.history.eval_aux is None
    assert len(jax.tree.leaves(off.history)) == 2  # loss and grad_norm: no buffer added
    assert_same_bits(off.params, on.params)
    assert_same_bits(off.history.loss, on.history.loss)

    def program(**kwargs):
        run = lambda lr: gd.minimize(mse, P0, gd.sgd(lr), steps=20, data=DATA, **kwargs)  # noqa: E731
        return jax.jit(run).lower(0.1).as_text()

    # Off, whether or not the keywords are spelled out, is one program; on adds to it.
    assert program() == program(eval_data=None, eval_every=None)
    assert len(program(eval_data=EVAL, eval_every=3)) > len(program())


def test_warm_calls_see_the_held_out_data_and_eval_every(count_compiles):
    kwargs = dict(steps=10, data=DATA, record_params=True)
    gd.minimize(mse, P0, gd.sgd(0.1), eval_data=EVAL, eval_every=2, **kwargs)
    moved = (EVAL[0], EVAL[1] - 1.0)  # same shapes, new values: same program
    with count_compiles() as compiles:
        again = gd.minimize(mse, P0, gd.sgd(0.1), eval_data=moved, eval_every=2, **kwargs)
    assert compiles.count == 0
    np.testing.assert_allclose(
        np.asarray(again.history.eval_loss)[::2],
        [float(mse(p, moved)) for p in again.history.params[::2]],
        rtol=RTOL,
    )
    fewer = (EVAL[0][:5], EVAL[1][:5])  # new shapes: another program, not a stale one
    third = gd.minimize(mse, P0, gd.sgd(0.1), eval_data=fewer, eval_every=5, **kwargs)
    assert np.isnan(np.asarray(third.history.eval_loss)[1:5]).all()
    np.testing.assert_allclose(
        float(third.history.eval_loss[5]), float(mse(third.history.params[5], fewer)), rtol=RTOL
    )


def test_held_out_data_holding_nan_is_warned_of_cold_and_warm():
    bad = (EVAL[0].at[0, 0].set(jnp.nan), EVAL[1])
    for _ in range(2):  # the first call compiles (cold), the second is remembered (warm)
        with pytest.warns(UserWarning, match=r"eval_data\[0\] holds NaN or inf; every held-out"):
            r = gd.minimize(mse, P0, gd.sgd(0.1), steps=4, data=DATA, eval_data=bad, eval_every=2)
    assert np.isnan(np.asarray(r.history.eval_loss)[::2]).all()
    assert np.isfinite(np.asarray(r.history.loss)).all()  # training is not touched
