"""Checkpointed runs: resumed runs end with the same bits as uninterrupted ones,
also after a SIGKILL at a random moment."""

import dataclasses
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
from helpers import assert_same_bits as _assert_same_bits

import jaxgd as gd
from jaxgd.run import _segments as chunks

PROBLEM = gd.problems.get("student_marks")
P0 = PROBLEM.init(jax.random.PRNGKey(0))
KWARGS = dict(data=PROBLEM.data, steps=120, batch_size=25, key=jax.random.PRNGKey(5))


def test_a_chunked_run_equals_the_one_program_run(tmp_path):
    whole = gd.minimize(PROBLEM.loss, P0, gd.adam(0.05), **KWARGS)
    chunked = gd.minimize(
        PROBLEM.loss,
        P0,
        gd.adam(0.05),
        checkpoint=tmp_path / "run.npz",
        checkpoint_every=25,
        **KWARGS,
    )
    _assert_same_bits(whole, chunked)


def _crash_after_second_save(monkeypatch, run) -> None:
    """``run()`` dies (KeyboardInterrupt) right after its second checkpoint is written."""
    saves, real_save = [], gd.checkpoint.save

    def save_then_crash(*args, **kwargs):
        real_save(*args, **kwargs)
        saves.append(1)
        if len(saves) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(gd.checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(gd.checkpoint, "save", real_save)


def test_an_interrupted_run_resumes_to_the_same_bits(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    reference = gd.minimize(
        PROBLEM.loss,
        P0,
        gd.adam(0.05),
        checkpoint=tmp_path / "ref.npz",
        checkpoint_every=25,
        **KWARGS,
    )
    _crash_after_second_save(
        monkeypatch,
        lambda: gd.minimize(
            PROBLEM.loss, P0, gd.adam(0.05), checkpoint=path, checkpoint_every=25, **KWARGS
        ),
    )
    state = gd.checkpoint.load(path)
    assert int(state[0]) == 50  # the carry's step: two chunks of 25
    resumed = gd.minimize(
        PROBLEM.loss, P0, gd.adam(0.05), checkpoint=path, checkpoint_every=25, **KWARGS
    )
    _assert_same_bits(reference, resumed)


def test_a_finished_checkpoint_returns_the_result_without_running(tmp_path, monkeypatch):
    path = tmp_path / "run.npz"
    first = gd.minimize(PROBLEM.loss, P0, gd.sgd(0.1), checkpoint=path, **KWARGS)

    segment = chunks.next_segment

    def no_more_steps(spec, traced, carry, *args):
        after, finish = segment(spec, traced, carry, *args)
        assert int(after.step) == int(carry.step), "a finished run took another step"
        return after, finish

    monkeypatch.setattr(chunks, "first_segment", None)  # a resumed run never starts afresh
    monkeypatch.setattr(chunks, "next_segment", no_more_steps)
    again = gd.minimize(PROBLEM.loss, P0, gd.sgd(0.1), checkpoint=path, **KWARGS)
    _assert_same_bits(first, again)


def test_progress_bar_reports_every_step(capsys):
    result = gd.minimize(PROBLEM.loss, P0, gd.sgd(0.1), progress=True, **KWARGS)
    err = capsys.readouterr().err
    assert "120/120" in err
    _assert_same_bits(result, gd.minimize(PROBLEM.loss, P0, gd.sgd(0.1), **KWARGS))


CHILD = textwrap.dedent(
    """
    import sys, time
    import jax, numpy as np
    import jaxgd as gd

    real_save = gd.checkpoint.save
    def slow_save(*args, **kwargs):  # stretch the run so the parent can kill it mid-way
        real_save(*args, **kwargs)
        time.sleep(0.05)
    gd.checkpoint.save = slow_save

    problem = gd.problems.get("student_marks")
    result = gd.minimize(
        problem.loss, problem.init(jax.random.PRNGKey(0)), gd.adam(0.05), data=problem.data,
        steps=400, batch_size=25, key=jax.random.PRNGKey(5), record_params=True,
        checkpoint=sys.argv[1], checkpoint_every=10)  # the run of CHILD_RUN, checkpointed
    np.savez(sys.argv[2], *[np.asarray(x) for x in jax.tree.leaves(result)])
    """
)


CHILD_RUN = dict(
    data=PROBLEM.data, steps=400, batch_size=25, key=jax.random.PRNGKey(5), record_params=True
)


def _child(tmp_path, checkpoint, out):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, str(script), str(checkpoint), str(out)], env=env)


