"""Why a step overshoots: the figure of the guide ``docs/guides/diagnostics.md``.

Run ``python examples/diagnostics.py [--out FOLDER]`` (under a minute on two
CPU cores). Adam on the 64-128-10 ReLU MLP of ``benchmarks/speed`` (digits,
minibatches of 128) at three learning rates, with all four instruments of
``minimize(diagnostics=...)``; it writes ``diagnostics.png`` (by default into
``docs/guides/figures``) and prints the numbers the guide quotes.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import optax
from sklearn.datasets import load_digits

import jaxgd as gd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent
RATES = (1e-3, 3e-2, 0.5)
ALL = ("alpha", "cosine", "update_ratio", "noise_scale")


def mlp_loss(params, batch):
    x, y = batch
    hidden = jax.nn.relu(x @ params["w1"] + params["b1"])
    logits = hidden @ params["w2"] + params["b2"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


def mlp_init(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (64, 128)) * jnp.sqrt(2 / 64),
        "b1": jnp.zeros(128),
        "w2": jax.random.normal(k2, (128, 10)) * jnp.sqrt(2 / 128),
        "b2": jnp.zeros(10),
    }


def runs(steps: int = 400, batch_size: int = 128) -> dict:
    """``{rate: Result}``: Adam at each rate, every instrument recorded every step."""
    x, y = load_digits(return_X_y=True)
    data = (jnp.asarray(x / 16.0, jnp.float32), jnp.asarray(y, jnp.int32))
    params = mlp_init(jax.random.PRNGKey(0))
    return {
        rate: gd.minimize(
            mlp_loss,
            params,
            gd.adam(rate),
            steps=steps,
            data=data,
            batch_size=batch_size,
            key=jax.random.PRNGKey(1),
            diagnostics=ALL,
        )  # fmt: skip
        for rate in RATES
    }


def smooth(values, width: int = 20) -> np.ndarray:
    """A running median over ``width`` entries (minibatch alpha and noise scale are noisy)."""
    a = np.asarray(values, np.float64)
    with np.errstate(all="ignore"):
        return np.array([np.nanmedian(a[max(0, i - width + 1) : i + 1]) for i in range(len(a))])


def summary(results: dict, start: int = 100) -> dict:
    """The medians the guide quotes, from step ``start`` on."""
    tail = lambda a: np.asarray(a)[start:-1]  # noqa: E731
    return {
        rate: {
            "alpha_first_5": float(np.nanmedian(np.asarray(r.history.alpha)[:5])),
            "alpha": float(np.nanmedian(tail(r.history.alpha))),
            "alpha_above_1": float(np.nanmean(tail(r.history.alpha) > 1)),
            "cosine": float(np.nanmedian(tail(r.history.cosine))),
            "ratio_w1": float(np.nanmedian(tail(r.history.update_ratio["w1"]))),
            "noise_scale": float(np.nanmedian(tail(r.history.noise_scale))),
            "final_loss": float(r.loss),
        }
        for rate, r in results.items()
    }


def draw(results: dict, path: pathlib.Path) -> None:
    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), sharex=True, layout="constrained")
    (a, c), (u, n) = axes
    for rate, result in results.items():
        h, label = result.history, f"lr = {rate:g}"
        (line,) = a.plot(h.step, smooth(h.alpha), label=label)
        c.plot(h.step, smooth(h.cosine), color=line.get_color(), label=label)
        u.semilogy(h.step, h.update_ratio["w1"], color=line.get_color(), label=f"{label}, w1")
        u.semilogy(h.step, h.update_ratio["w2"], color=line.get_color(), ls=":", lw=1)
        n.semilogy(h.step, smooth(h.noise_scale), color=line.get_color(), label=label)
    a.axhline(1.0, color="black", lw=0.8, ls=":")
    a.set_ylabel("alpha (running median of 20)")
    a.set_title("alpha: above 1 the step overshoots")
    c.axhline(0.0, color="black", lw=0.5)
    c.set_ylabel("cosine of successive updates (median of 20)")
    c.set_title("cosine: -1 zigzags, +1 crawls")
    u.axhline(1e-3, color="black", lw=0.8, ls=":")
    u.set_ylabel("|update| / |params| (w1 solid, w2 dotted)")
    u.set_title("update ratio per leaf (dotted: 1e-3)")
    n.axhline(128, color="black", lw=0.8, ls=":")
    n.set_ylabel("B_simple (median of 20)")
    n.set_title("noise scale (dotted: the batch size, 128)")
    a.legend(fontsize=8)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.suptitle("Adam on a 64-128-10 MLP, digits, minibatches of 128")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(out: pathlib.Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    results = runs()
    draw(results, out / "diagnostics.png")
    figures = summary(results)
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=pathlib.Path, default=HERE.parent / "docs" / "guides" / "figures"
    )
    main(parser.parse_args().out)
