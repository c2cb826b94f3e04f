"""``save`` and the lock: a save to the checkpoint of a live run (another process's, or
another thread's of this process) is refused and changes nothing; the run's own saves,
made inside its ``lock`` block, go on; a save outside any block holds the lock for the
time of its write; the checkpoint of a finished run is nobody's."""

from __future__ import annotations

import json
import os
import socket
import threading

import jax.numpy as jnp
import orbax.checkpoint as ocp
import pytest
from helpers import assert_same_bits
from test_checkpoint import _holder, _temporaries

import jaxgd as gd
from jaxgd import checkpoint


def _in_another_thread(fn):
    """What ``fn()`` returns, or the exception it raises, called in a thread of its own."""
    out = []

    def call():
        try:
            out.append(fn())
        except Exception as err:  # handed back to the test
            out.append(err)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join(timeout=120)
    assert not thread.is_alive()
    return out[0]


def test_a_save_while_another_process_holds_the_lock_is_refused(tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    checkpoint.save(path, {"w": jnp.ones(3)}, metadata={"save": 1})
    child = _holder(tmp_path, path)  # a live run, in a process of its own
    try:
        with pytest.raises(checkpoint.CheckpointInUseError) as info:
            checkpoint.save(path, {"w": jnp.zeros(3)}, metadata={"save": 2})
        assert isinstance(info.value, ValueError)
        assert f"in use by process {child.pid} on {socket.gethostname()}" in str(info.value)
        assert "wait for that run to end" in str(info.value)
        # Nothing was written, and the holder's lock is untouched.
        assert checkpoint.load_metadata(path) == {"save": 1}
        assert_same_bits(checkpoint.load(path)["w"], jnp.ones(3))
        assert _temporaries(path) == []
        assert json.loads((path / "jaxgd.lock").read_text())["pid"] == child.pid
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "RELEASED"
        assert child.wait(timeout=60) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    checkpoint.save(path, {"w": jnp.zeros(3)}, metadata={"save": 2})  # the run is over
    assert checkpoint.load_metadata(path) == {"save": 2}


def test_only_the_thread_holding_the_lock_saves_there(tmp_path) -> None:
    path = tmp_path / "run.ckpt"
    with checkpoint.lock(path):
        checkpoint.save(path, {"w": jnp.ones(3)}, metadata={"save": 1})  # the run's own
        checkpoint.save(path, {"w": jnp.full(3, 2.0)}, metadata={"save": 2})
        refused = _in_another_thread(lambda: checkpoint.save(path, {"w": jnp.zeros(3)}))
        assert isinstance(refused, checkpoint.CheckpointInUseError)
        assert f"in use by process {os.getpid()}" in str(refused)
        assert checkpoint.load_metadata(path) == {"save": 2}
        assert json.loads((path / "jaxgd.lock").read_text())["pid"] == os.getpid()
    assert not (path / "jaxgd.lock").exists()
    # Once the block is left, any thread saves (and takes the lock only while it writes).
    done = _in_another_thread(lambda: checkpoint.save(path, {"w": jnp.zeros(3)}))
    assert done == path and not (path / "jaxgd.lock").exists()
    assert_same_bits(checkpoint.load(path)["w"], jnp.zeros(3))


def test_a_save_holds_the_lock_while_it_writes(tmp_path, monkeypatch) -> None:
    path = checkpoint.save(tmp_path / "run.ckpt", {"w": jnp.ones(3)})
    writing, go_on = threading.Event(), threading.Event()
    real = ocp.JsonCheckpointHandler.async_save

    async def held_mid_save(self, *args, **kwargs):  # inside orbax's temporary directory
        writing.set()
        assert go_on.wait(timeout=60)
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(ocp.JsonCheckpointHandler, "async_save", held_mid_save)
    saver = threading.Thread(target=checkpoint.save, args=(path, {"w": jnp.full(3, 2.0)}))
    saver.start()
    try:
        assert writing.wait(timeout=60)
        refused = pytest.raises(checkpoint.CheckpointInUseError, match=str(os.getpid()))
        with refused, checkpoint.lock(path):  # a run starting now is refused
            pass
        assert len(_temporaries(path)) == 1  # and the save in progress is left alone
    finally:
        go_on.set()
        saver.join(timeout=60)
    assert not saver.is_alive()
    assert _temporaries(path) == [] and not (path / "jaxgd.lock").exists()
    assert_same_bits(checkpoint.load(path)["w"], jnp.full(3, 2.0))


def _bowl(p):
    return jnp.sum((p - 3.0) ** 2)


def test_a_live_run_in_another_thread_keeps_its_checkpoint(tmp_path, monkeypatch) -> None:
    """A save from another thread while minimize(checkpoint=) runs in this process is
    refused; the run's own saves go on and it ends with the bits of a run without one."""
    path = tmp_path / "run"
    reference = gd.minimize(_bowl, jnp.zeros(2), gd.sgd(0.01), steps=40)
    real_save = gd.checkpoint.save
    intruders = []

    def save_and_intrude(where, state, **kwargs):  # called by the run, holding the lock
        real_save(where, state, **kwargs)
        intruders.append(_in_another_thread(lambda: real_save(where, {"w": jnp.zeros(3)})))

    monkeypatch.setattr(gd.checkpoint, "save", save_and_intrude)
    result = gd.minimize(
        _bowl, jnp.zeros(2), gd.sgd(0.01), steps=40, checkpoint=path, checkpoint_every=10
    )
    assert len(intruders) == 4
    assert all(isinstance(e, checkpoint.CheckpointInUseError) for e in intruders), intruders
    assert all(f"in use by process {os.getpid()}" in str(e) for e in intruders)
    assert_same_bits(result, reference)
    assert int(checkpoint.load(path)[0]) == 40  # the run's last state, its step first


def test_a_save_over_a_finished_run_replaces_it_and_is_not_resumed(tmp_path) -> None:
    """A finished run holds nothing: a save replaces its checkpoint (save overwrites, as
    documented), and minimize refuses to resume the replaced one."""
    path = tmp_path / "run"
    gd.minimize(_bowl, jnp.zeros(2), gd.sgd(0.01), steps=20, checkpoint=path)
    checkpoint.save(path, {"a": jnp.zeros(3)})
    assert_same_bits(checkpoint.load(path), {"a": jnp.zeros(3)})
    with pytest.raises(ValueError, match="belongs to another run.*delete it or pass another"):
        gd.minimize(_bowl, jnp.zeros(2), gd.sgd(0.01), steps=20, checkpoint=path)