def _leaves(path):
    with np.load(path) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


@pytest.mark.slow
def test_a_run_killed_with_sigkill_resumes_to_the_same_bits(tmp_path):
    # The reference: the same run uninterrupted and never checkpointed, in this process.
    problem = gd.problems.get("student_marks")
    reference = gd.minimize(
        problem.loss, problem.init(jax.random.PRNGKey(0)), gd.adam(0.05), **CHILD_RUN
    )
    checkpoint = tmp_path / "run.npz"
    victim = _child(tmp_path, checkpoint, tmp_path / "victim-out.npz")
    try:
        deadline = time.monotonic() + 120
        while not gd.checkpoint.exists(checkpoint):  # a directory; a finished save inside
            assert victim.poll() is None, "the run ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        time.sleep(float(np.random.default_rng(7).uniform(0.0, 0.3)))  # a seeded moment after
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=30) == -signal.SIGKILL
    finally:  # a failed check leaves no process behind
        if victim.poll() is None:
            victim.kill()
            victim.wait()
    step = int(gd.checkpoint.load(checkpoint)[0])
    assert 10 <= step < 400, "the kill should land mid-run"

    resumed = _child(tmp_path, checkpoint, tmp_path / "resumed-out.npz")
    assert resumed.wait(timeout=240) == 0
    # Whatever the kill interrupted, the resumed run cleaned up: one save, no temporaries.
    entries = sorted(p.name for p in checkpoint.iterdir())
    assert len(entries) == 2 and entries[0].isdigit(), entries  # the last save and the marker
    resumed = _leaves(tmp_path / "resumed-out.npz")
    for x, y in zip(jax.tree.leaves(reference), resumed, strict=True):
        np.testing.assert_array_equal(np.asarray(x), y)


@pytest.mark.parametrize(
    ("change", "differs"),
    [
        ({"params": {k: v + 1.0 for k, v in P0.items()}}, "initial_params"),
        ({"loss": lambda p, b: PROBLEM.loss(p, b) * 2.0}, "loss"),
        ({"optimizer": gd.adam(0.01)}, "hyperparameters"),
        ({"key": jax.random.PRNGKey(6)}, "key"),
        ({"data": (PROBLEM.data[0] * 2.0, PROBLEM.data[1])}, "data_values"),
    ],
    ids=["start", "loss", "learning-rate", "key", "data"],
)
def test_a_checkpoint_of_another_run_is_refused(tmp_path, change, differs):
    path = tmp_path / "run.npz"
    args = {"loss": PROBLEM.loss, "params": P0, "optimizer": gd.adam(0.05), **KWARGS}
    run = lambda a: gd.minimize(
        a.pop("loss"),
        a.pop("params"),
        a.pop("optimizer"),
        checkpoint=path,
        checkpoint_every=40,
        **a,
    )
    run(dict(args))
    with pytest.raises(ValueError, match=f"differs in: .*{differs}"):
        run({**args, **change})


def test_optax_hyperparameters_and_schedules_are_fingerprinted(tmp_path):
    loss = lambda p: jnp.sum((p - 1.0) ** 2)
    run = lambda opt, name: gd.minimize(
        loss, jnp.zeros(3), opt, steps=20, checkpoint=tmp_path / name, checkpoint_every=5
    )
    run(optax.sgd(0.1), "optax.npz")
    with pytest.raises(ValueError, match="optimizer"):
        run(optax.sgd(0.01), "optax.npz")
    first = run(gd.sgd(optax.cosine_decay_schedule(0.1, 20)), "schedule.npz")
    again = run(gd.sgd(optax.cosine_decay_schedule(0.1, 20)), "schedule.npz")  # an equal schedule
    _assert_same_bits(first, again)


