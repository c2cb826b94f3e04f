"""The edge of stability (Cohen et al. 2021, 2022), reproduced on the bundled digits.

Full-batch gradient descent at step size ``eta`` trains until the sharpness
(the top Hessian eigenvalue) reaches ``2/eta``, and then hovers there; Adam's
*preconditioned* sharpness hovers at ``(2 + 2 beta1) / ((1 - beta1) eta)``,
``38/eta`` at ``beta1 = 0.9``. Both limits come from the optimizers themselves
(:func:`jaxgd.optimizers.stability_limit`), the sharpness from
``minimize(sharpness_every=...)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxgd import optimizers as _optimizers
from jaxgd import problems as _problems
from jaxgd.comparison._reproduction import Check, Panel, Reproduction, Series
from jaxgd.run import minimize

__all__ = ["edge_of_stability"]

_EXAMPLES = 1000
_HIDDEN = 64
_GD_RATES = (0.2, 0.25, 0.3, 0.4)
_GD_STEPS = 4000
_ADAM_RATES = (1e-3, 3e-3, 1e-2)
_ADAM_STEPS = 3000
_EVERY = 50
_REACHED, _WINDOW = 0.9, 5
"""A run has reached the edge once the median of its last 5 records (after step 0)
is at or above 90% of the limit (one spike is not the edge); only the records from
there on are measured."""
_GD_TOL, _ADAM_TOL = 0.10, 0.15
_NEEDED_GD, _NEEDED_ADAM = 3, 1


def _square_loss(outputs: jax.Array, targets: jax.Array) -> jax.Array:
    """``0.5 |outputs - targets|^2`` per example, averaged (Cohen et al.'s square loss)."""
    return 0.5 * jnp.mean(jnp.sum((outputs - targets) ** 2, axis=-1))


def _digits_mlp_square():
    """The first 1000 training digits (digits_mlp's split), one-hot targets, a tanh MLP
    64-64-10, the square loss."""
    x, y = _problems.get("digits_mlp").data
    data = (x[:_EXAMPLES], jax.nn.one_hot(y[:_EXAMPLES], 10))
    model = _problems.models.mlp((x.shape[1], _HIDDEN, 10))
    loss = _problems.losses.objective(model, _square_loss)
    return loss, model.init(jax.random.PRNGKey(0)), data


def _measure(records: np.ndarray, steps: np.ndarray, limit: float) -> tuple[float, int | None]:
    """The median of the records from where the edge is reached (the first record,
    after step 0, ending a window of ``_WINDOW`` whose median is at or above
    ``_REACHED * limit``), and that step; ``(highest window median, None)`` if never."""
    records, steps = records[steps > 0], steps[steps > 0]
    windows = np.array(
        [np.median(records[max(0, i - _WINDOW + 1) : i + 1]) for i in range(len(records))]
    )
    reached = np.flatnonzero(
        (np.arange(len(records)) >= _WINDOW - 1) & (windows >= _REACHED * limit)
    )
    if not len(reached):
        return float(np.max(windows)), None
    return float(np.median(records[reached[0] :])), int(steps[reached[0]])


def _edge_run(loss, start, data, optimizer, steps: int, field: str):
    result = minimize(loss, start, optimizer, steps=steps, data=data, sharpness_every=_EVERY)
    values = np.asarray(getattr(result.history, field))
    steps_at = np.arange(len(values)) * result.history.stride
    keep = ~np.isnan(values)
    return values[keep], steps_at[keep]


def _edge_check(name: str, lr: float, values, steps_at, tol: float) -> tuple[Check, Series]:
    limit = _optimizers.stability_limit(_optimizers.get(name)(lr))
    measured, step = _measure(values, steps_at, limit.limit)
    label = f"{'gradient descent' if name == 'vanilla' else 'Adam'}, lr {lr:g}"
    if step is None:
        status = "not reached"
        label = f"{label} (never at {_REACHED:.0%} of the limit; shown: its highest)"
    else:
        status = "pass" if abs(measured / limit.limit - 1) <= tol else "fail"
        label = f"{label} (at the edge from step {step})"
    tolerance = f"{limit.formula} ± {tol:.0%} (median from the edge on)"
    check = Check(label, float(limit.limit), measured, tolerance, status, digits=4)
    series = Series(f"lr {lr:g}", tuple(map(float, steps_at)), tuple(map(float, values)))
    return check, series


def _limit_lines(name: str, rates) -> tuple[Series, ...]:
    lines = []
    for lr in rates:
        limit = _optimizers.stability_limit(_optimizers.get(name)(lr))
        lines.append(Series(f"{limit.formula}, lr {lr:g}", (0.0,), (float(limit.limit),), "hline"))
    return tuple(lines)


def edge_of_stability(quick: bool = False) -> Reproduction:
    """Gradient descent's sharpness at 2/lr, Adam's preconditioned sharpness at 38/lr (digits)."""
    loss, start, data = _digits_mlp_square()
    gd_rates, adam_rates = ((0.4,), ()) if quick else (_GD_RATES, _ADAM_RATES)
    gd_steps, adam_steps = (800, 0) if quick else (_GD_STEPS, _ADAM_STEPS)
    checks, gd_series, adam_series = [], [], []
    for lr in gd_rates:
        values, at = _edge_run(loss, start, data, _optimizers.sgd(lr), gd_steps, "sharpness")
        check, series = _edge_check("vanilla", lr, values, at, _GD_TOL)
        checks.append(check)
        gd_series.append(series)
    for lr in adam_rates:
        values, at = _edge_run(
            loss, start, data, _optimizers.adam(lr), adam_steps, "preconditioned"
        )
        check, series = _edge_check("adam", lr, values, at, _ADAM_TOL)
        checks.append(check)
        adam_series.append(series)
    passes = [c for c in checks if c.status == "pass"]
    n_gd = sum(c.label.startswith("gradient") for c in passes)
    n_adam = len(passes) - n_gd
    need_gd, need_adam = (1, 0) if quick else (_NEEDED_GD, _NEEDED_ADAM)
    fails = [c for c in checks if c.status == "fail"]
    passed = not fails and n_gd >= need_gd and n_adam >= need_adam
    return Reproduction(
        name="edge-of-stability",
        title="The edge of stability (Cohen et al. 2021, 2022) on the bundled digits",
        claim=(
            "Full-batch gradient descent at step size lr drives the sharpness up until it "
            "reaches 2/lr, then trains on with the sharpness hovering at 2/lr (Cohen et al., "
            "ICLR 2021). Adam's preconditioned sharpness hovers at (2+2 beta1)/((1-beta1) lr), "
            "38/lr at beta1 = 0.9 (Cohen et al. 2022, 'Adaptive gradient methods at the edge "
            "of stability')."
        ),
        source=(
            "the limits 2/lr and 38/lr are the papers' formulas (jaxgd.optimizers."
            "stability_limit); the data are scikit-learn's bundled digits (no download)"
        ),
        checks=tuple(checks),
        passed=passed,
        verdict=(
            f"{n_gd} gradient-descent and {n_adam} Adam run(s) at the edge within tolerance "
            f"(needed: {need_gd} and {need_adam}); {len(fails)} outside it; "
            f"{sum(c.status == 'not reached' for c in checks)} never reached it in the budget"
        ),
        panels=(
            Panel(
                "Gradient descent: sharpness (dashed: 2/lr)",
                "step",
                "sharpness",
                (*gd_series, *_limit_lines("vanilla", gd_rates)),
            ),
            Panel(
                "Adam: preconditioned sharpness (dashed: 38/lr)",
                "step",
                "preconditioned sharpness",
                (*adam_series, *_limit_lines("adam", adam_rates)),
                yscale="log",
            ),
        ),  # fmt: skip
        notes=(
            f"Model: the first {_EXAMPLES} training digits of the catalogue's digits_mlp (8x8 "
            "pixels, standardised), a tanh MLP "
            f"64-{_HIDDEN}-10 from PRNGKey(0), the square loss against one-hot targets (as "
            "Cohen et al. train); full batch.",
            f"Sharpness every {_EVERY} steps by 20 power iterations. A run is at the edge once "
            f"the median of its last {_WINDOW} records is at or above {_REACHED:.0%} of the "
            "limit (one spike is not the edge); the median of the records from there on is "
            "compared. A run that never gets there is reported as such (with the highest "
            "such median it reached), never as a pass.",
            f"Budgets: {gd_steps} steps of gradient descent, {adam_steps} of Adam.",
        ),
    )
