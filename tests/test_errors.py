"""The error catalogue: every bad input a user can give gets a clear error that
names the argument (and says the fix), raised before anything compiles.

``CATALOGUE`` is the table of the documentation's "Errors and their fixes"
(docs/guides/errors.md): each row there has its id here, and
``test_the_error_table_lists_every_case`` keeps the two in step.
"""

import concurrent.futures
import dataclasses
import os
import pathlib
import re
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd

P0 = jnp.zeros(2)
LOSS = lambda p: jnp.sum((p - 1.0) ** 2)
X = jnp.ones((8, 2))
Y = jnp.ones(8)
DATA_LOSS = lambda p, batch: jnp.mean((batch[0] @ p - batch[1]) ** 2)
# Arrays the bad calls use are made here: making an array can itself compile.
KEY = jax.random.PRNGKey(0)
Y7 = jnp.ones(7)
SCALAR = jnp.float32(1.0)
INTS = jnp.array([1, 2])
LRS_WITH_NEGATIVE = jnp.array([0.1, -0.1])
ONES2 = jnp.ones(2)
X_NONE, Y_NONE = X[:0], Y[:0]
X_WIDE, Y5 = jnp.ones((5, 3)), jnp.ones(5)  # held-out rows with 3 features where the loss takes 2
TMP_RUN = os.path.join(tempfile.mkdtemp(), "run")
ADAMW_STATE = gd.adamw(0.1).init(ONES2)
ARMIJO = gd.optimizers.get("armijo")(0.1)
ARMIJO_STATE = ARMIJO.init(ONES2)
SGD_STATE = gd.sgd(0.1).init(P0)
ADAM3_STATE = gd.adam(0.1).init(jnp.ones(3))  # a state for params of 3, not 2
WORDY_STATE = gd.adam(0.1).init(ONES2)._replace(mu="x")  # a leaf that is no number
MODEL_MESH = jax.sharding.Mesh(np.array(jax.devices()[:1]), ("model",))
LOCAL_BOOTH = dataclasses.replace(gd.problems.get("booth"), loss=lambda p: jnp.sum(p**2))
UNSTARTED_POOL = concurrent.futures.ProcessPoolExecutor(1)  # starts no process before a submit


class _NoRule(gd.Optimizer):
    """A rule of one's own that forgot to write its rule."""

    learning_rate: float

    def init(self, params):
        return ()


def run(**overrides):
    """minimize with good arguments, some replaced by bad ones."""
    kwargs = dict(loss=LOSS, params=P0, optimizer=gd.sgd(0.1), steps=10)
    kwargs.update(overrides)
    return gd.minimize(kwargs.pop("loss"), kwargs.pop("params"), kwargs.pop("optimizer"), **kwargs)


def run_data(**overrides):
    return run(**{"loss": DATA_LOSS, "data": (X, Y), **overrides})


def _other_run_checkpoint():
    path = os.path.join(tempfile.mkdtemp(), "run.npz")
    run(checkpoint=path, checkpoint_every=5)
    return lambda: run(checkpoint=path, checkpoint_every=5, optimizer=gd.sgd(0.2))


def _unwritable_dir():
    path = pathlib.Path(tempfile.mkdtemp()) / "a-file"
    path.write_text("not a folder")
    return path / "report"


