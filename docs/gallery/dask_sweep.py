# %% [markdown]
# # A sweep spread over a Dask cluster
#
# `gd.compare(..., executor=client)` cuts a comparison into jobs (one
# optimizer on one problem) and runs them on a Dask cluster's workers. This
# page starts a real `distributed.LocalCluster` on localhost, two worker
# processes, runs a comparison on it and the same comparison in one process:
# their `results.json` are equal apart from the timing fields. Then one kept
# job is lost, and a rerun with the same `job_folder` submits that job alone.

# %%
import json
import pathlib
import subprocess
import sys
import tempfile

import distributed
import jaxgd as gd
import matplotlib.pyplot as plt
from IPython.display import Markdown, display

# %% [markdown]
# ## The cluster
#
# Dask starts each worker as a fresh (spawned) Python process. A spawned
# process imports the main script again, so a script that starts a
# `LocalCluster` at its top level must do it under
# `if __name__ == "__main__":`. This page runs both as a notebook and as a
# script, so it starts the cluster in a small process of its own, as a
# cluster usually runs: apart from the program that uses it. That process
# prints the scheduler's address and keeps the cluster until its input is
# closed.

# %%
CLUSTER = """
import logging
import sys

import distributed

with distributed.LocalCluster(
    n_workers=2,              # two worker processes
    threads_per_worker=1,     # one job at a time each
    processes=True,
    host="127.0.0.1",
    dashboard_address=None,   # no dashboard
    silence_logs=logging.ERROR,  # quiet
) as cluster:
    print(cluster.scheduler_address, flush=True)
    sys.stdin.read()          # until the page closes this process's input
"""
cluster = subprocess.Popen(
    [sys.executable, "-c", CLUSTER],
    stdin=subprocess.PIPE,
    stdout=subprocess.PIPE,
    text=True,
)
address = cluster.stdout.readline().strip()
assert address, "the cluster did not start"
client = distributed.Client(address)
client.wait_for_workers(2)
workers = sorted(client.scheduler_info()["workers"])
print(address, "with", len(workers), "workers")
assert address.startswith("tcp://127.0.0.1:") and len(workers) == 2

# %% [markdown]
# From the command line, the same cluster is
# `jaxgd compare --executor dask://127.0.0.1:PORT` (the scheduler's address,
# `tcp://` spelled `dask://`).
#
# ## The sweep on the cluster
#
# Two problems, two optimizers: each problem's tuning jobs (one per
# optimizer, its whole grid of rates and seeds), then, once the rates are
# chosen here from the merged tuning runs, its evaluation jobs. `compare` only
# calls the executor's `submit`; a thin wrapper counts the jobs it submits.
# Each finished job is kept in `job_folder`.

# %%
PROBLEMS, OPTIMIZERS = ["booth", "student_marks"], ["vanilla", "adam"]
KW = dict(learning_rates=[0.01, 0.1, 0.5], seeds=2, eval_seeds=4, steps=40)


class Counting:
    """The client, counting the jobs submitted to it."""

    def __init__(self, client):
        self.client, self.submitted, self.jobs = client, 0, {}

    def submit(self, fn, *args):
        self.submitted += 1
        future = self.client.submit(fn, *args)
        self.jobs[future.key] = args[0]  # the job, by its Dask task's key
        return future


jobs = pathlib.Path(tempfile.mkdtemp()) / "jobs"
counting = Counting(client)
with distributed.get_task_stream(client) as stream:
    on_dask = gd.compare(
        PROBLEMS, OPTIMIZERS, executor=counting, job_folder=jobs, **KW
    )
kept = sorted(jobs.glob("*.npz"))
ran_on = {task["worker"] for task in stream.data}
print(
    f"{counting.submitted} jobs submitted, {len(kept)} kept, "
    f"run by {len(ran_on)} workers"
)
# 2 problems x 2 optimizers x 2 rounds (tuning, evaluation)
assert counting.submitted == len(kept) == 8
assert len(stream.data) == 8 and ran_on == set(workers)

# %% [markdown]
# ## The same comparison in one process
#
# The numbers are the same bit for bit: with the default blocks a job runs the
# program a one-process run runs, on arrays of the same shape. What differs is
# what a clock says. Below: every field in which the two `results.json`
# differ, each one a clock's (its name ends in `seconds`, `_per_step`,
# `per_run_step` or `created`), and the rest compared whole once those fields
# are removed, the rule of `tests/comparison/test_jobs.py`.

# %%
alone = gd.compare(PROBLEMS, OPTIMIZERS, **KW)

# What a clock says: the fields whose names end so.
TIMING = ("seconds", "_per_step", "per_run_step", "created")


def numbers(result) -> dict:
    """results.json without its timing fields."""

    def strip(x):
        if isinstance(x, dict):
            return {
                k: strip(v) for k, v in x.items() if not k.endswith(TIMING)
            }
        if isinstance(x, list):
            return [strip(v) for v in x]
        return x

    return strip(json.loads(result.to_json()))


