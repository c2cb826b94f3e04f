"""Tests for jaxgd.compare: the protocol's choices, its metrics, and early, clear errors."""

from __future__ import annotations

import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxgd as gd
from jaxgd.comparison import _checks as checks
from jaxgd.comparison import _chosen as chosen
from jaxgd.comparison import _protocol as protocol

cmp = gd.comparison
# compare's internals, patched where a test watches the sweeps or lowers a threshold
engine = importlib.import_module("jaxgd.comparison._engine")


@pytest.fixture(scope="module")
def booth():
    # 0.3 is past the stability limit 2/L = 0.111: it must diverge and not be chosen.
    return gd.compare(
        ["booth"],
        {"vanilla": gd.sgd, "adam": gd.adam},
        learning_rates=[0.01, 0.03, 0.1, 0.3],
        seeds=2,
        eval_seeds=4,
        steps=100,
    )


def test_booth_vanilla_chooses_the_theoretical_step(booth):
    # Booth's curvatures are 2 and 18: the fastest fixed step is 2 / (2 + 18) = 0.1.
    row = next(r for r in booth.summary() if r["optimizer"] == "vanilla")
    assert row["learning_rate"] == pytest.approx(0.1)
    assert row["diverged"] == 0
    assert row["reached_target"] == row["seeds"] == 4  # every evaluation seed
    assert row["tuning_seeds"] == 2
    # Contraction 0.8 per step from a loss of about 200: target 1e-6 within 60 steps.
    assert row["steps_to_target_mean"] < 60


def test_diverged_runs_are_counted_and_never_chosen(booth):
    runs = booth.problems[0].optimizers["vanilla"]
    i = int(np.flatnonzero(np.isclose(runs.learning_rates, 0.3))[0])
    assert runs.diverged[i].all()
    assert (runs.status[i] == gd.Status.DIVERGED).all()
    assert np.isinf(runs.steps_to_target[i]).all()
    row = next(r for r in booth.summary() if r["optimizer"] == "vanilla")
    assert row["diverged_in_grid"] == 2
    assert math.isfinite(row["final_loss_mean"])


def test_summary_has_the_design_keys(booth):
    rows = booth.summary()
    assert len(rows) == 2
    for key in [
        "problem",
        "optimizer",
        "learning_rate",
        "final_loss_mean",
        "final_loss_std",
        "steps_to_target_mean",
        "diverged",
        "gap_mean",
        "microseconds_per_run_step",
        "sweep_compile_seconds",
    ]:
        assert key in rows[0]
    p = booth.problems[0]
    assert p.compile_seconds > 0 and p.run_seconds > 0
    # The tuning sweep (2 optimizers x 4 rates x 2 seeds) and one evaluation call
    # of the same program: its 8 slots per optimizer hold the 4 evaluation seeds.
    assert p.n_runs == 2 * (2 * 4 * 2)


def test_runs_are_full_length_with_whole_curves(booth):
    runs = booth.problems[0].optimizers["vanilla"]
    i = int(np.flatnonzero(np.isclose(runs.learning_rates, 0.1))[0])
    assert (runs.steps[i] == 100).all()  # not stopped at the target
    assert np.isfinite(runs.curves[i]).all()
    assert runs.paths is not None and runs.paths.shape == (4, 2, 100, 2)


def test_same_arguments_same_bits(booth):
    again = gd.compare(
        ["booth"],
        {"vanilla": gd.sgd, "adam": gd.adam},
        learning_rates=[0.01, 0.03, 0.1, 0.3],
        seeds=2,
        steps=100,
    )
    for label in ["vanilla", "adam"]:
        a = booth.problems[0].optimizers[label].final_loss
        b = again.problems[0].optimizers[label].final_loss
        np.testing.assert_array_equal(a, b)


def test_grid_edge_is_flagged():
    result = gd.compare(["booth"], ["vanilla"], learning_rates=[0.001, 0.01], seeds=1, steps=20)
    row = result.summary()[0]
    assert row["learning_rate"] == pytest.approx(0.01)
    assert row["grid_edge"] == "highest"
    assert any("highest" in w for w in gd.report.edge_warnings(result))