# (id, what to call, exception type, a regex the message must match)
CATALOGUE = [
    # optimizer hyperparameters, at construction
    (
        "lr-negative",
        lambda: gd.sgd(-0.1),
        ValueError,
        r"learning_rate must be a finite number >= 0.*got -0.1; use a positive step size",
    ),
    (
        "lr-nan",
        lambda: gd.adam(float("nan")),
        ValueError,
        r"learning_rate must be a finite number >= 0.*got nan; use a positive step size",
    ),
    (
        "lr-inf",
        lambda: gd.momentum(float("inf")),
        ValueError,
        r"learning_rate must be a finite number >= 0.*got inf; use a positive step size",
    ),
    (
        "lr-not-a-number",
        lambda: gd.sgd("fast"),
        TypeError,
        r"learning_rate must be a finite number.*got 'fast' of type str; pass a float",
    ),
    (
        "beta-one",
        lambda: gd.momentum(0.1, beta=1.0),
        ValueError,
        r"beta must be a number in \[0, 1\), got 1.0; use a value such as 0.9.*never forget",
    ),
    (
        "beta-negative",
        lambda: gd.momentum(0.1, beta=-0.5),
        ValueError,
        r"beta must be a number in \[0, 1\), got -0.5; use a value such as 0.9",
    ),
    (
        "b1-out-of-range",
        lambda: gd.adam(b1=1.5),
        ValueError,
        r"b1 must be a number in \[0, 1\), got 1.5; use a value such as 0.9",
    ),
    (
        "b2-one",
        lambda: gd.adam(b2=1.0),
        ValueError,
        r"b2 must be a number in \[0, 1\), got 1.0; use a value such as 0.9.*never forget",
    ),
    (
        "eps-zero",
        lambda: gd.adam(eps=0.0),
        ValueError,
        r"eps must be a finite number > 0, got 0.0; use a small positive value such as 1e-8",
    ),
    (
        "eps-negative",
        lambda: gd.rmsprop(0.1, eps=-1e-8),
        ValueError,
        r"eps must be a finite number > 0, got -1e-08; use a small positive value",
    ),
    (
        "decay-one",
        lambda: gd.rmsprop(0.1, decay=1.0),
        ValueError,
        r"decay must be a number in \[0, 1\), got 1.0; use a value such as 0.9",
    ),
    (
        "weight-decay-negative",
        lambda: gd.adamw(weight_decay=-1.0),
        ValueError,
        r"weight_decay must be a finite number >= 0, got -1.0; use 0 to switch it off",
    ),
    (
        "accumulator-negative",
        lambda: gd.adagrad(0.1, initial_accumulator_value=-1.0),
        ValueError,
        r"initial_accumulator_value must be a finite number >= 0, got -1.0; use 0",
    ),
    (
        "lr-array-with-negative",
        lambda: gd.sgd(LRS_WITH_NEGATIVE),
        ValueError,
        r"learning_rate must be a finite number >= 0.*-0.1.*use a positive step size",
    ),
    # optimizers: the registry, the protocol, rules of one's own
    (
        "optimizer-unknown",
        lambda: gd.optimizers.get("adamm"),
        ValueError,
        r"unknown optimizer 'adamm'; known optimizers: vanilla, .*adam, .*armijo",
    ),
    (
        "adamw-without-params",
        lambda: gd.adamw(0.1).update(ONES2, ADAMW_STATE),
        ValueError,
        r"adamw.update needs params.*call opt.update\(grads, state, params\)",
    ),
    (
        "armijo-without-loss",
        lambda: ARMIJO.update(ONES2, ARMIJO_STATE, ONES2),
        TypeError,
        r"armijo.update needs params and the loss: value=, grad=, value_fn= missing.*"
        r"value_fn=loss_fn",
    ),
    (
        "optimizer-rule-missing",
        lambda: _NoRule(0.1).update(ONES2, ()),
        NotImplementedError,
        r"_NoRule must define rule\(self, grads, state, params\) -> \(updates, state\)",
    ),
    # minimize: the optimizer, loss and params
    (
        "optimizer-factory-uncalled",
        lambda: run(optimizer=gd.adam),
        TypeError,
        r"optimizer.*gd.adam\(learning_rate\)",
    ),
    (
        "optimizer-not-an-optimizer",
        lambda: run(optimizer="adam"),
        TypeError,
        r"optimizer must be a jaxgd optimizer.*or an optax GradientTransformation",
    ),
    ("loss-not-callable", lambda: run(loss=3.0), TypeError, "loss must be a function"),
    ("loss-not-scalar", lambda: run(loss=lambda p: p**2), ValueError, "scalar.*jnp.mean"),
    (
        "loss-integer",
        lambda: run(loss=lambda p: jnp.sum(p).astype(jnp.int32)),
        ValueError,
        "floating-point scalar",
    ),
    (
        "loss-not-traceable",
        lambda: run(loss=lambda p: float(jnp.sum(p))),
        TypeError,
        r"traceable by JAX.*jnp.where",
    ),
    (
        "loss-wrong-signature",
        lambda: run(loss=DATA_LOSS),
        TypeError,
        r"calling the loss as loss\(params\) failed.*With data= the loss is called",
    ),
    (
        "loss-returns-tuple-without-aux",
        lambda: run(loss=lambda p: (jnp.sum(p**2), p)),
        ValueError,
        r"returned a tuple of 2.*pass has_aux=True",
    ),
    (
        "loss-aux-not-a-pair",
        lambda: run(has_aux=True),
        ValueError,
        r"with has_aux=True the loss must return a pair \(loss, aux\)",
    ),
    (
        "loss-returns-python-float",
        lambda: run(loss=lambda p: 1.0),
        ValueError,
        r"returned a Python float.*compute with jnp",
    ),
    (
        "params-integer",
        lambda: run(params=INTS),
        TypeError,
        r"params has dtype int32.*jnp.asarray\(\.\.\., dtype=jnp.float32\)",
    ),
    (
        "params-integer-leaf",
        lambda: run(loss=lambda p: jnp.sum(p["w"]), params={"w": ONES2, "n": 3}),
        TypeError,
        r"params\['n'\] has dtype int32.*floating-point",
    ),
    (
        "params-whole-model",
        lambda: run(loss=lambda p: jnp.sum(p["w"]), params={"w": ONES2, "act": jnp.tanh}),
        TypeError,
        r"params\['act'\] is a .*eqx\.partition\(model, eqx\.is_inexact_array\).*nnx\.split",
    ),
    ("params-empty", lambda: run(params={}), ValueError, r"params has no arrays.*jnp.zeros"),
    # minimize: steps and stopping rules
    ("steps-zero", lambda: run(steps=0), ValueError, "steps must be a positive integer"),
    ("steps-negative", lambda: run(steps=-5), ValueError, "steps must be a positive integer"),
    ("steps-float", lambda: run(steps=10.5), ValueError, "steps must be a positive integer"),
    ("steps-bool", lambda: run(steps=True), ValueError, "steps must be a positive integer"),
    (
        "steps-beyond-int32",
        lambda: run(steps=3 * 10**9),
        ValueError,
        r"steps must be at most 2147483647.*several calls of at most 2147483647 steps.*"
        r"result\.params",
    ),
    (
        "history-too-large",
        lambda: run(steps=2**31 - 1, history_every=1),
        ValueError,
        r"history of 2147483647 entries would need .* GiB.*history_every=",
    ),
    ("history-every-zero", lambda: run(history_every=0), ValueError, "history_every must be"),
    (
        "sharpness-every-zero",
        lambda: run(sharpness_every=0),
        ValueError,
        "sharpness_every must be a positive integer",
    ),
    (
        "schedule-turns-negative",
        lambda: run(optimizer=gd.sgd(lambda t: 0.1 - 0.02 * t)),
        ValueError,
        r"schedule gives -0.02 at step 6.*finite number >= 0.*clip it",
    ),
    ("tol-negative", lambda: run(tol=-1.0), ValueError, "tol must be a number >= 0"),
    ("tol-nan", lambda: run(tol=float("nan")), ValueError, r"tol must be a number >= 0.*None"),
    ("tol-not-a-number", lambda: run(tol="small"), TypeError, "tol must be a number"),
    ("target-nan", lambda: run(target=float("nan")), ValueError, r"target must be a number"),
    (
        "record-params-not-bool",
        lambda: run(record_params="yes"),
        TypeError,
        "record_params must be True or False",
    ),
    # minimize: data and minibatches
    (
        "data-lengths-differ",
        lambda: run_data(data=(X, Y7)),
        ValueError,
        r"data\[0\]: 8, data\[1\]: 7",
    ),
    (
        "data-scalar-leaf",
        lambda: run_data(data=(X, SCALAR)),
        ValueError,
        "leading example axis",
    ),
    (
        "data-empty",
        lambda: run_data(data={}),
        ValueError,
        r"data has no arrays; pass None for a loss without data",
    ),
    (
        "data-no-examples",
        lambda: run_data(data=(X_NONE, Y_NONE)),
        ValueError,
        r"data has 0 examples.*at least one",
    ),
    (
        "data-python-lists",
        lambda: run_data(data=[[1.0, 2.0], [3.0, 4.0]]),
        TypeError,
        r"data\[0\] is a Python list or tuple of numbers.*np.asarray",
    ),
    # minimize: held-out evaluation
    (
        "eval-every-without-eval-data",
        lambda: run_data(eval_every=5),
        ValueError,
        r"eval_every needs eval_data=, the held-out examples",
    ),
    (
        "eval-data-without-eval-every",
        lambda: run_data(eval_data=(X, Y)),
        ValueError,
        r"eval_data needs eval_every=K, the steps between two evaluations",
    ),
    (
        "eval-data-without-data",
        lambda: run(eval_data=(X, Y), eval_every=5),
        ValueError,
        r"eval_data is passed to the loss as loss\(params, eval_data\).*training data=",
    ),
    (
        "eval-every-zero",
        lambda: run_data(eval_data=(X, Y), eval_every=0),
        ValueError,
        "eval_every must be a positive integer, got 0",
    ),
    (
        "eval-data-lengths-differ",
        lambda: run_data(eval_data=(X, Y7), eval_every=5),
        ValueError,
        r"eval_data\[0\]: 8, eval_data\[1\]: 7",
    ),
    (
        "eval-data-rejected-by-loss",
        lambda: run_data(eval_data=(X_WIDE, Y5), eval_every=5),
        ValueError,
        r"the loss cannot be evaluated on eval_data \(TypeError: .*\); .*structure of data",
    ),
    (
        "diagnostics-unknown",
        lambda: run(diagnostics=("alpha", "sharpness")),
        ValueError,
        r"diagnostics names 'sharpness', which is not one of 'alpha', 'cosine', 'update_ratio'",
    ),
    (
        "diagnostics-not-names",
        lambda: run(diagnostics=True),
        TypeError,
        r"diagnostics must be a tuple of names from 'alpha', .*e\.g\. diagnostics=\('alpha',\)",
    ),
    (
        "noise-scale-without-data",
        lambda: run(diagnostics=("noise_scale",)),
        ValueError,
        r"'noise_scale' .* needs data= with two or more examples a batch.*loss of params alone",
    ),
    (
        "noise-scale-batch-of-one",
        lambda: run_data(diagnostics=("noise_scale",), batch_size=1, key=KEY),
        ValueError,
        r"'noise_scale' .* \(batch_size >= 2\); this run has 1",
    ),
    (
        "mean-over-examples-not-a-function",
        lambda: gd.run.mean_over_examples(3.0),
        TypeError,
        r"mean_over_examples: example_loss must be a function \(params, example\) -> a scalar",
    ),
    (
        "mean-over-examples-not-one-scalar",
        lambda: run_data(loss=gd.run.mean_over_examples(lambda p, e: (e[0] @ p, e[1]))),
        TypeError,
        r"example_loss must return one scalar per example, got \(\(8,\), \(8,\)\).*aux",
    ),
    (
        "effective-lr-not-adapted",
        lambda: run(diagnostics=("effective_lr",)),
        ValueError,
        r"'effective_lr' reads the rate d \* lr .*carries no d.*optax\.contrib\.prodigy.*drop "
        r"'effective_lr'",
    ),
    (
        "grad-through-a-stopping-rule",
        lambda: jax.grad(lambda lr: run(optimizer=gd.sgd(lr), tol=1e-6).loss)(0.1),
        ValueError,
        r"jax.grad \(reverse mode\) cannot differentiate a run that tol may stop early.*Drop tol",
    ),
    # minimize: what a run threads from step to step
    (
        "opt-state-of-another-optimizer",
        lambda: run(optimizer=gd.adam(0.1), opt_state=SGD_STATE),
        ValueError,
        r"opt_state is not a state of this optimizer for these params \(like "
        r"optimizer.init\(params\) but for the structure .*AdamState.* expected, .*SgdState.* "
        r"given\).*result.opt_state",
    ),
    (
        "opt-state-of-other-params",
        lambda: run(optimizer=gd.adam(0.1), params=ONES2, opt_state=ADAM3_STATE),
        ValueError,
        r"opt_state is not a state of this optimizer .*but for \.mu: float32\[2\] "
        r"expected, float32\[3\] given",
    ),
    (
        "opt-state-with-a-leaf-no-number",
        lambda: run(optimizer=gd.adam(0.1), params=ONES2, opt_state=WORDY_STATE),
        ValueError,
        r"opt_state is not a state of this optimizer .*but for \.mu: float32\[2\] expected, "
        r"str given",
    ),
    (
        "state-loss-returns-no-pair",
        lambda: run(loss=lambda p, s: jnp.sum(p**2), state=ONES2),
        ValueError,
        r"with state= the loss must return \(value, new_state\)",
    ),
    (
        "state-new-state-differs",
        lambda: run(loss=lambda p, s: (jnp.sum(p**2), s[0]), state=ONES2),
        ValueError,
        r"the loss's new_state must have the structure, shapes and dtypes of state= \(it "
        r"differs: the state: float32\[2\] expected, float32\[\] given\)",
    ),
    (
        "batch-size-zero",
        lambda: run_data(batch_size=0, key=KEY),
        ValueError,
        r"batch_size must be between 1 and .*\(8\)",
    ),
    (
        "batch-size-too-large",
        lambda: run_data(batch_size=9, key=KEY),
        ValueError,
        r"batch_size must be between 1 and the number of examples \(8\), got 9.*None",
    ),
    (
        "batch-size-float",
        lambda: run_data(batch_size=2.0, key=KEY),
        TypeError,
        "batch_size must be an integer",
    ),
    (
        "batch-size-without-data",
        lambda: run(batch_size=2, key=KEY),
        ValueError,
        "batch_size needs data",
    ),
    (
        "minibatch-order-too-large",
        lambda: run_data(steps=10**9, batch_size=4, key=KEY),
        ValueError,
        r"minibatch order of 1000000000 steps .* GiB; run at most \d+ steps per call .*"
        r"opt_state=result.opt_state, key=<a new key>",
    ),
    ("batch-size-without-key", lambda: run_data(batch_size=4), ValueError, r"key=.*PRNGKey"),
    (
        "key-not-a-key",
        lambda: run_data(batch_size=4, key=42),
        TypeError,
        r"key must be a jax.random key.*jax.random.PRNGKey\(seed\)",
    ),
    (
        "key-float",
        lambda: run_data(batch_size=4, key=ONES2),
        TypeError,
        r"key must be a jax.random key",
    ),
    # minimize: checkpoints and progress
    (
        "checkpoint-every-without-path",
        lambda: run(checkpoint_every=5),
        ValueError,
        "checkpoint_every needs checkpoint=PATH",
    ),
    (
        "checkpoint-every-zero",
        lambda: run(checkpoint=os.path.join(tempfile.mkdtemp(), "c.npz"), checkpoint_every=0),
        ValueError,
        "checkpoint_every must be a positive integer",
    ),
    (
        "checkpoint-folder-missing",
        lambda: run(checkpoint="/no/such/folder/run.npz"),
        ValueError,
        r"must be in an existing folder; create '/no/such/folder' first",
    ),
    (
        "checkpoint-of-another-run",
        "other_run",
        ValueError,
        r"belongs to another run.*hyperparameters.*start\s+afresh",
    ),
    (
        "checkpoint-inside-vmap",
        lambda: jax.vmap(lambda lr: run(optimizer=gd.sgd(lr), checkpoint=TMP_RUN))(ONES2),
        ValueError,
        r"checkpoint= and progress= .*cannot be used inside jax.vmap or jax.jit",
    ),
    (
        "checkpoint-inside-jit",
        lambda: jax.jit(lambda p: run(params=p, checkpoint=TMP_RUN).loss)(P0),
        ValueError,
        r"checkpoint= and progress= .*cannot be used inside jax.vmap or jax.jit",
    ),
    (
        "progress-inside-vmap",
        lambda: jax.vmap(lambda lr: run(optimizer=gd.sgd(lr), progress=True))(ONES2),
        ValueError,
        r"cannot be used inside jax.vmap or jax.jit; call minimize directly",
    ),
    (
        "checkpoint-path-is-a-file",
        "old_npz_file",
        ValueError,
        r"is a file, not a checkpoint directory.*pass a\s+new path",
    ),
    (
        "checkpoint-folder-not-a-checkpoint",
        "users_folder",
        ValueError,
        r"holding files jaxgd did not write \(notes.txt\).*pass a new path",
    ),
    ("checkpoint-in-use", "in_use", ValueError, r"in use by process \d+ on .*another checkpoint"),
    ("progress-not-bool", lambda: run(progress="yes"), TypeError, "progress must be True or False"),
    (
        "checkpoint-file-not-a-checkpoint",
        "garbage_file",
        ValueError,
        "not a readable jaxgd checkpoint",
    ),
    ("checkpoint-load-shape-mismatch", "shape_mismatch", ValueError, r"\['w'\]: shape"),
    # calculus
    (
        "check-gradient-integer-x",
        lambda: gd.check_gradient(jnp.sum, INTS),
        TypeError,
        "floating-point",
    ),
    (
        "check-gradient-grad-not-callable",
        lambda: gd.check_gradient(LOSS, P0, grad=ONES2),
        TypeError,
        r"grad must be your gradient function.*pass the function itself",
    ),
    (
        "check-gradient-grad-wrong-structure",
        lambda: gd.check_gradient(LOSS, P0, grad=lambda p: (p, p)),
        ValueError,
        r"structured like x.*one array per leaf of x",
    ),
    (
        "check-gradient-random-directions-negative",
        lambda: gd.check_gradient(LOSS, P0, random_directions=-1),
        ValueError,
        r"random_directions must be an integer >= 0",
    ),
    (
        "gradient-tuple-without-has-aux",
        lambda: gd.gradient(lambda p: (jnp.sum(p), p))(P0),
        TypeError,
        r"gd.gradient: f returned a tuple of 2, not a scalar.*pass has_aux=True",
    ),
    (
        "gradient-has-aux-not-a-pair",
        lambda: gd.value_and_gradient(LOSS, has_aux=True)(P0),
        TypeError,
        r"has_aux=True, but f returned an array of shape \(\), not a \(value, aux\) pair.*"
        r"drop has_aux=True",
    ),
    ("max-curvature-iters-zero", lambda: gd.max_curvature(LOSS, P0, iters=0), ValueError, "iters"),
    (
        "partial-unknown-name",
        lambda: gd.partial_derivative(lambda p: p["a"], "b")({"a": 1.0}),
        KeyError,
        "no parameter named 'b'",
    ),
    (
        "partial-unknown-argument",
        lambda: gd.partial_derivative(lambda hours, attendance: hours * attendance, "x")(6.0, 90.0),
        KeyError,
        r"no parameter named 'x'.*\['hours', 'attendance'\]",
    ),
    (
        "partials-keywords-with-params",
        lambda: gd.partials(DATA_LOSS, P0, batch=(X, Y)),
        TypeError,
        r"keyword arguments \['batch'\] with a params pytree first is ambiguous.*by keyword.*"
        r"by position",
    ),
    (
        "partials-unnamed-arguments",
        lambda: gd.partials(lambda *xs: xs[0] * xs[1], 1.0, 2.0),
        TypeError,
        r"arguments of f cannot be named.*give it named parameters",
    ),
    ("partials-no-point", lambda: gd.partials(LOSS), TypeError, r"no point.*pass it"),
    (
        "suggest-lr-not-convex",
        lambda: gd.suggest_learning_rate(lambda x: -jnp.sum(x**2), P0),
        ValueError,
        "not convex",
    ),
    (
        "lr-range-factory-not-callable",
        lambda: gd.lr_range_test(LOSS, P0, gd.sgd(0.1)),
        TypeError,
        r"factory must be a function of the learning rate.*not an optimizer built from it",
    ),
    (
        "lr-range-factory-not-optimizer",
        lambda: gd.lr_range_test(LOSS, P0, lambda lr: lr),
        TypeError,
        r"factory\(learning_rate\) must return an optimizer.*gd.sgd",
    ),
    (
        "lr-range-rate-not-positive",
        lambda: gd.lr_range_test(LOSS, P0, gd.sgd, min_lr=0.0),
        ValueError,
        r"min_lr must be a finite number > 0.*min_lr=1e-6",
    ),
    (
        "lr-range-min-not-below-max",
        lambda: gd.lr_range_test(LOSS, P0, gd.sgd, min_lr=1.0, max_lr=0.1),
        ValueError,
        r"min_lr \(1\) must be below max_lr \(0.1\).*grows from min_lr to max_lr",
    ),
    (
        "lr-range-steps-too-few",
        lambda: gd.lr_range_test(LOSS, P0, gd.sgd, steps=1),
        ValueError,
        r"steps must be an integer >= 2.*100 is usual",
    ),
    (
        "lr-range-smoothing-out-of-range",
        lambda: gd.lr_range_test(LOSS, P0, gd.sgd, smoothing=1.0),
        ValueError,
        r"smoothing must be in \[0, 1\).*0 for none",
    ),
    (
        "lr-range-blow-up-factor",
        lambda: gd.lr_range_test(LOSS, P0, gd.sgd, blow_up_factor=1.0),
        ValueError,
        r"blow_up_factor must be a number > 1.*4 is usual",
    ),
    # problems and comparisons
    (
        "problem-unknown",
        lambda: gd.problems.get("rosenbrok"),
        ValueError,
        "unknown problem.*rosenbrock",
    ),
    (
        "compare-problem-unknown",
        lambda: gd.compare(["nope"], ["adam"], steps=5),
        ValueError,
        "unknown problem 'nope'.*quadratic",
    ),
    (
        "compare-optimizer-unknown",
        lambda: gd.compare(["booth"], ["adamm"], steps=5),
        ValueError,
        "unknown optimizer 'adamm'.*adam",
    ),
    (
        "compare-grid-empty",
        lambda: gd.compare(["booth"], ["adam"], learning_rates=[], steps=5),
        ValueError,
        r"learning_rates is empty; pass positive rates such as \[0.001",
    ),
    (
        "compare-grid-non-positive",
        lambda: gd.compare(["booth"], ["adam"], learning_rates=[0.1, 0.0], steps=5),
        ValueError,
        r"must all be finite and > 0, got \[0.1, 0.0\]; use a log grid",
    ),
    (
        "compare-seeds-zero",
        lambda: gd.compare(["booth"], ["adam"], seeds=0, steps=5),
        ValueError,
        "seeds must be a positive integer, got 0",
    ),
    (
        "compare-eval-seeds-one",
        lambda: gd.compare(["booth"], ["adam"], eval_seeds=1, steps=5),
        ValueError,
        "eval_seeds must be at least 2, got 1: a verdict compares optimizers over paired",
    ),
    (
        "compare-eval-seeds-shared",
        lambda: gd.compare(["booth"], ["adam"], seeds=3, eval_seeds=[2, 50], steps=5),
        ValueError,
        r"eval_seeds and seeds share \[2\]: the rate is chosen on seeds and reported on",
    ),
    (
        "compare-steps-zero",
        lambda: gd.compare(["booth"], ["adam"], steps=0),
        ValueError,
        "steps must be a positive integer, got 0",
    ),
    (
        "compare-batch-size-too-large",
        lambda: gd.compare(["student_marks"], ["adam"], steps=5, batch_size=201),
        ValueError,
        r"batch_size must be between 1 and the number of examples; student_marks has 200, "
        r"got 201; pass batch_size <= 200",
    ),
    (
        "compare-too-big",
        lambda: gd.compare(["booth"], ["adam"], seeds=10**6, steps=10**4),
        ValueError,
        r"26,000,000 runs .* run-steps .* GiB of history, more than this machine's .* GiB of "
        r"memory; use fewer seeds, steps",
    ),
    (
        "compare-sharpness-not-bool",
        lambda: gd.compare(["booth"], ["adam"], steps=5, sharpness="yes"),
        TypeError,
        r"sharpness must be True or False, got 'yes'; pass sharpness=True to record",
    ),
    (
        "compare-diagnostics-unknown",
        lambda: gd.compare(["booth"], ["adam"], steps=5, diagnostics=("alpha", "curvature")),
        ValueError,
        r"compare: diagnostics names 'curvature', which is not one of 'alpha', 'cosine'",
    ),
    (
        "compare-mesh-no-axis",
        lambda: gd.compare(["booth"], ["adam"], steps=5, mesh=MODEL_MESH),
        ValueError,
        r"compare: mesh has axes \('model',\), neither 'runs' nor 'data'; name an axis 'runs'",
    ),
    (
        "compare-executor-not-executor",
        lambda: gd.compare(["booth"], ["adam"], steps=5, executor="dask"),
        ValueError,
        r"compare: executor must have a submit\(fn, \*args\) method",
    ),
    (
        "compare-executor-unpicklable",
        lambda: gd.compare([LOCAL_BOOTH], ["adam"], steps=5, executor=UNSTARTED_POOL),
        ValueError,
        r"cannot be pickled .* use a catalogue problem \(gd.problems.get\(name\)\)",
    ),
    (
        "report-folder-unwritable",
        "unwritable",
        ValueError,
        "cannot write the report folder .*; pass a folder you can write to",
    ),
    (
        "report-folder-empty-name",
        lambda: gd.report.check_folder(""),
        ValueError,
        "the report folder is an empty name .*; pass a folder name such as jaxgd-report",
    ),
    (
        "report-folder-current",
        lambda: gd.report.check_folder(os.getcwd()),
        ValueError,
        "is the current folder .*pass a folder of its own",
    ),
    (
        "report-folder-not-a-report",
        "users_report_folder",
        ValueError,
        "holds files and is not a jaxgd report .*never writes over files it did not write: "
        "pass a new or empty folder",
    ),
    (
        "report-results-not-a-comparison",
        "users_json",
        ValueError,
        "is not a jaxgd comparison .*; pass the results.json of a jaxgd report",
    ),
]