def test_the_default_checkpoint_every_is_a_tenth_of_the_run(tmp_path, monkeypatch):
    """README: checkpoint_every defaults to ceil(steps / 10): 120 steps save at 12, 24, ..."""
    saved = []
    real_save = gd.checkpoint.save

    def recording_save(path, state, **kwargs):
        saved.append(int(state.step))
        return real_save(path, state, **kwargs)

    monkeypatch.setattr(gd.checkpoint, "save", recording_save)
    gd.minimize(PROBLEM.loss, P0, gd.sgd(0.01), checkpoint=tmp_path / "run", **KWARGS)
    assert saved == list(range(12, 121, 12))


CENTER = 3.0


def _loss_reading_a_global(p):
    return jnp.sum((p - CENTER) ** 2)


class _Bowl:
    """A callable loss object whose field the loss reads (not a pytree: compiled in)."""

    def __init__(self, center):
        self.center = center

    def __call__(self, p):
        return jnp.sum((p - self.center) ** 2)


def test_a_changed_global_the_loss_reads_is_not_resumed(tmp_path, monkeypatch):
    path = tmp_path / "run"
    gd.minimize(_loss_reading_a_global, jnp.zeros(2), gd.sgd(0.1), steps=20, checkpoint=path)
    monkeypatch.setattr(sys.modules[__name__], "CENTER", -5.0)
    with pytest.raises(ValueError, match=r"belongs to another run.*loss_at_start"):
        gd.minimize(_loss_reading_a_global, jnp.zeros(2), gd.sgd(0.1), steps=20, checkpoint=path)


def test_a_changed_field_of_a_callable_loss_is_not_resumed(tmp_path):
    path = tmp_path / "run"
    gd.minimize(_Bowl(3.0), jnp.zeros(2), gd.sgd(0.1), steps=20, checkpoint=path)
    same = gd.minimize(_Bowl(3.0), jnp.zeros(2), gd.sgd(0.1), steps=20, checkpoint=path)
    assert int(same.steps) == 20  # an equal object resumes (here: the finished run)
    with pytest.raises(ValueError, match=r"belongs to another run.*loss_at_start"):
        gd.minimize(_Bowl(-5.0), jnp.zeros(2), gd.sgd(0.1), steps=20, checkpoint=path)


def _tampered(tmp_path, monkeypatch, change):
    """A finished checkpoint whose run state was changed by ``change`` as it was saved."""
    path = tmp_path / "run"
    real_save = gd.checkpoint.save
    with monkeypatch.context() as patch:
        patch.setattr(
            gd.checkpoint, "save", lambda p, state, **kw: real_save(p, change(state), **kw)
        )
        gd.minimize(PROBLEM.loss, P0, gd.sgd(0.01), checkpoint=path, **KWARGS)
    return path


def _longer_history(state):
    h = state.history
    grow = lambda a: jnp.concatenate([a, a[:5]])  # noqa: E731
    return state._replace(
        history=dataclasses.replace(h, loss=grow(h.loss), grad_norm=grow(h.grad_norm))
    )


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s._replace(step=jnp.int32(10**6)), r"its step 1000000 is outside 0\.\.120"),
        (lambda s: s._replace(status=jnp.int32(7)), r"its status 7 is not a Status code"),
        (_longer_history, r"loss.*shape \(125,\) in the checkpoint, \(120,\) expected"),
    ],
    ids=["step-beyond-steps", "status-not-a-code", "history-of-another-length"],
)
def test_a_loaded_state_that_this_run_could_not_have_written_is_refused(
    tmp_path, monkeypatch, change, message
):
    path = _tampered(tmp_path, monkeypatch, change)
    with pytest.raises(ValueError, match=message):
        gd.minimize(PROBLEM.loss, P0, gd.sgd(0.01), checkpoint=path, **KWARGS)