@pytest.mark.slow  # minibatch runs compile slowly (minimize's shuffling): ~5 s alone
def test_minibatch_seeds_change_the_order():
    result = gd.compare(
        ["student_marks"], ["vanilla"], learning_rates=[0.1], seeds=2, steps=30, batch_size=16
    )
    runs = result.problems[0].optimizers["vanilla"]
    assert result.problems[0].batch_size == 16
    assert not np.array_equal(runs.curves[0, 0], runs.curves[0, 1])
    assert np.isfinite(runs.final_loss).all()


# -- the protocol on hand-made numbers ----------------------------------------------------


def test_steps_to_target():
    curves = np.array([[5.0, 1.0, 0.5, 0.4], [5.0, 4.0, 3.0, 2.0], [5.0, np.nan, np.nan, np.nan]])
    np.testing.assert_array_equal(cmp.steps_to_target(curves, 0.5), [2.0, np.inf, np.inf])


def test_choice_prefers_no_divergence_then_loss_then_speed():
    target = 1e-6
    loss = np.array(
        [
            [1e-3, 1e-3],  # no divergence, not solved
            [1e-9, 1e-8],  # solved, slow
            [1e-9, 1e-9],  # solved, fast
            [1e-12, np.nan],  # one seed diverged: lowest loss but never chosen
        ]
    )
    diverged = np.array([[0, 0], [0, 0], [0, 0], [0, 1]], bool)
    steps = np.array([[np.inf, np.inf], [80, 90], [30, 40], [5, np.inf]])
    assert cmp.choose_learning_rate(loss, diverged, steps, target) == 2
    # Without the two solved rates, the lower mean loss wins.
    assert cmp.choose_learning_rate(loss[[0, 3]], diverged[[0, 3]], steps[[0, 3]], target) == 0
    # If every rate diverges somewhere, fewer divergences win.
    many = np.array([[1, 1], [0, 1]], bool)
    assert cmp.choose_learning_rate(loss[[0, 3]], many, steps[[0, 3]], target) == 1


def test_a_nan_never_poisons_the_mean():
    loss = np.array([[1.0, np.nan, 3.0]])
    diverged = np.array([[False, True, False]])
    idx = cmp.choose_learning_rate(loss, diverged, np.full((1, 3), np.inf), 0.1)
    assert idx == 0
    runs = gd.comparison.OptimizerRuns(
        learning_rates=np.array([0.1]),
        final_loss=loss,
        status=np.array([[0, 3, 0]]),
        steps=np.array([[5, 2, 5]]),
        diverged=diverged,
        steps_to_target=np.full((1, 3), np.inf),
        curves=np.zeros((1, 3, 5)),
        paths=None,
        chosen=0,
    )
    stats = runs.stats(0)
    assert stats["final_loss_mean"] == 2.0 and stats["diverged"] == 1