# Errors that only a computation can reveal (a curvature's sign, a folder the
# report reaches after the runs, a checkpoint read after the run is set up).
FOUND_BY_COMPUTING = {
    "suggest-lr-not-convex",
    "checkpoint-of-another-run",
    "schedule-turns-negative",  # the schedule's values are computed (one small program)
}


def _special(name):
    if name == "other_run":
        return _other_run_checkpoint()
    if name == "old_npz_file":
        path = pathlib.Path(tempfile.mkdtemp()) / "run.npz"
        path.write_bytes(b"PK\x03\x04 a checkpoint of the older format")
        return lambda: run(checkpoint=path)
    if name == "users_folder":
        folder = pathlib.Path(tempfile.mkdtemp())
        (folder / "notes.txt").write_text("the user's own file")
        return lambda: run(checkpoint=folder)
    if name == "in_use":
        path = os.path.join(tempfile.mkdtemp(), "run.ckpt")

        def while_another_run_holds_it():
            with gd.checkpoint.lock(path):  # flock: a second lock in this process is refused too
                run(checkpoint=path)

        return while_another_run_holds_it
    if name == "garbage_file":
        path = os.path.join(tempfile.mkdtemp(), "run.npz")
        pathlib.Path(path).write_bytes(b"\x00garbage" * 10)
        return lambda: gd.checkpoint.load(path)
    if name == "shape_mismatch":
        path = os.path.join(tempfile.mkdtemp(), "p.npz")
        gd.checkpoint.save(path, {"w": jnp.ones(3)})
        like = {"w": jnp.ones(4)}
        return lambda: gd.checkpoint.load(path, like=like)
    if name == "unwritable":
        folder = _unwritable_dir()
        comparison = gd.compare(["booth"], ["vanilla"], steps=5, seeds=1, learning_rates=[0.1])
        return lambda: gd.report.save(comparison, folder)
    if name == "users_report_folder":
        folder = pathlib.Path(tempfile.mkdtemp()) / "mine"
        folder.mkdir()
        (folder / "report.md").write_text("my own notes")
        return lambda: gd.report.check_folder(folder)
    if name == "users_json":
        path = pathlib.Path(tempfile.mkdtemp()) / "results.json"
        path.write_text('{"schema": "my.own"}')
        return lambda: gd.comparison.load(path)
    raise AssertionError(name)


