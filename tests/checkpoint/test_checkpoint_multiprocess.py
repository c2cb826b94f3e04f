"""Checkpoints of two-process runs (two processes on 127.0.0.1, gloo CPU collectives).

Each test starts tests/workers/checkpoint_worker.py as two processes that join with
``gd.distributed.initialize`` and share a checkpoint directory, and compares what
they print. Bits are compared exactly: a checkpoint is a copy, not a computation.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from test_checkpoint import _holder as hold_the_lock  # a sibling test module

from jaxgd import checkpoint
from jaxgd.distributed import launch_local

ROOT = Path(__file__).resolve().parents[2]
WORKER = str(ROOT / "tests" / "workers" / "checkpoint_worker.py")
ENV = {"JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT)}


def _results(procs) -> list[dict]:
    out = []
    for r in procs:
        lines = [line for line in r.stdout.splitlines() if line.startswith("RESULTS ")]
        assert r.returncode == 0 and lines, f"process {r.process_id}:\n{r.stdout}\n{r.stderr}"
        out.append(json.loads(lines[-1][len("RESULTS ") :]))
    return sorted(out, key=lambda r: r["process"])


def _two(*args: str, timeout: float = 180) -> list[dict]:
    procs = launch_local([sys.executable, WORKER, *args], 2, timeout=timeout, env=ENV)
    return _results(procs)


def test_two_processes_save_and_restore_sharded_and_replicated_arrays(tmp_path: Path) -> None:
    path = tmp_path / "run.ckpt"
    a, b = _two("roundtrip", str(path))
    for r in (a, b):
        assert r["restored"] == r["saved"]  # every shard this process holds, bit for bit
        assert r["same_shardings"]
        assert r["lr"] == np.float32(0.1)
        assert r["metadata"] == {"save": 2}
    assert a["saved"] != b["saved"]  # each process held other rows
    assert a["holder"] == a["pid"]  # process 0 holds the run's one lock
    assert a["entries"] == b["entries"] == ["1", "jaxgd-checkpoint", "jaxgd.lock"]
    assert not (path / "jaxgd.lock").exists()  # released when the run ended
    # One process can read what two wrote (the whole arrays, on its own device).
    whole = checkpoint.load(path)
    rows = np.arange(8 * 3, dtype=np.float32).reshape(8, 3) / 7
    np.testing.assert_array_equal(np.asarray(whole["rows"]), rows)
    np.testing.assert_array_equal(np.asarray(whole["table"]), np.arange(6))


def test_both_processes_of_a_second_run_are_refused(tmp_path: Path) -> None:
    """Process 0 finds the lock taken and tells process 1: both raise, neither hangs."""
    path = tmp_path / "run.ckpt"
    holder = hold_the_lock(tmp_path, path)  # another run, in a process of its own
    try:
        a, b = _two("locked", str(path))
    finally:
        holder.kill()
        holder.wait()
    assert f"in use by process {holder.pid}" in a["error"]
    assert "could not be locked by process 0" in b["error"]
    assert f"process {holder.pid}" in b["error"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_two(args: list[str]) -> list[subprocess.Popen]:
    port = _free_port()
    env = {**os.environ, **ENV, "JAXGD_COORDINATOR": f"127.0.0.1:{port}"}
    env.update(JAXGD_NUM_PROCESSES="2", JAXGD_CPU_DEVICES="1")
    env.pop("XLA_FLAGS", None)
    return [
        subprocess.Popen(
            [sys.executable, WORKER, *args],
            env={**env, "JAXGD_PROCESS_ID": str(rank)},
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        for rank in range(2)
    ]


@pytest.mark.slow
def test_a_killed_two_process_run_resumes_to_the_same_bits(tmp_path: Path) -> None:
    """Both processes checkpoint; one is killed with SIGKILL after a few saves (the other
    then stops too: its collectives lose their peer); both restart and end with the bits
    of an uninterrupted two-process run (which the restarted processes run next, from a
    checkpoint path of its own)."""
    path = tmp_path / "run.ckpt"
    procs = _start_two(["minimize", str(path), "slow"])
    try:
        saves = 0
        while saves < 3:  # process 0 reports each finished save
            line = procs[0].stdout.readline()
            assert line, "the run ended before its third checkpoint"
            saves += line.startswith("SAVED")
        time.sleep(float(np.random.default_rng(11).uniform(0.0, 0.3)))  # seeded moment
        procs[1].send_signal(signal.SIGKILL)
        assert procs[1].wait(timeout=60) == -signal.SIGKILL
        try:  # the survivor stops at its next collective, or waits on its dead peer:
            procs[0].wait(timeout=5)  # a launcher would end the job, as we do here
        except subprocess.TimeoutExpired:
            procs[0].kill()
            procs[0].wait()
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    step = int(checkpoint.load(path)[0])
    assert 30 <= step < 120, "the kill should land mid-run"

    resumed = _two("minimize", str(path), "then", str(tmp_path / "reference.ckpt"), timeout=400)
    for got in resumed:
        assert got["leaves"] == got["reference_leaves"]
        assert got["digests"] == got["reference_digests"]
    assert resumed[0]["leaves"] == resumed[1]["leaves"]


def test_processes_that_would_cut_other_segments_take_process_0s(tmp_path: Path) -> None:
    """Each process times its own segments; process 1 here would cut one step a segment.
    Segments of other lengths would leave each process waiting on the other's collectives
    for ever (a hang the killed-run test met under load): every process takes process
    0's."""
    ref = str(tmp_path / "reference.ckpt")
    got = _two("minimize", str(tmp_path / "run.ckpt"), "skewed", "then", ref, timeout=240)
    for r in got:
        assert r["leaves"] == r["reference_leaves"]
    assert got[0]["leaves"] == got[1]["leaves"]