def test_performance_profile_by_hand():
    prof = cmp.performance_profile(
        {"a": [10, 100, np.inf], "b": [20, 50, 30]}, taus=[1.0, 2.0, 4.0]
    )
    # a is best on problem 1 only; within 2x on problem 2 (100 <= 2 * 50); never solves 3.
    assert prof["rho"]["a"] == pytest.approx([1 / 3, 2 / 3, 2 / 3])
    # b is best on problems 2 and 3, within 2x on problem 1.
    assert prof["rho"]["b"] == pytest.approx([2 / 3, 1.0, 1.0])
    # The exact area under the step function rho over [1, 4] over 3: a problem solved at
    # ratio r adds (4 - r) / 3 / n_problems. a: ratios 1, 2, inf -> (3 + 2 + 0) / 9;
    # b: 2, 1, 1 -> 8 / 9.
    assert prof["exact_area"]["a"] == pytest.approx(5 / 9, rel=1e-12)
    assert prof["exact_area"]["b"] == pytest.approx(8 / 9, rel=1e-12)
    # AlgoPerf's score: rho at 100 evenly spaced tau from 1 to 4 (a step of 1/33, so 2
    # and 3 are grid points), trapezoid rule, over 3. A jump at a grid point ramps up
    # from the point before, adding half a step (1/66) to that problem's area.
    assert prof["score"]["a"] == pytest.approx((3 + 2 + 1 / 66) / 9, rel=1e-12)
    assert prof["score"]["b"] == pytest.approx((2 + 1 / 66 + 3 + 3) / 9, rel=1e-12)
    fastest = cmp.performance_profile({"x": [1, 2], "y": [3, 4]})
    assert fastest["score"]["x"] == pytest.approx(1.0, rel=1e-15)
    assert fastest["exact_area"]["x"] == 1.0
    assert fastest["exact_area"]["y"] == pytest.approx(((4 - 3) + (4 - 2)) / 2 / 3, rel=1e-12)
    assert fastest["score"]["y"] == pytest.approx((1 + 2 + 2 / 66) / 2 / 3, rel=1e-12)
    # The area of the profile on a fine grid agrees with the exact area to the grid's step.
    taus = np.linspace(1.0, 4.0, 30_001)
    fine = cmp.performance_profile({"a": [10, 100, np.inf], "b": [20, 50, 30]}, taus=taus)
    for label in "ab":
        rho = np.asarray(fine["rho"][label])
        riemann = np.sum(rho[:-1] * np.diff(taus)) / 3  # left sums of a right-continuous step
        assert riemann == pytest.approx(prof["exact_area"][label], abs=3 * 1e-4)


def test_performance_profile_counts_as_algoperf_does():
    # More than 4 times the best is not solved; exactly 4 times counts from tau = 4 on.
    prof = cmp.performance_profile({"a": [1, 1], "b": [4, 4.5]}, taus=[1.0, 3.99, 4.0])
    assert prof["rho"]["b"] == [0.0, 0.0, 0.5]
    assert prof["exact_area"]["b"] == 0.0
    # NaN (no result) is not solved, and the best is taken over the others; a problem
    # nobody solved counts against everyone; where the best is 0 steps, only 0 counts.
    prof = cmp.performance_profile(
        {"a": [np.nan, np.inf, 0, 5], "b": [10, np.inf, 1, 5]}, taus=[1.0, 4.0]
    )
    assert prof["rho"]["a"] == [0.5, 0.5]  # problems 3 and 4
    assert prof["rho"]["b"] == [0.5, 0.5]  # problems 1 and 4
    # Ratios are divided by the best as is (no floor at one step).
    prof = cmp.performance_profile({"a": [0.5], "b": [1.0]}, taus=[1.0, 2.0])
    assert prof["rho"]["b"] == [0.0, 1.0]


def test_speedup_is_a_geometric_mean():
    out = cmp.speedups({"vanilla": [100, 100, np.inf], "adam": [25, 400, 10]}, "vanilla")
    assert out["adam"]["geomean_speedup"] == pytest.approx(1.0)  # sqrt(4 * 1/4)
    assert out["adam"]["problems_compared"] == 2
    assert out["adam"]["solved_where_reference_did_not"] == 1


# -- errors: clear, naming the argument, before any compiling ------------------------------


