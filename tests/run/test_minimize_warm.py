"""Warm calls (jaxgd/run/_warm.py): a call like one seen before skips the
checks its arguments passed, but refuses and warns about every value that the
cold path would, and compiles nothing new; ``gd.clear_caches()`` forgets them."""

import gc
import re
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_bits

import jaxgd as gd
from jaxgd.run import _api, _plan
from jaxgd.run import _values as checks

X = jax.random.normal(jax.random.PRNGKey(0), (32, 2))
Y = X @ jnp.array([1.0, -2.0]) + 0.5


def mse(p, batch):
    x, y = batch
    return jnp.mean((x @ p["w"] + p["b"] - y) ** 2)


P0 = {"w": jnp.zeros(2), "b": jnp.zeros(())}


def no_cold_calls(monkeypatch):
    """From now on a cold call fails: whatever runs took the warm path."""

    def cold(*args, **kwargs):
        raise AssertionError("the cold path ran")

    monkeypatch.setattr(_api, "_minimize_cold", cold)


def count_cold_calls(monkeypatch) -> list:
    """From now on each cold call (checks, plan, execute) appends to the list returned."""
    calls, real = [], _api._minimize_cold

    def cold(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(_api, "_minimize_cold", cold)
    return calls


@pytest.fixture
def forget():
    """Empties the warm-call memory (and the per-spec programs) for this test."""
    gd.clear_caches()
    yield
    gd.clear_caches()


def run(optimizer=None, data=(X, Y), **kwargs):
    optimizer = gd.adam(0.05) if optimizer is None else optimizer
    return gd.minimize(mse, P0, optimizer, steps=3, data=data, **kwargs)


def test_a_warm_call_warns_about_new_data_holding_nan_on_every_call(forget, monkeypatch):
    run()  # cold: remembered
    no_cold_calls(monkeypatch)
    bad = (X.at[3, 0].set(jnp.nan), Y)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # finite data: no warning, warm
        run()
    for _ in range(2):  # the same bad arrays again: the warning again
        with pytest.warns(UserWarning, match=r"data\[0\] holds NaN or inf"):
            result = run(data=bad)
        assert gd.Status(int(result.status)) == gd.Status.DIVERGED and int(result.steps) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert int(run().steps) == 3


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"tol": -1.0}, "tol must be a number >= 0"),
        ({"tol": float("nan")}, "tol must be a number >= 0"),
        ({"target": float("nan")}, r"target must be a number \(not NaN\)"),
        ({"tol": "small"}, "tol must be a number"),
    ],
)
def test_a_warm_call_refuses_the_tol_and_target_a_cold_call_refuses(
    forget, monkeypatch, kwargs, message
):
    with pytest.raises((TypeError, ValueError), match=message) as cold:
        run(**kwargs)  # nothing remembered yet: the cold path refuses it
    run()  # remembered
    no_cold_calls(monkeypatch)
    with pytest.raises(cold.type) as warm:
        run(**kwargs)
    assert str(warm.value) == str(cold.value)


def test_a_warm_call_with_a_new_learning_rate_compiles_nothing_and_matches_a_cold_one(
    forget, count_compiles, monkeypatch
):
    """Hyperparameters given as numbers are placed on the device once per new
    value: switching back and forth gives each value's own run."""
    lrs = (0.05, 0.02, 0.05, 0.02)
    optimizers = [gd.adam(lr) for lr in lrs]
    run(optimizers[0])
    with count_compiles() as compiles:
        warm = [run(opt) for opt in optimizers]
    assert compiles.count == 0
    for lr, result in zip(lrs, warm, strict=True):
        gd.clear_caches()  # cold again
        assert_same_bits(result, run(gd.adam(lr)))
    assert not np.array_equal(warm[0].params["w"], warm[1].params["w"])


def test_a_learning_rate_given_as_an_array_is_read_on_every_warm_call(forget, monkeypatch):
    by_number = run(gd.adam(0.02))
    first = run(gd.adam(jnp.asarray(0.05)))  # cold: remembered
    no_cold_calls(monkeypatch)
    second = run(gd.adam(jnp.asarray(0.02)))
    assert not np.array_equal(first.params["w"], second.params["w"])
    assert_same_bits(second, by_number)  # an array or a number: the same run


def test_calls_of_one_spec_share_its_compiled_program(forget, count_compiles):
    """NumPy params make another signature (they are converted every call) but
    the same compiled program."""
    run()
    numpy_params = jax.tree.map(np.asarray, P0)
    jax.tree.map(jnp.asarray, numpy_params)  # converting NumPy arrays compiles a little program
    with count_compiles() as compiles:
        result = gd.minimize(mse, numpy_params, gd.adam(0.05), steps=3, data=(X, Y))
    assert compiles.count == 0
    assert_same_bits(result, run())


