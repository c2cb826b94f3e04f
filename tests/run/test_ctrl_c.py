"""issue 23: Ctrl-C is answered within about a second however much a step costs:
a segment's length follows the time steps were measured to take, not a guess."""

from __future__ import annotations

import os
import signal
import threading
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd

STEP_SECONDS = 0.004  # a loss that computes much on little data: the byte guess is ~1 us


def _slow_loss(calls: list):
    def host(p):
        calls.append(time.perf_counter())
        if len(calls) > 2500:  # 10 s: the run was never interrupted (fail, do not hang)
            raise RuntimeError("the run was not interrupted")
        time.sleep(STEP_SECONDS)
        return np.float32(0.0)

    def loss(p):
        shape = jax.ShapeDtypeStruct((), jnp.float32)
        return jnp.sum((p - 3.0) ** 2) + jax.pure_callback(host, shape, jax.lax.stop_gradient(p))

    return loss


@pytest.mark.parametrize("warm", [False, True], ids=["first-call", "repeated-call"])
def test_ctrl_c_is_answered_within_a_second_or_two_on_a_costly_step(warm):
    calls = []
    loss = _slow_loss(calls)
    if warm:  # a short run first: its pace is measured, and remembered for the long one
        gd.minimize(loss, jnp.zeros(2), gd.sgd(0.01), steps=300)
    calls.clear()
    sent = []

    def press_ctrl_c():
        while len(calls) < 20:  # the long run is stepping
            time.sleep(0.01)
        sent.append(time.perf_counter())
        os.kill(os.getpid(), signal.SIGINT)

    presser = threading.Thread(target=press_ctrl_c, daemon=True)
    presser.start()
    with pytest.raises(gd.RunInterrupted) as caught:
        gd.minimize(loss, jnp.zeros(2), gd.sgd(0.01), steps=1_000_000)
    answered = time.perf_counter() - sent[0]
    # The issue demands 2 s; a segment aims at 0.5 s. A wide margin for a loaded machine.
    assert answered < 3.0, f"Ctrl-C answered after {answered:.1f} s"
    assert 0 < int(caught.value.result.steps) < 1_000_000
