# %% [markdown]
# # A killed run, resumed to the same bits
#
# A long training run is killed mid-way (`SIGKILL`: no chance to clean up),
# then started again with the same call. `minimize(checkpoint=...)` finds the
# last chunk it wrote, goes on from there, and ends with exactly the params
# and history of a run that was never stopped.

# %%
import os
import pathlib
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import jax
import matplotlib.pyplot as plt
import numpy as np

# %% [markdown]
# The run: a 64-64-10 network on the digits, Adam, minibatches of 64, 1500
# steps, a checkpoint every 500. It is written to a file so that a separate
# process can run it and be killed.

# %%
run_code = textwrap.dedent(
    """
    import jax, jax.numpy as jnp, optax
    import jaxgd as gd
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    data = (jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y))
    model = gd.problems.models.mlp((64, 64, 10))

    def loss(params, batch):
        logits = model(params, batch[0])
        return optax.softmax_cross_entropy_with_integer_labels(
            logits, batch[1]
        ).mean()

    def run(checkpoint=None):
        chunks = {"checkpoint": checkpoint, "checkpoint_every": 500}
        return gd.minimize(
            loss,
            model.init(jax.random.PRNGKey(0)),
            gd.adam(1e-3),
            data=data,
            batch_size=64,
            key=jax.random.PRNGKey(1),
            steps=1500,
            **(chunks if checkpoint else {}),
        )

    if __name__ == "__main__":
        import sys

        import numpy as np

        result = run(sys.argv[1])
        if len(sys.argv) > 2:  # where to leave the result for the caller
            leaves = jax.tree.leaves(result.params)
            np.savez(sys.argv[2], loss=result.history.loss, *leaves)
    """
)
folder = pathlib.Path(tempfile.mkdtemp())
(folder / "training.py").write_text(run_code)
sys.path.insert(0, str(folder))
import training  # noqa: E402

# %% [markdown]
# Start it in another process and kill it once it has saved a chunk or two.

# %%
path = folder / "run-checkpoint"
child = subprocess.Popen(
    [sys.executable, str(folder / "training.py"), str(path)],
    env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
)


def saves():
    """The saves completed so far: orbax's numbered folders (save k holds the
    run after chunk k + 1), each complete once it holds commit_success.txt."""
    return sorted(
        int(p.name)
        for p in path.glob("*")
        if p.name.isdigit() and (p / "commit_success.txt").exists()
    )


deadline = time.monotonic() + 300
while child.poll() is None and time.monotonic() < deadline:
    if saves():
        break
    time.sleep(0.02)
child.send_signal(signal.SIGKILL)
child.wait()
killed_at = (max(saves()) + 1) * 500
print(
    f"killed (exit status {child.returncode}); last chunk saved at step {killed_at}"
)
assert child.returncode == -signal.SIGKILL
assert 0 < killed_at < 1500

# %% [markdown]
# Restart the job: the same command, in a fresh process, as after a real
# kill. It resumes from that chunk. Then, here, the run that was never
# stopped, for comparison.

# %%
left = folder / "resumed.npz"
restarted = subprocess.run(
    [sys.executable, str(folder / "training.py"), str(path), str(left)],
    env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    capture_output=True,
    text=True,
)
assert restarted.returncode == 0, restarted.stderr[-2000:]
plain = training.run()
with np.load(left) as saved:
    resumed_loss = saved["loss"]
    resumed_leaves = [saved[f"arr_{i}"] for i in range(len(saved.files) - 1)]
same = all(
    np.array_equal(a, b)
    for a, b in zip(resumed_leaves, jax.tree.leaves(plain.params), strict=True)
)
print(
    f"resumed from step {killed_at}; final loss {float(resumed_loss[-1]):.5f} "
    f"vs {float(plain.history.loss[-1]):.5f}; params bit for bit equal: {same}"
)
assert same
np.testing.assert_array_equal(resumed_loss, plain.history.loss)

# %%
fig, ax = plt.subplots(figsize=(6.4, 3.4))
ax.semilogy(
    np.asarray(plain.history.loss), lw=0.4, color="0.6", label="never stopped"
)
ax.semilogy(
    np.arange(killed_at, 1500),
    resumed_loss[killed_at:],
    lw=0.4,
    color="C3",
    label="resumed",
)
ax.axvline(
    killed_at, color="k", ls=":", label=f"killed; resumed at {killed_at}"
)
ax.set(
    xlabel="step",
    ylabel="minibatch loss",
    title="One history, interrupted or not",
)
ax.legend()
plt.show()