def test_clear_caches_makes_the_next_call_cold_again(forget, count_compiles, monkeypatch):
    """After ``gd.clear_caches()`` the next call runs its checks and builds its
    program again, as a first call does; until then calls are warm."""
    cold = count_cold_calls(monkeypatch)
    first = run()
    run()
    assert len(cold) == 1
    gd.clear_caches()
    with count_compiles() as compiles:
        again = run()
    assert len(cold) == 2 and compiles.count >= 1  # the per-spec program was forgotten too
    assert_same_bits(first, again)
    with pytest.raises(ValueError, match="tol must be a number >= 0"):
        run(tol=-1.0)  # still refused, cold or warm


def test_an_option_equal_to_a_bool_is_still_checked(forget):
    """``0 == False`` and they hash alike: the signature keeps the options' types."""
    run(has_aux=False)
    with pytest.raises(TypeError, match="has_aux must be True or False, got 0"):
        run(has_aux=0)


def test_new_shapes_or_dtypes_are_checked_afresh(forget):
    run()
    with pytest.raises(ValueError, match=re.escape("data arrays disagree")):
        run(data=(X, Y[:-1]))
    with pytest.raises(TypeError, match="gradient descent needs floating-point params"):
        gd.minimize(mse, {"w": jnp.zeros(2, jnp.int32), "b": P0["b"]}, gd.adam(0.05), steps=3,
                    data=(X, Y))  # fmt: skip


def test_the_finite_memory_forgets_arrays_that_die():
    """``all_finite`` knows the last finite arrays by id only while they live: a
    new array that reuses a dead one's id is checked."""
    last: list = []
    a = jnp.ones(3) * 2.0
    assert checks.all_finite([a], last)
    assert last and last[0] == (id(a),)
    del a
    gc.collect()
    assert last == []
    bad = jnp.array([1.0, jnp.inf])
    assert not checks.all_finite([bad], last)
    assert last == []  # nothing remembered of data that is not finite
    assert not checks.all_finite([bad], last)


def mse_with_aux(p, batch):
    x, y = batch
    residual = x @ p["w"] + p["b"] - y
    return jnp.mean(residual**2), {"worst": jnp.max(jnp.abs(residual)), "n": residual.size}


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"has_aux": True},
        {"record_params": True, "history_every": 2},
        {"sharpness_every": 2, "sharpness_iters": 3},  # Adam: the preconditioned sharpness too
    ],
)
def test_a_warm_result_is_the_loops_own_result(forget, options, capsys):
    """The warm path builds the Result from plain tuples (a cheaper jit output):
    the same tree, the same bits as the loop's own Result (here from a run in
    segments, which progress= asks for)."""
    loss = mse_with_aux if options.get("has_aux") else mse
    call = lambda **kw: gd.minimize(loss, P0, gd.adam(0.05), steps=5, data=(X, Y), **options, **kw)  # noqa: E731
    call()
    warm = call()
    own = call(progress=True)
    assert jax.tree.structure(warm) == jax.tree.structure(own)
    assert warm.history.stride == own.history.stride
    assert_same_bits(warm, own)


@pytest.mark.parametrize(
    ("lr", "options", "status"),
    [
        (0.05, {"tol": 9e-4}, gd.Status.CONVERGED),  # stops on an iteration's second step
        (0.05, {}, gd.Status.MAX_STEPS),
        (2.0, {}, gd.Status.DIVERGED),
    ],
    ids=["converged", "max-steps", "diverged"],
)
def test_one_or_two_steps_per_loop_iteration_give_the_same_bits(lr, options, status, monkeypatch):
    """Params over ``_UNROLL_BYTES`` run one step per while-loop iteration, smaller
    ones two: the same run either way, to the bit, wherever it stops."""

    def fresh_run():
        gd.clear_caches()
        return gd.minimize(mse, P0, gd.sgd(lr), steps=301, data=(X, Y), **options)

    two = fresh_run()
    assert _plan.inner_steps(False, P0) == 2
    monkeypatch.setattr(_plan, "_UNROLL_BYTES", 8)  # P0 holds 12 bytes
    one = fresh_run()
    assert _plan.inner_steps(False, P0) == 1
    assert gd.Status(int(two.status)) == status
    assert int(one.steps) == int(two.steps)
    if status == gd.Status.CONVERGED:
        assert int(two.steps) % 2 == 1  # the run stopped on the second step of an iteration
    assert_same_bits(one, two)


def test_the_warm_memory_classifies_every_argument_of_a_call():
    """Every field of a call is described by its leaves, checked on every call,
    part of the signature's options, never remembered, or learnt by the checks:
    an argument added to minimize without a place here would let a warm call
    reuse a remembered call that differs in it."""
    from jaxgd.run import _checks

    groups = (_checks.ARRAYS, _checks.PER_CALL, _checks.OPTIONS, _checks.NOT_PLAIN, _checks.LEARNT)
    named = [name for group in groups for name in group]
    assert sorted(named) == sorted(_checks.Call._fields)
    assert len(named) == len(set(named))