@pytest.fixture
def no_compiling(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("compare compiled before checking its arguments")

    monkeypatch.setattr(engine, "prepare_sweep", fail)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"problems": ["boot"]}, "unknown problem 'boot'.*booth"),
        ({"problems": []}, "problems is empty"),
        ({"optimizers": ["sgdd"]}, "unknown optimizer 'sgdd'.*vanilla"),
        ({"optimizers": []}, "optimizers is empty"),
        ({"learning_rates": []}, "learning_rates is empty"),
        ({"learning_rates": [0.1, 0.0]}, "learning_rates must all be finite and > 0"),
        ({"learning_rates": [-1.0]}, "learning_rates must all be finite and > 0"),
        ({"learning_rates": [float("nan")]}, "learning_rates must all be finite and > 0"),
        ({"learning_rates": {"vanilla": [0.1]}}, "no grid for"),
        ({"seeds": 0}, "seeds must be a positive integer"),
        ({"seeds": []}, "seeds must be"),
        ({"steps": 0}, "steps must be a positive integer"),
        ({"steps": 2.5}, "steps must be a positive integer"),
        ({"batch_size": 0}, "batch_size must be a positive integer"),
        ({"batch_size": 201, "problems": ["student_marks"]}, "student_marks has 200, got 201"),
        ({"seeds": 10**6, "steps": 10**4}, r"than this machine's .* GiB of memory; use fewer"),
    ],
)
def test_bad_arguments_raise_before_compiling(no_compiling, kwargs, match):
    args = {
        "problems": ["booth"],
        "optimizers": ["vanilla", "adam"],
        "learning_rates": [0.1],
        "seeds": 1,
        "steps": 10,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        gd.compare(args.pop("problems"), args.pop("optimizers"), **args)


def test_a_batch_as_large_as_the_data_is_accepted(no_compiling):
    args = cmp.check_arguments(["student_marks"], ["vanilla"], [0.1], 1, 5, 200)
    assert args.batch_size == 200 == args.problems[0].data[0].shape[0]


def test_the_footprint_counts_runs_steps_and_history():
    booth, marks = gd.problems.get("booth"), gd.problems.get("student_marks")
    size = cmp.footprint([booth, marks], {"a": [0.1, 0.2], "b": [0.3]}, seeds=4, steps=50)
    assert size.runs == 2 * 3 * 4 and size.run_steps == size.runs * 50
    # Per run-step: loss and grad norm (float32) recorded, loss kept (float64) = 16 bytes;
    # Booth is 2-D: its params recorded and kept (2 x float32 each) add 16.
    assert size.history_bytes == 12 * 50 * 32 + 12 * 50 * 16
    assert cmp.footprint([booth], {"a": [0.1]}, 1, 1).history_bytes == 32


def test_a_big_comparison_is_warned_of_with_its_numbers(monkeypatch):
    monkeypatch.setattr(checks, "HISTORY_WARNING_BYTES", 1000)
    # 12 tuning runs and one evaluation call of the same 12 slots (6 per optimizer
    # hold the 2 evaluation seeds): 24 runs of 50 steps.
    with pytest.warns(cmp.SweepSizeWarning, match=r"24 runs .* 1,200 run-steps .* GiB of history"):
        cmp.check_arguments(["booth"], ["vanilla", "adam"], [0.1, 0.2, 0.3], 2, 50, None, 2)
    monkeypatch.setattr(checks, "HISTORY_WARNING_BYTES", 10**9)
    monkeypatch.setattr(checks, "RUN_STEPS_WARNING", 1199)
    with pytest.warns(cmp.SweepSizeWarning, match="may take long"):
        cmp.check_arguments(["booth"], ["vanilla", "adam"], [0.1, 0.2, 0.3], 2, 50, None, 2)


def test_the_default_comparison_is_not_warned_of(recwarn):
    cmp.check_arguments(
        cmp.DEFAULT_PROBLEMS,
        cmp.DEFAULT_OPTIMIZERS,
        cmp.DEFAULT_LEARNING_RATES,
        cmp.DEFAULT_SEEDS,
        cmp.DEFAULT_STEPS,
        "problem",
    )
    assert not [w for w in recwarn if issubclass(w.category, cmp.SweepSizeWarning)]


def test_a_factory_must_make_an_optimizer(no_compiling):
    with pytest.raises(TypeError, match=r"optimizers\['odd'\].*not an optimizer"):
        gd.compare(
            ["booth"], {"odd": lambda learning_rate: "sgd"}, learning_rates=[0.1], seeds=1, steps=5
        )


def test_optax_factories_are_swept_like_jaxgd_ones():
    """An optax factory is swept with its rate traced (as minimize traces it) and
    gives jaxgd's numbers (sgd is exact in both: p - lr * g)."""
    import optax

    c = gd.compare(
        ["booth"],
        {"optax": optax.sgd, "jaxgd": gd.sgd},
        learning_rates=[0.01, 0.1],
        seeds=2,
        steps=60,
    )
    rows = {r["optimizer"]: r for r in c.summary()}
    assert rows["optax"]["learning_rate"] == rows["jaxgd"]["learning_rate"] == 0.1
    assert rows["optax"]["final_loss_mean"] == pytest.approx(
        rows["jaxgd"]["final_loss_mean"], rel=1e-6, abs=1e-12
    )


def test_the_protocol_imports_nothing_of_jaxgd():
    import ast
    import pathlib

    source = pathlib.Path(protocol.__file__).read_text()
    modules = [
        n.module if isinstance(n, ast.ImportFrom) else a.name
        for n in ast.walk(ast.parse(source))
        if isinstance(n, ast.Import | ast.ImportFrom)
        for a in (n.names if isinstance(n, ast.Import) else [None])
    ]
    assert modules and not [m for m in modules if m and m.startswith("jaxgd")]


def test_every_listed_optimizer_runs_and_descends():
    """The one list: every label of the optimizer registry (what the CLI accepts) runs."""
    labels = gd.optimizers.names()
    c = gd.compare(["booth"], labels, learning_rates=[0.01], seeds=1, steps=20)
    assert [r["optimizer"] for r in c.summary()] == labels
    for label, runs in c.problems[0].optimizers.items():
        assert runs.final_loss[0, 0] < runs.curves[0, 0, 0], label  # below the start


# --------------------------------------------------------------------------- #
# At the chosen rate: sharpness (sharpness=True) and step costs (line searches)
# --------------------------------------------------------------------------- #

QUADRATIC_RATES = {"vanilla": [0.001, 0.01, 1.0], "adam": [0.01, 0.1], "armijo": [1.0]}


@pytest.fixture(scope="module")
def curved():
    # armijo's only rate, 1.0, overshoots the quadratic (L = 100: lr L = 100 > 2), so its
    # line search must backtrack; vanilla's stable rates lie below 2/L = 0.02.
    return gd.compare(
        ["quadratic"], ["vanilla", "adam", "armijo"], learning_rates=QUADRATIC_RATES, seeds=1,
        steps=100, sharpness=True,
    )  # fmt: skip


def _start(problem, seed=0):
    init_key, _ = jax.random.split(jax.random.PRNGKey(seed))
    return problem.init(init_key)


def test_the_default_comparison_measures_nothing_more(booth):
    p = booth.problems[0]
    assert not p.measured_costs and not p.measured_sharpness and not booth.measured_costs
    assert all(r.cost is None and r.sharpness is None for r in p.optimizers.values())
    assert all(math.isnan(row["evaluations_per_step"]) for row in booth.summary())
    data = booth.to_dict()["problems"][0]
    assert data["step_costs"] is None and data["sharpness"] is None


def test_the_quadratic_sharpness_is_its_largest_eigenvalue(curved):
    p = curved.problems[0]
    # The catalogue quadratic's Hessian is R diag(1, 100) R^T: its largest eigenvalue is 100.
    hessian = np.asarray(jax.hessian(p.problem.loss)(p.problem.optimum_params), np.float64)
    top = np.linalg.eigvalsh(hessian).max()
    assert top == pytest.approx(100.0, rel=1e-5)
    every = chosen.sharpness_every(100)
    assert every == 2
    for label, r in p.optimizers.items():
        run = r.sharpness
        assert run.every == every
        np.testing.assert_array_equal(run.steps, np.arange(0, 100, every))
        # float32: the Hessian's entries and the Rayleigh quotient each round at ~1e-7.
        np.testing.assert_allclose(run.sharpness, top, rtol=1e-5, err_msg=label)
        assert run.loss.shape == (100,)
        # The same run as the sweep's first seed (vmapped there, alone here): round-off only.
        np.testing.assert_allclose(run.loss, r.curves[r.chosen, 0], rtol=1e-4, err_msg=label)
    vanilla = p.optimizers["vanilla"]
    assert vanilla.learning_rate == pytest.approx(0.01)
    assert vanilla.sharpness.limit == {
        "kind": "sharpness",
        "limit": pytest.approx(2 / 0.01),
        "formula": "2/lr",
    }
    assert vanilla.sharpness.preconditioned is None
    assert vanilla.sharpness.verdict() == "below"  # 100 against 200
    adam = p.optimizers["adam"]
    assert adam.sharpness.limit["kind"] == "preconditioned"
    assert adam.sharpness.limit["limit"] == pytest.approx(
        (2 + 2 * 0.9) / ((1 - 0.9) * adam.learning_rate)
    )
    assert np.all(np.isfinite(adam.sharpness.preconditioned))
    np.testing.assert_array_equal(adam.sharpness.watched, adam.sharpness.preconditioned)
    assert p.optimizers["armijo"].sharpness.limit is None  # no known limit for a line search


def test_armijo_in_a_comparison_costs_more_evaluations_per_step(curved):
    p = curved.problems[0]
    armijo = p.optimizers["armijo"]
    assert armijo.cost.line_search and armijo.learning_rate == 1.0
    # optax's own loop from the same start: 1 gradient + num_linesearch_steps values per step.
    opt = optax.chain(optax.sgd(1.0), optax.scale_by_backtracking_linesearch(15))
    params = _start(p.problem)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        value, grad = jax.value_and_grad(p.problem.loss)(params)
        updates, state = opt.update(grad, state, params, value=value, grad=grad,
                                    value_fn=p.problem.loss)  # fmt: skip
        return optax.apply_updates(params, updates), state

    trials = []
    for _ in range(100):
        params, state = step(params, state)
        trials.append(int(optax.tree.get(state, "num_linesearch_steps")))
    expected = 1 + np.mean(trials)
    assert expected > 2  # the first guess overshoots: the search backtracks
    # Two compiled programs (make_step's and this one) may round differently and flip an
    # Armijo test at its margin: 0.05 is 5 of the 100 steps trying one point more or less.
    assert armijo.cost.evaluations_per_step == pytest.approx(expected, abs=0.05)
    for label in ("vanilla", "adam"):
        cost = p.optimizers[label].cost
        assert not cost.line_search and cost.evaluations_per_step == 1.0
    for row in curved.summary():
        assert 0 < row["microseconds_per_step"] < math.inf
        seconds = 1e-6 * row["microseconds_per_step"] * row["steps_to_target_mean"]
        assert row["seconds_to_target"] == pytest.approx(seconds) or (
            math.isnan(row["seconds_to_target"]) and row["reached_target"] == 0
        )
    table = gd.report.summary_table(curved)
    assert "evaluations per step" in table and "time to target" in table


def test_a_line_search_alone_measures_costs_not_sharpness():
    c = gd.compare(["booth"], ["vanilla", "armijo"], learning_rates=[0.1], seeds=1, steps=20)
    p = c.problems[0]
    assert p.measured_costs and not p.measured_sharpness
    assert p.optimizers["armijo"].cost.evaluations_per_step >= 2  # a gradient + 1 trial at least
    assert p.optimizers["vanilla"].cost.evaluations_per_step == 1


def test_has_line_search_reads_the_state():
    params = jnp.zeros(3)
    assert chosen.has_line_search(gd.optimizers.get("armijo"), params)
    assert not any(
        chosen.has_line_search(gd.optimizers.get(n), params) for n in ("vanilla", "adam")
    )


def test_sharpness_results_survive_json(curved, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(curved.to_json())
    data = gd.comparison.load(path)
    assert data["schema_version"] == gd.comparison.SCHEMA_VERSION == 5
    problem = data["problems"][0]
    for label, r in curved.problems[0].optimizers.items():
        run = problem["sharpness"][label]
        assert run["steps"] == r.sharpness.steps.tolist()
        np.testing.assert_allclose(run["sharpness"], r.sharpness.sharpness)
        np.testing.assert_allclose(run["loss"], r.sharpness.loss)
        assert run["limit"] == r.sharpness.limit
        cost = problem["step_costs"][label]
        assert cost["evaluations_per_step"] == r.cost.evaluations_per_step
        assert cost["line_search"] == r.cost.line_search
    assert problem["sharpness"]["adam"]["preconditioned"] is not None
    assert problem["sharpness"]["vanilla"]["preconditioned"] is None
    rows = {row["optimizer"]: row for row in data["summary"]}
    assert rows["armijo"]["evaluations_per_step"] > 2


def test_sharpness_must_be_a_bool():
    with pytest.raises(TypeError, match="sharpness must be True or False, got 1; pass"):
        gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, steps=5, sharpness=1)


def test_a_sweep_measured_again_is_never_traced_beside(monkeypatch):
    """The next problem is traced while a sweep compiles and runs, but not while a sweep is
    measured again at its chosen rates (that calls minimize on the worker thread and times
    its steps): then the next problem waits."""
    events = []

    def logged(name, f):
        def g(*args, **kwargs):
            group = args[0]  # prepare: the problems that share a program; finish: a job
            what = "+".join(p.name for p in group) if name == "prepare" else group.problem.name
            events.append((name, what, "start"))
            out = f(*args, **kwargs)
            events.append((name, what, "end"))
            return out

        return g

    monkeypatch.setattr(engine, "prepare_sweep", logged("prepare", engine.prepare_sweep))
    monkeypatch.setattr(engine, "finish_sweep", logged("finish", engine.finish_sweep))
    c = gd.compare(["booth", "student_marks"], ["vanilla", "armijo"], learning_rates=[0.1],
                   seeds=1, steps=10)  # fmt: skip
    assert c.problems[1].optimizers["armijo"].cost is not None  # measured again
    # student_marks (the costlier, with data) first; then booth, its own group
    end = events.index(("finish", "student_marks", "end"))
    assert end < events.index(("prepare", "booth", "start"))


# -- what the comparison computes for the report: the seed rule, the limit, the contours ----


def test_one_seed_rule_gives_the_sweeps_start_and_minibatches():
    """A run of seed 3 alone, from seed_keys(3), ends where the sweep's run of seed 3 ends."""
    c = gd.compare(["student_marks"], ["vanilla"], learning_rates=[0.01], seeds=[3], steps=15,
                   batch_size=8)  # fmt: skip
    problem = c.problems[0].problem
    init_key, batch_key = gd.comparison.seed_keys(3)
    alone = gd.minimize(problem.loss, problem.init(init_key), gd.sgd(jnp.float32(0.01)),
                        steps=15, data=problem.data, batch_size=8, key=batch_key)  # fmt: skip
    tuned = c.problems[0].optimizers["vanilla"].final_loss[0, 0]
    assert float(alone.loss) == pytest.approx(tuned, rel=1e-6)
    a, b = gd.comparison.seed_keys(3)
    assert np.array_equal(a, init_key) and np.array_equal(b, batch_key)  # same bits each call


def test_the_rate_limit_is_the_one_the_optimizer_states(booth):
    p = booth.problems[0]
    stated = gd.optimizers.stability_limit(gd.sgd(1.0))
    assert p.vanilla_limit == stated._asdict()
    assert p.stability_limit == stated.limit / p.curvature
    assert p.stability_limit == pytest.approx(2 / 18, rel=1e-4)  # Booth: L = 18
    assert p.stability_formula == "2/L"


def test_the_contours_are_computed_with_the_comparison(booth):
    """The paths figure's grid arrives as data: the loss minus the optimum over the frame."""
    p = booth.problems[0]
    grid = p.contours
    assert isinstance(grid, gd.comparison.Contours)
    assert grid.gap.shape == (len(grid.y), len(grid.x))
    assert (grid.x[0], grid.y[0]) == tuple(grid.lo) and (grid.x[-1], grid.y[-1]) == tuple(grid.hi)
    i, j = len(grid.y) // 3, len(grid.x) // 4
    point = jnp.asarray([grid.x[j], grid.y[i]], jnp.float32)
    expected = float(p.problem.loss(point)) - p.problem.optimum_value
    assert grid.gap[i, j] == pytest.approx(max(expected, 1e-6), rel=1e-5)
    # Every recorded path at a chosen rate that did not diverge lies in the frame.
    for r in p.optimizers.values():
        path = r.paths[r.chosen][~r.diverged[r.chosen]].reshape(-1, 2)
        assert np.all((path >= grid.lo) & (path <= grid.hi))


def test_problems_without_paths_have_no_contours():
    c = gd.compare(["student_marks"], ["vanilla"], learning_rates=[0.01], seeds=1, steps=5)
    assert c.problems[0].contours is None


def test_each_evaluation_seed_runs_the_chosen_rate_from_its_own_start():
    """The evaluation runs fill the sweep's slots (2 per call here, so 3 seeds take 2
    calls, the last slot padded): evaluation seed s's run equals a run alone from
    seed_keys(s) at the chosen rate, minibatches included."""
    c = gd.compare(["student_marks"], ["vanilla"], learning_rates=[0.003, 0.01], seeds=[3],
                   eval_seeds=[5, 9, 11], steps=15, batch_size=8)  # fmt: skip
    p = c.problems[0]
    runs = p.optimizers["vanilla"]
    assert runs.evaluation.seeds == (5, 9, 11)
    for j, seed in enumerate((5, 9, 11)):
        init_key, batch_key = gd.comparison.seed_keys(seed)
        alone = gd.minimize(p.problem.loss, p.problem.init(init_key),
                            gd.sgd(jnp.float32(runs.learning_rate)), steps=15,
                            data=p.problem.data, batch_size=8, key=batch_key)  # fmt: skip
        assert float(alone.loss) == pytest.approx(runs.evaluation.final_loss[j], rel=1e-6)
    assert p.n_runs == 2 + 2 * 2  # the sweep, then two evaluation calls


def test_held_out_figures_are_the_loss_on_the_test_data():
    """The final held-out loss is loss(final params, test_data); the held-out curve is
    recorded every eval_every steps from step 0, and the steps to the held-out target
    is the first recorded step at or below it."""
    c = gd.compare(["breast_cancer_logistic"], ["adam"], learning_rates=[0.1], seeds=1,
                   eval_seeds=2, steps=40)  # fmt: skip
    p = c.problems[0]
    ev = p.optimizers["adam"].evaluation
    every = cmp.eval_every(40)
    assert ev.every == every == 1
    for j, seed in enumerate(ev.seeds):
        init_key, _ = gd.comparison.seed_keys(seed)
        alone = gd.minimize(p.problem.loss, p.problem.init(init_key), gd.adam(jnp.float32(0.1)),
                            steps=40, data=p.problem.data)  # fmt: skip
        held = float(p.problem.loss(alone.params, p.problem.test_data))
        assert ev.held_out[j] == pytest.approx(held, rel=1e-5)
        curve = ev.held_out_curve[j]
        first = float(p.problem.loss(p.problem.init(init_key), p.problem.test_data))
        assert curve[0] == pytest.approx(first, rel=1e-5)
        assert curve[-1] == ev.held_out[j] and ev.held_out_steps[-1] == 40
        hit = np.flatnonzero(curve <= p.problem.eval_target)
        expected = ev.held_out_steps[hit[0]] if hit.size else np.inf
        assert ev.steps_to_eval_target[j] == expected
    row = c.summary()[0]
    assert row["eval_loss_ci_low"] <= row["eval_loss_mean"] <= row["eval_loss_ci_high"]


def test_eval_seeds_are_checked_before_compiling(no_compiling):
    with pytest.raises(ValueError, match="eval_seeds must be at least 2, got 1: a verdict"):
        gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, eval_seeds=1, steps=5)
    with pytest.raises(ValueError, match=r"eval_seeds and seeds share \[0\]: the rate is chosen"):
        gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=2, eval_seeds=[0, 7],
                   steps=5)  # fmt: skip
    with pytest.raises(ValueError, match="eval_seeds has duplicates"):
        gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, eval_seeds=[4, 4],
                   steps=5)  # fmt: skip
    # A count after tuning seeds reaching past the base starts after them.
    assert cmp.check_arguments(["booth"], ["vanilla"], [0.1], 1200, 5, None, 2).eval_seeds == (
        1200,
        1201,
    )


def test_pairwise_rows_and_their_errors(booth):
    rows = booth.pairwise()
    assert {r["metric"] for r in rows} == {"final_gap", "steps_to_target"}  # no held-out data
    assert all(r["n"] <= 4 and r["a"] == "vanilla" and r["b"] == "adam" for r in rows)
    assert repr(rows) == repr(booth.pairwise())  # a fixed resampling seed: the same rows
    with pytest.raises(ValueError, match="unknown metrics"):
        booth.pairwise(["accuracy"])
