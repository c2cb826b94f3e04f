"""How far to step: the figures of the guide ``docs/guides/step-size.md``.

Run ``python examples/how_far_to_step.py [--out FOLDER]`` (about a minute on
two CPU cores). It writes three PNG figures (by default into
``docs/guides/figures``, where the guide shows them) and prints the numbers the
guide quotes:

1. ``overshoot.png``: gradient descent on the student-marks problem at 0.9 and
   1.1 times the stability limit ``2/L`` that the calculus gives: the first
   converges, the second overshoots further every step;
2. ``range_test.png``: the learning-rate range test on the same problem, with
   ``1/L`` and ``2/L`` marked;
3. ``edge_of_stability.png``: the sharpness (the Hessian's largest eigenvalue)
   along full-batch gradient descent on a 64-64-10 tanh MLP on 1000 digits, at
   two rates, against their limits ``2/lr``: at 0.1 it starts above 20, falls
   below it as the first steps overshoot, climbs back and hovers at 20 while
   the loss keeps falling (the edge of stability); at 0.05 it rises and stays
   below 40 (Cohen et al., ICLR 2021);
4. ``alpha_edge.png``: the same threshold seen from the step: gradient descent
   on the student-marks problem and on Booth at 0.9, 1 and 1.1 times ``2/L``,
   with Cockpit's alpha (``minimize(diagnostics=...)``), the cosine between
   successive updates and the sharpness side by side: alpha settles at
   ``lr * L - 1``, crossing 1 exactly where the sharpness crosses ``2/lr``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
from sklearn.datasets import load_digits

import jaxgd as gd

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

HERE = pathlib.Path(__file__).resolve().parent


def student_marks() -> dict:
    problem = gd.problems.get("student_marks")
    loss, data = problem.loss, problem.data
    params = problem.init(jax.random.PRNGKey(0))
    lr = gd.suggest_learning_rate(loss, params, data)
    runs = {
        factor: gd.minimize(loss, params, gd.sgd(factor * lr.max_stable), data=data, steps=60)
        for factor in (0.9, 1.1)
    }
    test = gd.lr_range_test(loss, params, gd.sgd, data=data, min_lr=1e-4, max_lr=10.0, steps=100)
    return {"lr": lr, "runs": runs, "test": test}


def digits_mlp(steps: int = 2000, every: int = 50) -> dict:
    x, y = load_digits(return_X_y=True)
    x = jnp.asarray(x[:1000] / 16.0, jnp.float32)
    y = jnp.asarray(np.eye(10)[y[:1000]], jnp.float32)
    model = gd.problems.models.mlp((64, 64, 10))  # tanh
    loss = lambda p, b: 0.5 * jnp.mean(jnp.sum((model(p, b[0]) - b[1]) ** 2, axis=1))
    p0 = model.init(jax.random.PRNGKey(0))
    return {
        rate: gd.minimize(loss, p0, gd.sgd(rate), steps=steps, data=(x, y), sharpness_every=every)
        for rate in (0.1, 0.05)
    }


FACTORS = (0.9, 1.0, 1.1)  # times 2/L: below, at and above the edge


def alpha_runs(steps: int = 60) -> dict:
    """``{problem: (L, {factor: Result})}``: gradient descent at each factor times
    ``2/L``, with alpha, the cosine and the sharpness recorded every step."""
    out = {}
    for name in ("student_marks", "booth"):
        problem = gd.problems.get(name)
        params = problem.init(jax.random.PRNGKey(0))
        data = () if problem.data is None else (problem.data,)
        lr = gd.suggest_learning_rate(problem.loss, params, *data)
        kwargs = {} if problem.data is None else {"data": problem.data}
        out[name] = (
            float(lr.curvature),
            {
                f: gd.minimize(
                    problem.loss,
                    params,
                    gd.sgd(f * lr.max_stable),
                    steps=steps,
                    diagnostics=("alpha", "cosine"),
                    sharpness_every=1,
                    **kwargs,
                )  # fmt: skip
                for f in FACTORS
            },
        )
    return out


def settled_alpha(result, start: int = 30) -> float:
    """The median alpha from step ``start`` on (the last entry, NaN, left out)."""
    return float(np.nanmedian(np.asarray(result.history.alpha)[start:-1]))


def draw_alpha_edge(runs: dict, path: pathlib.Path) -> None:
    fig, axes = plt.subplots(2, 3, figsize=(10, 5.6), sharex=True, layout="constrained")
    for row, (name, (curvature, results)) in zip(axes, runs.items(), strict=True):
        for factor, result in results.items():
            steps = result.history.step
            rate = factor * 2 / curvature
            label = f"lr = {factor} x 2/L"
            (line,) = row[0].plot(steps, result.history.alpha, label=label)
            row[1].plot(steps, result.history.cosine, color=line.get_color(), label=label)
            row[2].axhline(2 / rate, color=line.get_color(), ls="--", lw=1, label=f"2/lr, {label}")
        row[2].plot(steps, result.history.sharpness, color="black", label="sharpness (all three)")
        row[0].axhline(1.0, color="black", lw=0.8, ls=":")
        row[0].set_ylabel(f"{name}\nalpha")
        row[1].set_ylabel("cosine of successive updates")
        row[2].set_ylabel("sharpness")
        row[1].set_ylim(-1.1, 1.1)
    axes[0][0].set_title("alpha (dotted: alpha = 1)")
    axes[0][1].set_title("cosine")
    axes[0][2].set_title("sharpness against 2/lr")
    axes[0][0].legend(fontsize=8)
    axes[0][2].legend(fontsize=7)
    for ax in axes[1]:
        ax.set_xlabel("step")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_overshoot(marks: dict, path: pathlib.Path) -> None:
    fig, ax = plt.subplots(figsize=(6.4, 3.6), layout="constrained")
    limit = marks["lr"].max_stable
    for factor, result in marks["runs"].items():
        curve = np.asarray(result.history.loss)
        ax.semilogy(curve, label=f"lr = {factor} x 2/L = {factor * limit:.3f}")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Student marks: just below and just above 2/L")
    ax.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def draw_edge_of_stability(runs: dict, path: pathlib.Path) -> None:
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(6.4, 5.6), sharex=True, layout="constrained")
    for rate, result in runs.items():
        curvature = np.asarray(result.history.sharpness)
        steps = result.history.step
        seen = ~np.isnan(curvature)
        (line,) = top.plot(steps[seen], curvature[seen], marker=".", label=f"lr = {rate}")
        top.axhline(2 / rate, color=line.get_color(), ls="--", lw=1, label=f"2/lr = {2 / rate:g}")
        bottom.semilogy(steps, np.asarray(result.history.loss), color=line.get_color())
    top.set_ylabel("sharpness (largest eigenvalue)")
    top.set_title("Digits MLP, full-batch gradient descent: the edge of stability")
    top.legend(ncol=2, fontsize=8)
    bottom.set_xlabel("step")
    bottom.set_ylabel("loss")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(out: pathlib.Path) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    marks = student_marks()
    lr = marks["lr"]
    draw_overshoot(marks, out / "overshoot.png")
    gd.report.draw_lr_range(
        marks["test"],
        out / "range_test.png",
        title="Student marks: learning-rate range test",
        marks={"1/L": lr.recommended, "2/L": lr.max_stable},
    )
    runs = digits_mlp()
    draw_edge_of_stability(runs, out / "edge_of_stability.png")
    late = lambda r: np.asarray(r.history.sharpness)[r.history.step >= 500]
    figures = {
        "L": lr.curvature,
        "max_stable": lr.max_stable,
        "final_loss": {f: float(r.loss) for f, r in marks["runs"].items()},
        "status": {f: gd.Status(int(r.status)).name for f, r in marks["runs"].items()},
        "range_test": {"suggested": marks["test"].suggested, "blow_up": marks["test"].blow_up},
        "sharpness_0.1": [float(np.nanmin(late(runs[0.1]))), float(np.nanmax(late(runs[0.1])))],
        "sharpness_0.05": [
            float(np.asarray(runs[0.05].history.sharpness)[0]),
            float(np.nanmax(np.asarray(runs[0.05].history.sharpness))),
        ],
    }
    edge = alpha_runs()
    draw_alpha_edge(edge, out / "alpha_edge.png")
    figures["alpha_settles_at"] = {
        name: {f: settled_alpha(r) for f, r in results.items()}
        for name, (_, results) in edge.items()
    }
    print(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--out", type=pathlib.Path, default=HERE.parent / "docs" / "guides" / "figures"
    )
    main(parser.parse_args().out)