@pytest.mark.parametrize("key", [42, "seed"], ids=["int", "string"])
def test_a_key_that_is_not_a_key_is_refused_with_a_checkpoint(tmp_path, key):
    with pytest.raises(TypeError, match=r"key must be a jax.random key.*PRNGKey\(seed\)"):
        gd.minimize(PROBLEM.loss, P0, gd.sgd(0.01), checkpoint=tmp_path / "run", data=PROBLEM.data,
                    steps=10, key=key)  # fmt: skip


def _bowl_at_one(p):
    return jnp.sum((p - 1.0) ** 2)


def _quartic_too(p):
    return jnp.sum((p - 1.0) ** 2) + jnp.sum(p**4)  # same value and gradient at p = 0


@pytest.mark.parametrize(
    ("first", "second", "differs"),
    [
        (
            (_bowl_at_one, optax.sgd(0.01, momentum=0.9)),
            (_bowl_at_one, optax.sgd(0.01, momentum=0.5)),
            "optimizer_program",
        ),
        ((_bowl_at_one, gd.sgd(0.1)), (_quartic_too, gd.sgd(0.1)), "loss_program"),
        (
            (_bowl_at_one, optax.sgd(0.1)),
            (_bowl_at_one, optax.chain(optax.add_decayed_weights(1e-2), optax.sgd(0.1))),
            "optimizer_program",
        ),
    ],
    ids=["momentum", "loss-equal-at-the-start", "weight-decay-on-zero-params"],
)
def test_a_change_invisible_at_the_start_is_not_resumed(tmp_path, first, second, differs):
    """issue 23: these changed runs agree at p = 0 (value, gradient, first update)."""
    run = lambda loss, opt: gd.minimize(
        loss, jnp.zeros(3), opt, steps=20, checkpoint=tmp_path / "run", checkpoint_every=5
    )
    run(*first)
    assert int(run(*first).steps) == 20  # the same run resumes (here: the finished run)
    with pytest.raises(ValueError, match=f"belongs to another run.*{differs}"):
        run(*second)


def test_a_checkpoint_path_with_a_tilde_is_in_the_home_folder(tmp_path, monkeypatch):
    """issue 23: checkpoint="~/run" is expanded, not a folder named "~"."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "home").mkdir()
    gd.minimize(_bowl_at_one, jnp.zeros(3), gd.sgd(0.1), steps=10, checkpoint="~/run")
    assert gd.checkpoint.exists(tmp_path / "home" / "run")
    assert not (tmp_path / "~").exists()


def test_the_fingerprint_is_the_same_where_jax_colours_its_text(monkeypatch):
    """Inside IPython JAX colours str(jaxpr); a checkpoint started in a notebook must
    resume from a script: the program's text is hashed uncoloured."""
    from jaxgd.run import _fingerprint

    def loss(p):
        return jnp.sum(p**2)

    before = _fingerprint._program(loss, jnp.ones(3))
    jaxpr_type = type(jax.make_jaxpr(loss)(jnp.ones(3)).jaxpr)
    real = jaxpr_type.pretty_print
    monkeypatch.setattr(jaxpr_type, "__str__", lambda self: real(self, use_color=True))
    assert "\x1b[" in str(jax.make_jaxpr(loss)(jnp.ones(3)).jaxpr)  # coloured, as in IPython
    assert _fingerprint._program(loss, jnp.ones(3)) == before


def _noisy_bowl(p, state):
    """A loss whose model state holds a typed PRNG key (as a Flax NNX model's dropout
    key) beside a counter; it returns the next state."""
    key, sub = jax.random.split(state["rngs"])
    value = jnp.sum((p - 3.0) ** 2) + 0.01 * jnp.sum(jax.random.normal(sub, p.shape) * p)
    return value, {"rngs": key, "count": state["count"] + 1}


