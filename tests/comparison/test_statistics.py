"""Paired statistics (jaxgd.comparison._statistics): hand-computable cases, the
edges (ties, infinite and zero values, too few seeds), and a calibration by
simulation whose figures the guide docs/guides/statistics.md quotes."""

from __future__ import annotations

import math
import pathlib

import numpy as np
import pytest

import jaxgd as gd

cmp = gd.comparison
GUIDE = pathlib.Path(__file__).parents[2] / "docs" / "guides" / "statistics.md"

# The calibration's synthetic steps to target, seed by seed: a seed's difficulty
# (log-normal, sigma 0.5, shared by both optimizers: common random numbers) times
# each run's own noise (log-normal, sigma NOISE, independent between a and b), so
# log(b / a) has standard deviation NOISE * sqrt(2) around log(slowdown).
SEEDS = 10
NOISE = 0.05
NULL_REPEATS = 1000  # identical optimizers: the brief's 200, five times over for precision
POWER_REPEATS = 200  # b 10 % slower


def verdicts(slowdown: float, noise: float, repeats: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(repeats):
        difficulty = 1000 * rng.lognormal(0.0, 0.5, SEEDS)
        a = difficulty * rng.lognormal(0.0, noise, SEEDS)
        b = slowdown * difficulty * rng.lognormal(0.0, noise, SEEDS)
        out.append(cmp.paired_comparison(a, b, metric="steps_to_target")["verdict"])
    return out


@pytest.fixture(scope="module")
def calibration() -> dict[str, float]:
    null = verdicts(1.0, NOISE, NULL_REPEATS)
    slower = verdicts(1.1, NOISE, POWER_REPEATS)
    noisier = verdicts(1.1, 2 * NOISE, POWER_REPEATS)
    return {
        "false": sum(v in ("a better", "b better") for v in null) / NULL_REPEATS,
        "power": slower.count("a better") / POWER_REPEATS,
        "wrong_way": slower.count("b better") / POWER_REPEATS,
        "power_noisier": noisier.count("a better") / POWER_REPEATS,
    }


def test_identical_optimizers_rarely_get_a_verdict(calibration):
    rate = calibration["false"]
    assert rate <= 0.05, f"false verdicts in {rate:.1%} of {NULL_REPEATS} repeats (at most 5%)"


def test_a_clone_ten_percent_slower_is_found(calibration):
    power, wrong = calibration["power"], calibration["wrong_way"]
    assert power >= 0.8, f"10% slower found in {power:.1%} of {POWER_REPEATS} repeats (>= 80%)"
    assert wrong == 0, f"called the slower one better in {wrong:.1%} of repeats"


def test_the_guide_quotes_the_calibration(calibration):
    text = " ".join(GUIDE.read_text().split())
    for figure, repeats in [
        (calibration["false"], NULL_REPEATS),
        (calibration["power"], POWER_REPEATS),
        (calibration["power_noisier"], POWER_REPEATS),
    ]:
        assert f"{figure:.1%} of {repeats} repeats" in text, f"{figure:.1%} of {repeats}"


def test_a_constant_ratio_is_exact():
    a = np.array([10.0, 20, 30, 40, 50, 60, 70, 80, 90, 100])
    row = cmp.paired_comparison(a, 2 * a, metric="steps_to_target")
    assert (row["ratio"], row["ci_low"], row["ci_high"]) == (2.0, 2.0, 2.0)
    assert row["n"] == 10
    # every log ratio positive: the smallest two-sided signed-rank p-value, 2 / 2**10
    assert row["p_value"] == row["p_raw"] == 2 / 2**10
    assert row["verdict"] == "a better"  # b takes twice the steps
    higher = cmp.paired_comparison(a, 2 * a, metric="accuracy", lower_is_better=False)
    assert higher["verdict"] == "b better"
    swapped = cmp.paired_comparison(2 * a, a, metric="steps_to_target")
    assert swapped["ratio"] == 0.5 and swapped["verdict"] == "b better"


def test_the_ratio_is_the_geometric_mean_and_the_interval_holds_it():
    a = np.array([1.0, 1, 1, 1, 1, 1])
    b = np.array([1.0, 4, 1, 4, 1, 4])
    row = cmp.paired_comparison(a, b, metric="loss")
    assert row["ratio"] == pytest.approx(2.0)  # (1 * 4)^(1/2)
    assert 1.0 <= row["ci_low"] <= row["ratio"] <= row["ci_high"] <= 4.0
    # three equal pairs are dropped by the test; 3 pairs cannot reach 0.05 (2/2^3)
    assert row["p_raw"] == pytest.approx(0.25)
    assert row["verdict"] == "no difference"


def test_the_interval_is_reproducible_and_depends_on_the_seed():
    rng = np.random.default_rng(3)
    a, b = rng.lognormal(size=8), rng.lognormal(size=8)
    first = cmp.paired_comparison(a, b, metric="m")
    assert first == cmp.paired_comparison(a, b, metric="m")
    other = cmp.paired_comparison(a, b, metric="m", seed=1)
    assert other["ci_low"] != first["ci_low"] and other["ratio"] == first["ratio"]


def test_equal_runs_are_a_tie_never_a_win():
    a = np.array([5.0, 7.0, 9.0])
    row = cmp.paired_comparison(a, a.copy(), metric="m")
    assert (row["ratio"], row["ci_low"], row["ci_high"]) == (1.0, 1.0, 1.0)
    assert row["p_raw"] == 1.0 and row["verdict"] == "no difference"


def test_up_to_13_seeds_the_p_value_is_scipys_exact_one_counted_here(monkeypatch):
    """Up to 13 pairs SciPy's p-value is exact; with ties or zeros it counts all
    2**n sign flips one call at a time (20 s for a 12-seed table). The engine
    counts them in one product, without scipy.stats, and must give SciPy's value."""
    scipy_stats = pytest.importorskip("scipy.stats")
    rng = np.random.default_rng(3)
    cases = []
    for n in (2, 5, 8, 12, 13):
        for _ in range(4):
            a = rng.integers(50, 500, n).astype(float)
            ratio = rng.choice([0.25, 0.5, 1.0, 2.0, 4.0, 8.0], n)  # exact: ties and zeros
            cases.append((a, a * ratio))
        cases.append((np.ones(n), rng.lognormal(0.1, 0.2, n)))  # no tie: SciPy's exact branch
    expected = [
        scipy_stats.wilcoxon(np.log(b / a), zero_method="wilcox").pvalue
        if np.log(b / a).any() else 1.0
        for a, b in cases
    ]  # fmt: skip

    def refused(*args, **kwargs):
        raise AssertionError("scipy's permutation test was called")

    monkeypatch.setattr(scipy_stats, "permutation_test", refused)
    monkeypatch.setattr(scipy_stats, "wilcoxon", refused)
    got = [cmp.paired_comparison(a, b, metric="m")["p_raw"] for a, b in cases]
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=0)
    assert min(got) < 0.05 < max(got)  # the cases reach both sides of the level
    monkeypatch.undo()  # more than 13 pairs: SciPy's test itself
    a, b = np.ones(14), rng.lognormal(0.1, 0.2, 14)
    expected = scipy_stats.wilcoxon(np.log(b / a), zero_method="wilcox").pvalue
    assert cmp.paired_comparison(a, b, metric="m")["p_raw"] == pytest.approx(expected, rel=1e-12)


