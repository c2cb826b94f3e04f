"""Long and unlucky runs: huge step budgets, Ctrl-C, segments, schedules, degenerate input."""

import os
import signal
import subprocess
import sys
import textwrap
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd
from jaxgd.run import _loop as loop
from jaxgd.run import _segments as chunks

QUAD = lambda p: jnp.sum((p - 3.0) ** 2)


def test_a_billion_step_budget_records_a_bounded_history():
    result = gd.minimize(QUAD, jnp.zeros(2), gd.sgd(0.25), steps=10**9, tol=1e-3)
    assert gd.Status(int(result.status)) == gd.Status.CONVERGED
    assert int(result.steps) < 20
    assert result.history.loss.shape == (1_000_000,)  # at most a million entries
    assert result.history.stride == 1000
    np.testing.assert_array_equal(result.history.step[:3], [0, 1000, 2000])
    # step 0 is recorded; the run stopped before step 1000, so the rest is NaN
    assert np.isfinite(result.history.loss[0]) and np.isnan(result.history.loss[1])


def test_history_every_records_every_kth_step():
    every = gd.minimize(QUAD, jnp.zeros(2), gd.sgd(0.1), steps=100, history_every=1)
    strided = gd.minimize(QUAD, jnp.zeros(2), gd.sgd(0.1), steps=100, history_every=7)
    assert strided.history.loss.shape == (15,)  # ceil(100 / 7)
    np.testing.assert_array_equal(strided.history.loss, every.history.loss[::7])
    np.testing.assert_array_equal(strided.params, every.params)


def test_a_history_that_cannot_fit_is_refused_before_allocating():
    with pytest.raises(ValueError, match=r"history.*GiB.*history_every="):
        gd.minimize(QUAD, jnp.zeros(2), gd.sgd(0.1), steps=2**31 - 1, history_every=1)


def test_steps_beyond_the_int32_counter_are_refused():
    with pytest.raises(ValueError, match=r"steps must be at most 2147483647"):
        gd.minimize(QUAD, jnp.zeros(2), gd.sgd(0.1), steps=3 * 10**9)


def test_steps_may_be_a_jax_integer():
    result = gd.minimize(QUAD, jnp.zeros(2), gd.sgd(0.1), steps=jnp.int32(10))
    assert int(result.steps) == 10


def test_empty_data_is_refused():
    with pytest.raises(ValueError, match="data has 0 examples"):
        gd.minimize(lambda w, b: jnp.mean(b[0] @ w), jnp.zeros(2), gd.sgd(0.1), steps=5,
                    data=(jnp.zeros((0, 2)), jnp.zeros(0)))  # fmt: skip


def test_a_schedule_that_turns_negative_within_the_run_is_refused():
    schedule = lambda t: 0.1 - 0.01 * t
    with pytest.raises(ValueError, match=r"schedule gives -?[\d.e+-]+ at step 11"):
        gd.minimize(QUAD, jnp.zeros(2), gd.sgd(schedule), steps=100)
    # the same schedule over a run that ends before it turns is fine
    gd.minimize(QUAD, jnp.zeros(2), gd.sgd(schedule), steps=10)


def test_a_float_key_is_refused():
    with pytest.raises(TypeError, match=r"key must be a jax.random key.*PRNGKey"):
        gd.minimize(lambda w, b: jnp.mean(b @ w), jnp.zeros(2), gd.sgd(0.1), steps=5,
                    data=jnp.ones((4, 2)), batch_size=2, key=jnp.array([0.0, 1.0]))  # fmt: skip


def test_segments_end_with_the_bits_of_one_call(monkeypatch):
    x = jax.random.normal(jax.random.PRNGKey(0), (40, 3))
    y = x @ jnp.array([1.0, 2.0, -1.0])
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
    kw = dict(steps=97, data=(x, y), batch_size=8, key=jax.random.PRNGKey(2))
    whole = gd.minimize(loss, jnp.zeros(3), gd.adam(0.05), **kw)
    calls = []
    real = chunks.next_segment

    def counted(*args):
        calls.append(args[-1])
        return real(*args)

    monkeypatch.setattr(chunks, "first_length", lambda spec, params, data, eval_data=None: 5)
    monkeypatch.setattr(chunks, "SEGMENT_SECONDS", 0.0)  # then one step per segment
    monkeypatch.setattr(chunks, "next_segment", counted)
    gd.clear_caches()  # the call above is remembered as one compiled call: decide afresh
    pieces = gd.minimize(loss, jnp.zeros(3), gd.adam(0.05), **kw)
    assert len(calls) == 92  # 5 steps, then one segment a step
    for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(pieces), strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_run_in_segments_draws_its_minibatch_order_once(monkeypatch):
    """The order of the whole budget is drawn before the first segment and handed to
    each: drawn in every segment, a budget of 400,000 steps cost each 0.7 s, and a run
    that ``tol`` stopped early crawled a step per segment."""
    x = jax.random.normal(jax.random.PRNGKey(0), (41, 3))  # shapes no other test compiles
    y = x @ jnp.array([1.0, 2.0, -1.0])
    loss = lambda w, b: jnp.mean((b[0] @ w - b[1]) ** 2)
    kw = dict(steps=61, data=(x, y), batch_size=7, key=jax.random.PRNGKey(2))
    drawn, real = [], loop.batch_indices
    monkeypatch.setattr(loop, "batch_indices", lambda *a: drawn.append(a[2]) or real(*a))
    called, order = [], chunks.minibatch_order
    monkeypatch.setattr(chunks, "minibatch_order", lambda *a: called.append(1) or order(*a))
    monkeypatch.setattr(chunks, "first_length", lambda spec, params, data, eval_data=None: 5)
    monkeypatch.setattr(chunks, "SEGMENT_SECONDS", 0.0)  # then one step per segment
    gd.clear_caches()
    result = gd.minimize(loss, jnp.zeros(3), gd.adam(0.05), **kw)
    assert int(result.steps) == 61
    assert drawn == [61]  # traced once, for the whole budget; no segment draws it
    assert len(called) == 1  # and called once, not once a segment


CTRL_C_CHILD = textwrap.dedent(
    """
    import sys
    import jax.numpy as jnp
    import jaxgd as gd

    loss = lambda p: jnp.sum((p - 3.0) ** 2)
    print("started", flush=True)
    try:
        gd.minimize(loss, jnp.zeros(2), gd.sgd(1e-9), steps=2_000_000_000)
    except gd.RunInterrupted as err:
        r = err.result
        name = gd.Status(int(r.status)).name
        print("interrupted", int(r.steps), name, float(r.loss), float(loss(r.params)), flush=True)
        sys.exit(0)
    print("finished without interruption", flush=True)
    sys.exit(1)
    """
)


@pytest.mark.slow
def test_ctrl_c_stops_a_long_run_between_segments_and_keeps_its_work(tmp_path):
    script = tmp_path / "child.py"
    script.write_text(CTRL_C_CHILD)
    env = {**os.environ, "PYTHONPATH": os.getcwd(), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "started"
    time.sleep(4.0)  # compiled and running: 2e9 steps take far longer than the test
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    word, steps, status, loss, loss_at_params = out.split()[:5]
    assert word == "interrupted" and status == "INTERRUPTED"
    assert 0 < int(steps) < 2_000_000_000
    assert float(loss) == float(loss_at_params) < 18.0  # the loss of the params reached


def test_optax_schedules_work_and_probe_cleanly():
    schedule = optax.cosine_decay_schedule(0.1, 200)
    result = gd.minimize(QUAD, jnp.zeros(2), gd.momentum(schedule), steps=200)
    assert float(result.loss) < 1e-3