def _keyed_state(seed=0, impl="threefry2x32"):
    return {"rngs": jax.random.key(seed, impl=impl), "count": jnp.zeros((), jnp.int32)}


def _same_bits_with_keys(a, b):
    is_key = lambda x: jnp.issubdtype(x.dtype, jax.dtypes.prng_key)  # noqa: E731
    unkeyed = lambda t: jax.tree.map(  # noqa: E731
        lambda x: (str(x.dtype), jax.random.key_data(x)) if is_key(x) else x, t
    )
    _assert_same_bits(unkeyed(a), unkeyed(b))


def test_a_run_whose_state_holds_a_typed_key_resumes_to_the_same_bits(tmp_path, monkeypatch):
    """Issue: typed keys in state= broke the fingerprint and the checkpoint."""
    run = lambda path, **kw: gd.minimize(  # noqa: E731
        _noisy_bowl, jnp.zeros(2), gd.sgd(0.01), steps=100, state=_keyed_state(),
        checkpoint=path, checkpoint_every=20, **kw,
    )  # fmt: skip
    reference = gd.minimize(_noisy_bowl, jnp.zeros(2), gd.sgd(0.01), steps=100,
                            state=_keyed_state())  # fmt: skip
    assert jnp.issubdtype(reference.state["rngs"].dtype, jax.dtypes.prng_key)
    assert int(reference.state["count"]) == 100
    path = tmp_path / "run"
    _crash_after_second_save(monkeypatch, lambda: run(path))
    saved = gd.checkpoint.load(path)
    assert int(saved[0]) == 40  # the carry's step: two segments of 20
    resumed = run(path)
    _same_bits_with_keys(reference, resumed)
    assert jax.random.key_impl(resumed.state["rngs"]) == "threefry2x32"
    _same_bits_with_keys(resumed, run(path))  # the finished checkpoint returns it again


@pytest.mark.parametrize(
    ("first", "other"),
    [
        (_keyed_state(), _keyed_state(seed=1)),
        (_keyed_state(), _keyed_state(impl="rbg")),
        (_keyed_state(impl="rbg"), _keyed_state(impl="unsafe_rbg")),  # the same key data
    ],
    ids=["another-key", "another-implementation", "same-data-another-implementation"],
)
def test_a_run_from_another_typed_key_is_refused(tmp_path, first, other):
    run = lambda state: gd.minimize(  # noqa: E731
        _noisy_bowl, jnp.zeros(2), gd.sgd(0.01), steps=20, state=state,
        checkpoint=tmp_path / "run", checkpoint_every=5,
    )  # fmt: skip
    done = run(first)
    _same_bits_with_keys(done, run(first))  # the same run resumes (here: the finished run)
    with pytest.raises(ValueError, match=r"belongs to another run \(it differs in: .*\bstate\b"):
        run(other)


def test_the_fingerprint_of_a_typed_key_is_its_data_and_implementation():
    from jaxgd.run import _fingerprint

    fry, rbg, urbg = (jax.random.key(0, impl=i) for i in ("threefry2x32", "rbg", "unsafe_rbg"))
    assert np.array_equal(jax.random.key_data(rbg), jax.random.key_data(urbg))  # same data
    digests = [_fingerprint.digest({"k": k, "w": jnp.ones(2)}) for k in (fry, rbg, urbg)]
    assert len(set(digests)) == 3
    assert _fingerprint.digest({"k": jax.random.key(0), "w": jnp.ones(2)}) == digests[0]
    assert _fingerprint.digest({"k": jax.random.key(1), "w": jnp.ones(2)}) != digests[0]
    # Other leaves count as before: a raw key's digest is its data's.
    raw = jax.random.key_data(fry)
    assert _fingerprint.digest(raw) != _fingerprint.digest(fry)
    assert _fingerprint.digest(raw) == _fingerprint.digest(np.asarray(raw))
