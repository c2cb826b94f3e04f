"""compare(executor=...): content-keyed jobs on an executor, merged to one process's numbers.

The merged comparison's ``results.json`` must equal a one-process run's but for
the timing fields. In this process: an executor that runs each job at once
(the merge, the blocks, the job store); slow: a pool of spawned processes, and
a real Dask scheduler with two worker processes on localhost, one of them
killed mid-sweep.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import multiprocessing
import os
import signal
import threading
import time

import jax.numpy as jnp
import pytest

import jaxgd as gd

KW = dict(learning_rates=[0.01, 0.1, 0.5], seeds=2, eval_seeds=4, steps=40)
# booth and beale share a program (jaxgd/comparison/_groups.py program_groups): so do their jobs
PROBLEMS, OPTIMIZERS = ["booth", "student_marks", "beale"], ["vanilla", "adam"]
TIMING = ("seconds", "_per_step", "per_run_step", "created")  # what a clock says


def numbers(result) -> dict:
    """results.json without its timing fields."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if not k.endswith(TIMING)}
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads(result.to_json()))


class Here:
    """An executor that runs each job at once, in this process, counting them."""

    def __init__(self):
        self.submitted = 0

    def submit(self, fn, *args):
        self.submitted += 1
        future = concurrent.futures.Future()
        future.set_result(fn(*args))
        return future


@pytest.fixture(scope="module")
def one_process():
    return numbers(gd.compare(PROBLEMS, OPTIMIZERS, **KW))


def test_jobs_merge_to_one_process_numbers_and_a_rerun_redoes_only_missing_jobs(
    one_process, tmp_path
):
    here = Here()
    merged = gd.compare(PROBLEMS, OPTIMIZERS, executor=here, job_folder=tmp_path, **KW)
    assert numbers(merged) == one_process  # bit for bit
    assert here.submitted == 12  # 3 problems x 2 optimizers, tuning then evaluation
    kept = sorted(tmp_path.glob("*.npz"))
    assert len(kept) == 12
    kept[0].unlink()  # a job lost with its worker
    again = Here()
    rerun = gd.compare(PROBLEMS, OPTIMIZERS, executor=again, job_folder=tmp_path, **KW)
    assert again.submitted == 1 and numbers(rerun) == one_process


def test_smaller_blocks_equal_one_process_to_round_off(one_process):
    """A block of one rate is vmapped alone, which XLA compiles differently: some
    float32 round-off (measured ~1e-6 relative), the same choices."""
    here = Here()
    merged = numbers(gd.compare(PROBLEMS, OPTIMIZERS, executor=here, blocks=(2, 1), **KW))
    assert here.submitted == 3 * 2 * 2 * 2 + 6  # rate blocks x seed blocks, then evaluation
    for got, want in zip(merged["problems"], one_process["problems"], strict=True):
        assert got["chosen_learning_rates"] == want["chosen_learning_rates"]
        for a, b in zip(got["runs"], want["runs"], strict=True):
            assert a["final_loss"] == pytest.approx(b["final_loss"], rel=1e-5)
            assert a["status"] == b["status"]


def test_a_loss_that_cannot_be_pickled_is_refused_before_running():
    booth = gd.problems.get("booth")
    local = dataclasses.replace(booth, loss=lambda p: jnp.sum(p**2))
    pool = concurrent.futures.ProcessPoolExecutor(1)  # no process starts before a submit
    with pytest.raises(ValueError, match=r"cannot be pickled.*catalogue problem"):
        gd.compare([local], ["vanilla"], executor=pool, **KW)
    pool.shutdown()
    with pytest.raises(ValueError, match="submit"):
        gd.compare(["booth"], ["vanilla"], executor=object(), **KW)


BAD_BLOCKS = [(0, 0), (-1, 1), (2, 0), (1.5, 1), (True, 1), (2,), (1, 2, 3), "x", "ab", 3]


@pytest.mark.parametrize("blocks", BAD_BLOCKS, ids=repr)
def test_bad_blocks_are_refused_naming_the_argument_before_anything_runs(blocks, count_compiles):
    here = Here()
    with count_compiles() as compiles, pytest.raises(ValueError) as err:
        gd.compare(["booth"], ["adam"], executor=here, blocks=blocks, **KW)
    assert "compare: blocks must be (rates, seeds)" in str(err.value)
    assert "two integers >= 1" in str(err.value) and f"got {blocks!r}" in str(err.value)
    assert here.submitted == 0 and compiles.count == 0


def test_blocks_without_an_executor_are_refused_not_ignored(count_compiles):
    with count_compiles() as compiles, pytest.raises(ValueError) as err:
        gd.compare(["booth"], ["adam"], blocks=(3, 2), **KW)
    assert "blocks=(3, 2)" in str(err.value) and "pass executor=" in str(err.value)
    assert compiles.count == 0


def test_blocks_above_the_grid_are_the_whole_grid():
    here = Here()
    gd.compare(["booth"], ["adam"], executor=here, blocks=[99, 99], **KW)
    assert here.submitted == 2  # one tuning job, one evaluation job, as with blocks=None


@pytest.mark.slow
def test_a_process_pool_gives_one_process_numbers(one_process):
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=context) as pool:
        merged = gd.compare(PROBLEMS, OPTIMIZERS, executor=pool, **KW)
    assert numbers(merged) == one_process


@pytest.mark.slow
def test_dask_with_a_worker_killed_mid_sweep_gives_one_process_numbers(one_process):
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        killed = []

        def kill_a_busy_worker():
            deadline = time.monotonic() + 300
            while time.monotonic() < deadline and not killed:
                busy = [w for w, keys in client.processing().items() if keys and w in pids]
                if busy:
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.2)

        killer = threading.Thread(target=kill_a_busy_worker, daemon=True)
        killer.start()
        merged = gd.compare(PROBLEMS, OPTIMIZERS, executor=client, **KW)
        killer.join(timeout=5)
    assert killed  # a worker died while it held a job
    assert numbers(merged) == one_process
