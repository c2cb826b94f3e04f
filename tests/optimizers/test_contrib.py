"""The optax.contrib optimizers run in minimize as in optax's own hand loop.

Each registry label of ``gd.optimizers.names(contrib=True)`` beyond jaxgd's rules is
run by ``gd.minimize`` and by the loop optax documents (``value_and_grad``, then
``update`` with the extra arguments that optimizer itself asks for: ``value=`` for
Momo, ``obj_fn=`` for Sophia, ``grad_fn=`` for SAM's opaque mode), on three catalogue
problems; the loss trajectories agree to 1e-6 (float32 round-off of two compiled
programs of the same arithmetic).
"""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from optax import contrib

import jaxgd as gd

CONTRIB = gd.optimizers.names(contrib=True)[len(gd.optimizers.names()) :]
PROBLEMS = ("booth", "rosenbrock", "digits_softmax")  # 2-D bowl, a valley, a weight matrix
STEPS = 15
LR = {"cocob": 1.0, "dadapt_adamw": 1.0, "dog": 1.0, "dowg": 1.0, "prodigy": 1.0, "momo": 1.0}
LR |= {"sam": 1e-3, "schedule_free_sgd": 1e-3}  # plain SGD steps: 1e-2 diverges on rosenbrock
FAST = ()  # each label compiles 6 programs (5-20 s on 2 cores): the parity table is slow
# The suite checks these four (a learning-rate-free method, one that needs the loss, one
# that needs a gradient function, a schedule-free one); `python -m pytest -m long` checks
# every one, in minutes.
SUITE = ("prodigy", "sophia", "sam", "schedule_free_adamw")


def _native(label, lr, loss):
    """optax's own optimizer for ``label`` and the extra arguments it asks for."""
    if label == "sophia":
        return contrib.sophia(lr), lambda value: {"obj_fn": loss}
    if label == "sam":
        adversary = optax.chain(contrib.normalize(), optax.sgd(0.05))
        tx = contrib.sam(optax.sgd(lr), adversary, opaque_mode=True)
        return tx, lambda value: {"grad_fn": lambda p, _: jax.grad(loss)(p)}
    if label == "mechanic":
        return contrib.mechanize(optax.sgd(lr)), lambda value: {}
    if label in ("momo", "momo_adam"):
        return getattr(contrib, label)(lr), lambda value: {"value": value}
    return getattr(contrib, label)(lr), lambda value: {}


def _hand_loop(label, lr, loss, params):
    tx, extra = _native(label, lr, loss)

    def step(carry, _):
        params, state = carry
        value, grad = jax.value_and_grad(loss)(params)
        updates, state = tx.update(grad, state, params, **extra(value))
        return (optax.apply_updates(params, updates), state), value

    return jax.lax.scan(step, (params, tx.init(params)), length=STEPS)[1]


def test_every_contrib_export_is_listed_or_said_why_not():
    listed = set(CONTRIB) | {"mechanize"} | set(gd.optimizers.CONTRIB_NOT_RUN)
    optimizers = {
        n for n in dir(contrib)
        if n.islower() and not n.startswith(("scale_by", "_")) and callable(getattr(contrib, n))
    }  # fmt: skip
    building_blocks = {
        "normalize", "hutchinson_estimator_diag_hessian", "split_real_and_imaginary",
        "differentially_private_aggregate", "schedule_free_eval_params",
    }  # fmt: skip
    assert optimizers - building_blocks <= listed, optimizers - building_blocks - listed


@pytest.mark.parametrize(
    "label",
    [pytest.param(c, marks=pytest.mark.slow if c in SUITE else pytest.mark.long) for c in CONTRIB],
)
def test_minimize_matches_optaxs_hand_loop(label):
    lr = LR.get(label, 1e-2)
    for name in PROBLEMS:
        problem = gd.problems.get(name)
        params = problem.init(jax.random.PRNGKey(0))
        loss = (lambda p, f=problem.loss, d=problem.data: f(p, d)) if problem.data else problem.loss
        result = gd.minimize(loss, params, gd.optimizers.get(label)(lr), steps=STEPS)
        ours = np.asarray(result.history.loss)[:STEPS]
        theirs = np.asarray(_hand_loop(label, lr, loss, params))
        np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-7, err_msg=f"{label} {name}")
        assert np.all(np.isfinite(ours)), (label, name)


def test_schedule_free_is_evaluated_at_its_averaged_point():
    """``schedule_free_eval_params(opt_state, params)``: the point schedule-free
    reports, from the final optimizer state of a minimize run (``Result.opt_state``)."""
    problem = gd.problems.get("booth")
    start = problem.init(jax.random.PRNGKey(0))
    opt = gd.optimizers.get("schedule_free_sgd")(1e-2)
    result = gd.minimize(problem.loss, start, opt, steps=40)

    def step(carry, _):
        params, state = carry
        updates, state = opt.update(jax.grad(problem.loss)(params), state, params)
        return (optax.apply_updates(params, updates), state), None

    params, state = jax.lax.scan(step, (start, opt.init(start)), length=40)[0]
    np.testing.assert_allclose(np.asarray(result.params), np.asarray(params), rtol=1e-6)
    expected = np.asarray(contrib.schedule_free_eval_params(state, params))
    assert not np.allclose(expected, np.asarray(params), rtol=1e-3)  # the average is elsewhere
    evaluated = contrib.schedule_free_eval_params(result.opt_state, result.params)
    np.testing.assert_allclose(np.asarray(evaluated), expected, rtol=1e-6)


@pytest.mark.long  # one sweep of every contrib optimizer compiles for about 45 s
def test_every_contrib_optimizer_runs_in_a_compare_sweep():
    c = gd.compare(["booth"], CONTRIB, learning_rates=[0.01, 0.1], seeds=1, steps=20)
    assert [r["optimizer"] for r in c.summary()] == CONTRIB
    assert all(np.isfinite(r["final_loss_mean"]) for r in c.summary())


@pytest.mark.slow  # about 7 s: two optimizers' sweep compiles
def test_compare_takes_contrib_labels():
    labels = ["schedule_free_sgd", "sam"]
    c = gd.compare(["booth"], labels, learning_rates=[0.01], seeds=1, steps=20)
    assert [r["optimizer"] for r in c.summary()] == labels


def test_an_unknown_label_is_refused_naming_the_contrib_ones_too():
    with pytest.raises(ValueError, match="unknown optimizer 'prodigyy'.*optax.contrib's: acprop"):
        gd.compare(["booth"], ["prodigyy"], learning_rates=[0.01], seeds=1, steps=20)
    assert gd.optimizers.get("prodigy") is contrib.prodigy


@pytest.mark.parametrize("label", ["sophia", "sam"])
def test_the_adapted_ones_say_what_a_hand_loop_must_pass(label):
    opt = gd.optimizers.get(label)(0.01)
    params = np.zeros(2, np.float32)
    with pytest.raises(ValueError, match=f"{label}: update needs value_fn="):
        opt.update(params, opt.init(params), params)
