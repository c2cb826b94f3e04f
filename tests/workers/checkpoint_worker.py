"""One process of a two-process checkpoint test (started by test_checkpoint_multiprocess.py).

    python tests/workers/checkpoint_worker.py MODE PATH [slow] [skewed] [then PATH2]

MODE is ``roundtrip`` (save and restore replicated and row-sharded arrays under the
lock), ``locked`` (expect the lock to be held by another run), or ``minimize`` (a
checkpointed two-process ``gd.minimize`` over a mesh; with ``slow`` each save is
followed by a pause, so that the test can kill the run mid-way; with ``skewed`` process 1
would cut its segments otherwise than process 0 (as two clocks do); with ``then PATH2`` the
same run follows, uninterrupted, checkpointed to PATH2: the reference, reported as
``reference_leaves`` and ``reference_digests``). The process prints one line
``RESULTS {json}`` for the test to read.
"""

import hashlib
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

import jaxgd as gd
from jaxgd import checkpoint


def shard_digests(tree):
    """SHA-256 of each addressable shard's bytes, with its index, leaf by leaf."""
    out = []
    for leaf in jax.tree.leaves(tree):
        if isinstance(leaf, jax.Array):
            for shard in sorted(leaf.addressable_shards, key=lambda s: str(s.index)):
                data = np.asarray(shard.data)
                out.append([str(shard.index), str(data.dtype), hashlib.sha256(data).hexdigest()])
        else:
            out.append(["numpy", str(leaf.dtype), hashlib.sha256(np.asarray(leaf)).hexdigest()])
    return out


def report(**values):
    values = {"process": jax.process_index(), "pid": os.getpid(), **values}
    print("RESULTS " + json.dumps(values), flush=True)


def roundtrip():
    mesh = gd.distributed.data_mesh()
    me = jax.process_index()
    rows = np.arange(8 * 3, dtype=np.float32).reshape(8, 3) / 7  # 4 rows per process
    local = rows[4 * me : 4 * (me + 1)]
    row_sharded = NamedSharding(mesh, P("data"))
    replicated = NamedSharding(mesh, P())
    state = {
        "rows": jax.make_array_from_process_local_data(row_sharded, local),
        "bf16_rows": jax.make_array_from_process_local_data(
            row_sharded, local.astype(jnp.bfloat16)
        ),
        "params": jax.make_array_from_process_local_data(replicated, np.linspace(-1, 1, 5)),
        "step": jax.jit(lambda: jnp.int32(40), out_shardings=replicated)(),
        "lr": 0.1,  # a Python scalar
        "table": np.arange(6, dtype=np.int64),  # a host array, written once
    }
    holder = None
    with checkpoint.lock(PATH) as directory:
        if me == 0:
            holder = json.loads((directory / "jaxgd.lock").read_text())["pid"]
        checkpoint.save(PATH, jax.tree.map(jnp.zeros_like, state), metadata={"save": 1})
        checkpoint.save(PATH, state, metadata={"save": 2})
        like = jax.tree.map(lambda x: jnp.zeros_like(x) if isinstance(x, jax.Array) else x, state)
        restored = checkpoint.load(PATH, like=like)
        entries = sorted(p.name for p in directory.iterdir())
    same_shardings = all(
        r.sharding == s.sharding
        for r, s in zip(jax.tree.leaves(restored), jax.tree.leaves(state), strict=True)
        if isinstance(s, jax.Array)
    )
    report(
        saved=shard_digests({k: v for k, v in state.items() if k != "lr"}),
        restored=shard_digests({k: v for k, v in restored.items() if k != "lr"}),
        lr=float(restored["lr"]),
        same_shardings=same_shardings,
        metadata=checkpoint.load_metadata(PATH),
        holder=holder,
        entries=entries,
    )


def locked():
    try:
        with checkpoint.lock(PATH):
            report(error=None)
    except checkpoint.CheckpointInUseError as err:
        report(error=str(err))


def minimize():
    if SLOW:
        real_save = checkpoint.save

        def slow_save(*args, **kwargs):  # stretch the run so the test can kill it mid-way
            real_save(*args, **kwargs)
            print(f"SAVED {time.time()}", flush=True)
            time.sleep(0.3)

        checkpoint.save = slow_save
    if SKEWED and jax.process_index() == 1:  # this process would cut other segments
        from jaxgd.run import _segments

        _segments.first_length = lambda *args, **kwargs: 3
        _segments.SEGMENT_SECONDS = 0.0  # then one step a segment
    mesh = gd.distributed.data_mesh()
    problem = gd.problems.get("student_marks")
    rows = gd.distributed.process_rows(200, mesh)
    data = jax.tree.map(lambda a: a[rows], problem.data)  # this process's rows only

    def run(path):
        return gd.minimize(
            problem.loss,
            problem.init(jax.random.PRNGKey(0)),
            gd.adam(0.05),
            data=data,
            steps=120,
            batch_size=20,
            key=jax.random.PRNGKey(5),
            mesh=mesh,
            checkpoint=path,
            checkpoint_every=10,
        )

    def described(result, prefix=""):
        leaves = [np.asarray(x).tolist() for x in jax.tree.leaves(result)]
        return {f"{prefix}leaves": leaves, f"{prefix}digests": shard_digests(result)}

    result = run(PATH)
    # THEN: the same run again from a fresh checkpoint, uninterrupted (its programs compiled).
    again = described(run(THEN), "reference_") if THEN else {}
    report(**described(result), **again)


if __name__ == "__main__":
    MODE, PATH, *FLAGS = sys.argv[1:]
    SLOW = "slow" in FLAGS
    SKEWED = "skewed" in FLAGS
    THEN = FLAGS[FLAGS.index("then") + 1] if "then" in FLAGS else None
    gd.distributed.initialize(initialization_timeout=60)  # before any other JAX call
    {"roundtrip": roundtrip, "locked": locked, "minimize": minimize}[MODE]()
    jax.distributed.shutdown()
