"""compare(diagnostics=...): alpha and the cosine at each chosen rate and one grid step
up, their JSON, the figure and the words of the report."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

import jaxgd as gd

RATES = [0.01, 0.1, 0.3]  # Booth: 2/L = 0.111, so 0.1 is stable and 0.3 overshoots


@pytest.fixture(scope="module")
def booth():
    return gd.compare(["booth"], ["vanilla"], learning_rates=RATES, seeds=1, eval_seeds=2,
                      steps=60, diagnostics=("alpha", "cosine"))  # fmt: skip


def test_the_chosen_rate_and_one_grid_step_up_are_diagnosed(booth):
    runs = booth.problems[0].optimizers["vanilla"]
    assert runs.learning_rate == pytest.approx(0.1)
    chosen, up = runs.diagnostics.chosen, runs.diagnostics.up
    assert up.learning_rate == pytest.approx(0.3)
    # The same run as minimize's from the first seed's start: its alpha, step by step.
    problem = gd.problems.get("booth")
    start = problem.init(gd.comparison.seed_keys(0)[0])
    alone = gd.minimize(problem.loss, start, gd.sgd(jnp.float32(0.1)), steps=60,
                        diagnostics=("alpha", "cosine"))  # fmt: skip
    np.testing.assert_allclose(chosen.alpha, alone.history.alpha, rtol=1e-6)
    np.testing.assert_allclose(chosen.cosine, alone.history.cosine, rtol=1e-6)
    # Below 2/L alpha stays below 1 (the zigzag shrinks); above it a long stretch above 1.
    assert not chosen.overshoot().long and chosen.diverged_at() is None
    found = up.overshoot()
    assert found.long and found.start == 0 and found.length >= gd.comparison.long_stretch(60)
    # lr * L - 1 = 4.4 once the top direction dominates the step (a step or two)
    np.testing.assert_allclose(up.alpha[3:8], 0.3 * 18 - 1, rtol=1e-4)


def test_the_json_holds_both_runs_and_their_verdicts(booth):
    data = json.loads(json.dumps(booth.to_dict()))
    assert data["schema_version"] >= 4  # version 4 added the diagnostics
    diag = data["problems"][0]["diagnostics"]["vanilla"]
    assert diag["chosen"]["learning_rate"] == pytest.approx(0.1)
    assert diag["up"]["overshoot"]["long"] is True and diag["chosen"]["overshoot"]["long"] is False
    assert len(diag["chosen"]["alpha"]) == 60 and diag["chosen"]["alpha"][-1] is None


def test_the_report_draws_alpha_against_one_and_says_who_overshoots(booth):
    p = booth.problems[0]
    assert f"diagnostics_{p.name}" in gd.report.figures.problem_figure_names(p)
    fig = gd.report.figures.diagnostics_figure(booth, p)
    top, bottom = fig.axes[:2]
    gids = {line.get_gid() for line in top.lines}
    assert {"alpha:vanilla", "alpha-up:vanilla", "alpha-one"} <= gids
    assert {"cosine:vanilla", "cosine-up:vanilla"} <= {line.get_gid() for line in bottom.lines}
    names = gd.report.figures.figure_names(booth)
    text = gd.report.markdown(booth, {name: f"figures/{name}.png" for name in names})
    assert "vanilla at its chosen rate (0.1) does not overshoot" in text
    assert "one grid step up (0.3) overshoots: alpha stays above 1 for" in text
    assert "![booth: alpha and cosine](figures/diagnostics_booth.png)" in text


def test_without_diagnostics_nothing_more_is_run():
    c = gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, eval_seeds=2, steps=5)
    assert not c.problems[0].measured_diagnostics
    assert c.to_dict()["problems"][0]["diagnostics"] is None
