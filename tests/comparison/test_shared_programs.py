"""Problems without data alike share one sweep program (jaxgd/comparison/_groups.py
``program_groups``): traced and compiled once, each problem's loss picked by its index.

Their numbers equal each problem swept alone to float round-off; the runs are the
same bits in any group, the curvature at the minimiser the same to round-off (the
executor's jobs group alike and give the same bits: tests/comparison/test_jobs.py).
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_bits

import jaxgd as gd
from jaxgd.comparison import _engine as engine
from jaxgd.comparison import _groups as groups

ARGS = dict(learning_rates=[0.001, 0.01, 0.1], seeds=2, eval_seeds=3, steps=60)


def _names(groups):
    return [[p.name for p in g] for g in groups]


def test_problems_without_data_alike_are_grouped_and_the_rest_alone():
    get = gd.problems.get
    booth = get("booth")
    cube = dataclasses.replace(booth, name="cube", init=lambda key: jnp.zeros(3))
    unknown = dataclasses.replace(get("beale"), name="unknown", optimum_params=None)
    mine = dataclasses.replace(booth, name="mine", loss=lambda p: jnp.sum((p - 1.0) ** 2))
    mine_too = dataclasses.replace(mine, name="mine_too")
    half = dataclasses.replace(mine, name="half", loss=lambda p: jnp.sum(p**2).astype(jnp.float16))
    quadratic = get("quadratic", condition_number=10.0)
    problems = [booth, get("student_marks"), cube, quadratic, unknown, get("rosenbrock"), mine,
                half, mine_too]  # fmt: skip
    assert _names(groups.program_groups(problems)) == [
        ["booth", "quadratic", "rosenbrock"],  # two numbers each, a known minimiser
        ["student_marks"],  # data
        ["cube"],  # three numbers
        ["unknown"],  # no minimiser: its program measures no curvature
        ["mine", "mine_too"],  # not the catalogue's: its program is not kept, theirs are
        ["half"],  # a float16 loss: lax.switch needs its branches alike
    ]


def test_only_the_cpu_shares_programs(monkeypatch):
    """A GPU would read the branch index back to the host at every step's switch."""
    problems = [gd.problems.get("booth"), gd.problems.get("rosenbrock")]
    monkeypatch.setattr(groups.jax, "default_backend", lambda: "gpu")
    assert _names(groups.program_groups(problems)) == [["booth"], ["rosenbrock"]]


def test_a_comparison_traces_one_program_per_group(monkeypatch):
    prepared = []
    real = engine.prepare_sweep

    def watched(group, *args, **kwargs):
        prepared.append([p.name for p in group])
        return real(group, *args, **kwargs)

    monkeypatch.setattr(engine, "prepare_sweep", watched)
    c = gd.compare(["booth", "student_marks", "rosenbrock"], ["vanilla", "adam"], **ARGS)
    assert prepared == [["student_marks"], ["booth", "rosenbrock"]]  # the costlier first
    assert [p.name for p in c.problems] == ["booth", "student_marks", "rosenbrock"]
    shares = [p.compile_seconds for p in c.problems if p.name != "student_marks"]
    assert shares[0] == shares[1] > 0  # each its share of the one program's seconds
    assert [p.shares_program_with for p in c.problems] == [("rosenbrock",), (), ("booth",)]
    assert c.to_dict()["problems"][0]["shares_program_with"] == ["rosenbrock"]
    text = gd.report.markdown(c)
    assert "one compiled program, shared with rosenbrock)" in text
    assert text.count("(its share)") == 2


@pytest.fixture(scope="module")
def grouped():
    return gd.compare(["booth", "rosenbrock", "beale"], ["vanilla", "adam"], **ARGS)


def test_a_problem_in_a_group_equals_itself_alone_to_round_off(grouped):
    shared = grouped.problems[1]  # rosenbrock: its valley amplifies round-off the most
    (alone,) = gd.compare([shared.name], ["vanilla", "adam"], **ARGS).problems
    for label, runs in shared.optimizers.items():
        other = alone.optimizers[label]
        assert runs.learning_rate == other.learning_rate
        np.testing.assert_array_equal(runs.status, other.status)
        finite = np.isfinite(other.final_loss) & (np.abs(other.final_loss) < 1e30)
        # float32 round-off, a few ulps, over 60 steps (measured: at most ~1e-6)
        np.testing.assert_allclose(
            runs.final_loss[finite], other.final_loss[finite], rtol=1e-5, atol=1e-12
        )
        got, want = runs.evaluation.final_loss, other.evaluation.final_loss
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-12)
    assert shared.curvature == pytest.approx(alone.curvature, rel=1e-5)


def test_a_problem_gives_the_same_bits_in_any_group(grouped):
    other = gd.compare(["quadratic", "beale"], ["vanilla", "adam"], **ARGS)
    a, b = grouped.problems[2], other.problems[1]
    assert a.name == b.name == "beale"
    for label in ("vanilla", "adam"):
        ra, rb = a.optimizers[label], b.optimizers[label]
        assert_same_bits(
            [ra.final_loss, ra.curves, ra.status, ra.evaluation.final_loss],
            [rb.final_loss, rb.curves, rb.status, rb.evaluation.final_loss],
        )
    assert a.curvature == pytest.approx(b.curvature, rel=1e-6)  # float32 round-off