def test_infinite_and_zero_values():
    inf = math.inf
    both = cmp.paired_comparison([inf, 10, 20], [inf, 20, 40], metric="steps_to_target")
    assert both["n"] == 2 and both["ratio"] == pytest.approx(2.0)  # the inf pair left out
    for a, b in [([inf, 10], [30, 20]), ([0.0, 10], [1.0, 20]), ([0.0, 10], [inf, 20])]:
        row = cmp.paired_comparison(a, b, metric="steps_to_target")
        assert row["verdict"] == "incomparable" and math.isnan(row["ratio"]), (a, b)
        assert math.isnan(row["p_value"]) and row["n"] == 0
    never = cmp.paired_comparison([inf, inf], [inf, inf], metric="steps_to_target")
    assert never["verdict"] == "incomparable"


@pytest.mark.parametrize(
    ("a", "b", "match"),
    [
        ([3.0], [4.0], r"a verdict needs at least 2 paired evaluation seeds, got 1; run more"),
        ([3.0, 4.0], [4.0, 5.0, 6.0], "a has 2 seeds and b 3"),
        ([3.0, np.nan], [4.0, 5.0], "a holds NaN or negative values"),
        ([3.0, 4.0], [-4.0, 5.0], "b holds NaN or negative values"),
        ([[3.0, 4.0]], [[4.0, 5.0]], "1-D array over the evaluation seeds"),
    ],
)
def test_bad_values_are_refused_with_the_fix(a, b, match):
    with pytest.raises(ValueError, match=match) as info:
        cmp.paired_comparison(a, b, metric="steps_to_target")
    assert "paired_comparison(metric='steps_to_target')" in str(info.value)


def test_holm_on_a_known_list():
    # sorted: 0.01 x 4, 0.02 x 3, 0.03 x 2 (then the running maximum), 0.5 x 1
    got = cmp.holm([0.03, 0.5, 0.01, 0.02, math.nan])
    np.testing.assert_allclose(got[:4], [0.06, 0.5, 0.04, 0.06])
    assert math.isnan(got[4])
    assert cmp.holm([0.4, 0.5]).tolist() == [0.8, 0.8]  # capped at 1, then monotone
    assert cmp.holm([0.9, 0.8]).tolist() == [1.0, 1.0]
    assert cmp.holm([]).size == 0


