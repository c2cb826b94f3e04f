"""Target group: a compute-bound run, 500 full-batch Adam steps of a 64-128-10
MLP on scikit-learn's digits, against torch.optim eager."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

import jaxgd as gd

from .timing import TORCH_SKIPPED, block, interleaved, torch, torch_device


def _digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    return (x / 16.0).astype(np.float32), y.astype(np.int32)


def _mlp_init(seed=0):
    rng = np.random.default_rng(seed)

    def dense(n_in, n_out):
        return (
            (rng.standard_normal((n_in, n_out)) * np.sqrt(2.0 / n_in)).astype(np.float32),
            np.zeros(n_out, np.float32),
        )

    (w1, b1), (w2, b2) = dense(64, 128), dense(128, 10)
    return {"w1": w1, "b1": b1, "w2": w2, "b2": b2}


def _mlp_loss(params, batch):
    x, y = batch
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    logits = hidden @ params["w2"] + params["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def bench_mlp(repeats: int) -> dict:
    steps, lr = 500, 1e-2
    x, y = _digits()
    data = (jnp.asarray(x), jnp.asarray(y))
    init = _mlp_init()
    params = jax.tree.map(jnp.asarray, init)

    def run_minimize():
        return block(gd.minimize(_mlp_loss, params, gd.adam(lr), steps=steps, data=data))

    result = run_minimize()
    out = {"steps": steps, "examples": int(x.shape[0]), "final_loss": float(result.loss)}
    if torch is None:
        t = interleaved({"minimize": run_minimize}, repeats)
        out["seconds"] = t
        out["torch"] = TORCH_SKIPPED
        return out
    dev = torch_device()
    xt, yt = torch.from_numpy(x).to(dev), torch.from_numpy(y).long().to(dev)

    def torch_loop():
        ps = {k: torch.tensor(v, requires_grad=True, device=dev) for k, v in init.items()}
        optim = torch.optim.Adam(ps.values(), lr=lr)
        for _ in range(steps):
            optim.zero_grad()
            hidden = torch.relu(xt @ ps["w1"] + ps["b1"])
            value = torch.nn.functional.cross_entropy(hidden @ ps["w2"] + ps["b2"], yt)
            value.backward()
            optim.step()
        return value.item()  # .item() waits for the device

    t = interleaved({"minimize": run_minimize, "torch_eager": torch_loop}, repeats)
    out["seconds"] = t
    out["ratio_vs_torch"] = t["minimize"] / t["torch_eager"]
    out["torch_final_loss"] = torch_loop()
    return out