def differences(a, b, path="") -> set:
    """Where two results.json differ, a list's items written ``[]``."""
    if isinstance(a, dict) and isinstance(b, dict) and a.keys() == b.keys():
        return {d for k in a for d in differences(a[k], b[k], f"{path}.{k}")}
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return {
            d
            for x, y in zip(a, b, strict=True)
            for d in differences(x, y, f"{path}[]")
        }
    return set() if a == b else {path[1:]}


def final_losses(numbers) -> tuple[list, list]:
    """Every run's final loss: the tuning grids', the evaluation seeds'."""
    problems = numbers["problems"]
    tuning = [r["final_loss"] for p in problems for r in p["runs"]]
    evaluation = [
        r["final_loss"]
        for p in problems
        for e in p["evaluation"].values()
        for r in e["runs"]
    ]
    return tuning, evaluation


differ = sorted(
    differences(json.loads(on_dask.to_json()), json.loads(alone.to_json()))
)
display(Markdown("Fields that differ: " + ", ".join(f"`{d}`" for d in differ)))
assert differ and all(d.endswith(TIMING) for d in differ)
assert numbers(on_dask) == numbers(alone)
tuning, evaluation = final_losses(numbers(alone))
print(
    f"{len(tuning) + len(evaluation)} runs ({len(tuning)} tuning, "
    f"{len(evaluation)} evaluation), every number equal"
)
assert len(tuning) == 2 * 2 * 3 * 2  # problems x optimizers x rates x seeds
assert len(evaluation) == 2 * 2 * 4  # problems x optimizers x eval seeds
assert final_losses(numbers(on_dask)) == (tuning, evaluation)

# %% [markdown]
# Left, each job on the worker that ran it: the tuning jobs (named), then,
# once the rates are chosen, the evaluation jobs. Right, every run's final
# loss on the cluster against the same run's in one process.

# %%
rounds = [
    counting.jobs[t["key"]].seeds[0] == tuple(range(KW["seeds"]))
    for t in stream.data
]
assert rounds.count(True) == rounds.count(False) == 4  # tuning, evaluation
fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
start = min(s["start"] for t in stream.data for s in t["startstops"])
for task in stream.data:
    job = counting.jobs[task["key"]]
    is_tuning = job.seeds[0] == tuple(range(KW["seeds"]))
    row = workers.index(task["worker"])
    for s in task["startstops"]:
        if s["action"] == "compute":
            t0, t1 = s["start"] - start, s["stop"] - start
            color = "C0" if is_tuning else "C1"
            left.barh(row, t1 - t0, left=t0, color=color, edgecolor="w")
            left.plot([t0], [row], "|", color=color, ms=30)  # a short one too
            if is_tuning:
                name = f"{job.problem[0]}\n{job.label}"
                left.text((t0 + t1) / 2, row, name, ha="center", va="center")
left.plot([], [], "s", color="C0", label="tuning")
left.plot([], [], "s", color="C1", label="evaluation")
left.legend(loc="upper left", ncol=2, fontsize="small")
left.set_yticks(range(2), ["worker 1", "worker 2"])
left.set_ylim(-0.6, 2.0)
left.margins(x=0.05)
left.set(
    xlabel="seconds from the first job", title="The 8 jobs on the two workers"
)
for name, alone_losses, dask_losses in [
    ("tuning", tuning, final_losses(numbers(on_dask))[0]),
    ("evaluation", evaluation, final_losses(numbers(on_dask))[1]),
]:
    right.loglog(alone_losses, dask_losses, "o", ms=4, label=name)
right.legend()
right.set(
    xlabel="final loss, one process",
    ylabel="final loss, on the cluster",
    title=f"The {len(tuning) + len(evaluation)} runs: equal",
)
plt.show()

# %% [markdown]
# ## A lost job, redone alone
#
# A worker that dies takes its job with it (`compare` submits a failed job
# again, twice); a pool or a session that dies loses whatever had not
# finished. Here one kept job is deleted, as if it had never finished. The
# rerun with the same `job_folder` loads the seven others and submits one.

# %%
kept[0].unlink()
again = Counting(client)
rerun = gd.compare(PROBLEMS, OPTIMIZERS, executor=again, job_folder=jobs, **KW)
loaded = len(kept) - again.submitted
print(f"rerun: {again.submitted} job submitted, {loaded} loaded")
assert again.submitted == 1 and loaded == 7
assert len(list(jobs.glob("*.npz"))) == 8  # the lost job kept again
assert numbers(rerun) == numbers(alone)

# %% [markdown]
# ## Closing
#
# The client disconnects; closing the cluster process's input ends its `with`
# block, which closes the workers and the scheduler, and the process ends.

# %%
client.close()
cluster.stdin.close()
assert cluster.wait(timeout=60) == 0