def _table():
    rng = np.random.default_rng(7)

    def noise():
        return rng.lognormal(0.0, 0.05, 10)

    table = {}
    for problem, scale in [("quadratic", 1.0), ("rosenbrock", 3.0)]:
        vanilla = scale * 100 * rng.lognormal(0.0, 0.5, 10)
        table[problem] = {
            "vanilla": {"steps": vanilla, "loss": np.full(10, 1e-3)},
            "adam": {"steps": vanilla / 2 * noise(), "loss": 1e-3 * noise()},
            "clone": {"steps": vanilla * noise(), "loss": np.full(10, 1e-3)},
        }
    return table


def test_pairwise_rows_and_the_correction_across_the_table():
    table = _table()
    rows = cmp.pairwise(table, ["steps", "loss"])
    assert len(rows) == 2 * 2 * 3  # problems x metrics x pairs
    keys = {"problem", "a", "b", "metric", "ratio", "ci_low", "ci_high", "p_value", "p_raw",
            "verdict"}  # fmt: skip
    assert all(keys <= set(r) for r in rows)
    assert [(r["problem"], r["metric"], r["a"], r["b"]) for r in rows[:4]] == [
        ("quadratic", "steps", "vanilla", "adam"),
        ("quadratic", "steps", "vanilla", "clone"),
        ("quadratic", "steps", "adam", "clone"),
        ("quadratic", "loss", "vanilla", "adam"),
    ]
    np.testing.assert_allclose([r["p_value"] for r in rows], cmp.holm([r["p_raw"] for r in rows]))
    # a row equals paired_comparison of its values, but for the correction
    first = rows[0]
    q = table["quadratic"]
    alone = cmp.paired_comparison(q["vanilla"]["steps"], q["adam"]["steps"], metric="steps")
    assert {k: first[k] for k in alone if k != "p_value"} == {
        k: v for k, v in alone.items() if k != "p_value"
    }
    # 10 seeds, every pair one way: raw p = 2/2^10, times at most 12 rows: still < 0.05
    assert first["p_raw"] == pytest.approx(2 / 2**10)
    assert first["p_raw"] < first["p_value"] <= 12 * first["p_raw"]
    verdict = {(r["problem"], r["metric"], r["a"], r["b"]): r["verdict"] for r in rows}
    assert verdict["quadratic", "steps", "vanilla", "adam"] == "b better"
    assert verdict["rosenbrock", "steps", "adam", "clone"] == "a better"
    assert verdict["quadratic", "loss", "vanilla", "clone"] == "no difference"  # equal: a tie


def test_pairwise_baseline_and_direction():
    rows = cmp.pairwise(_table(), ["steps"], baseline="clone", lower_is_better={"steps": True})
    assert [(r["a"], r["b"]) for r in rows] == [("clone", "vanilla"), ("clone", "adam")] * 2
    with pytest.raises(ValueError, match="baseline 'sgd' is not among"):
        cmp.pairwise(_table(), ["steps"], baseline="sgd")
    with pytest.raises(ValueError, match="names no direction for metric 'steps'"):
        cmp.pairwise(_table(), ["steps"], lower_is_better={"loss": True})
    with pytest.raises(ValueError, match="'vanilla' has no metric 'accuracy'"):
        cmp.pairwise(_table(), ["accuracy"])
    one_seed = {"p": {"x": {"m": [1.0]}, "y": {"m": [2.0]}}}
    with pytest.raises(ValueError, match=r"pairwise\(problem='p', metric='m'.*at least 2"):
        cmp.pairwise(one_seed, ["m"])


def test_a_consistent_difference_under_the_margin_is_no_win():
    """Two converged runs whose held-out losses differ by 0.002 % on every seed (as on
    the default comparison's breast-cancer problem) are consistent, but no win: the
    interval lies within the 0.1 % band (MARGIN). Past the band a verdict is named."""
    rng = np.random.default_rng(3)
    a = 0.08574 * (1 + 1e-6 * rng.standard_normal(20))
    tiny = cmp.paired_comparison(a, a * 1.00002, metric="eval_loss")
    assert tiny["p_value"] < 1e-4 and tiny["ci_low"] > 1.0  # significant, yet:
    assert tiny["verdict"] == "no difference"
    real = cmp.paired_comparison(a, a * 1.005, metric="eval_loss")
    assert real["ci_low"] > 1 + cmp.MARGIN and real["verdict"] == "a better"