@pytest.mark.parametrize(
    ("case", "call", "error", "pattern"), CATALOGUE, ids=[c[0] for c in CATALOGUE]
)
def test_bad_input_gets_a_clear_error_before_compiling(case, call, error, pattern, count_compiles):
    if isinstance(call, str):
        call = _special(call)  # needs setup that itself may compile
    with count_compiles() as compiles, pytest.raises(error) as info:
        call()
    message = str(info.value)
    assert re.search(pattern, message, re.S), message
    assert "Traced<" not in message and "tracer" not in message.lower()
    if case not in FOUND_BY_COMPUTING:
        assert compiles.count == 0, f"{case}: compiled {compiles.count} program(s) first"


def test_the_suite_tries_at_least_thirty_distinct_bad_inputs():
    assert len({c[0] for c in CATALOGUE}) == len(CATALOGUE) >= 30


def test_the_error_table_lists_every_case():
    page = pathlib.Path(__file__).parents[1] / "docs" / "guides" / "errors.md"
    listed = re.findall(r"^\| `([a-z0-9-]+)` \|", page.read_text(), re.M)
    assert len(listed) == len(set(listed)), "an id is listed twice"
    assert set(listed) == {c[0] for c in CATALOGUE}


def test_one_nan_run_in_a_sweep_leaves_the_others_alone():
    quad = gd.problems.get("quadratic")
    x0 = quad.init(jax.random.PRNGKey(0))
    results = jax.vmap(lambda lr: gd.minimize(quad.loss, x0, gd.sgd(lr), steps=300))(
        jnp.array([0.005, 0.5, 0.01])
    )
    assert [gd.Status(int(s)).name for s in results.status] == [
        "MAX_STEPS",
        "DIVERGED",
        "MAX_STEPS",
    ]
    assert bool(jnp.all(jnp.isfinite(results.params)))
    assert float(results.loss[0]) < float(quad.loss(x0)) and np.isfinite(float(results.loss[2]))


def test_a_diverging_minibatch_run_keeps_finite_params():
    problem = gd.problems.get("student_marks")
    p0 = problem.init(jax.random.PRNGKey(0))
    result = gd.minimize(
        problem.loss,
        p0,
        gd.sgd(5.0),
        data=problem.data,
        steps=500,
        batch_size=10,
        key=jax.random.PRNGKey(0),
    )
    assert gd.Status(int(result.status)) == gd.Status.DIVERGED
    assert all(bool(jnp.isfinite(v)) for v in result.params.values())


def test_optax_objects_are_still_accepted_where_optimizers_are():
    assert gd.optimizers.is_optimizer(optax.sgd(0.1)) and gd.optimizers.is_optimizer(gd.sgd(0.1))
    assert not gd.optimizers.is_optimizer(gd.sgd)
