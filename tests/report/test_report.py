"""Tests for jaxgd.report and jaxgd.comparison: report.md, results.json, the figures' contents,
and a report folder replaced whole or not at all, never over a user's files."""

from __future__ import annotations

import json
import os
import pathlib
import re
import types

import matplotlib.image
import numpy as np
import pytest

import jaxgd as gd
from jaxgd.report import _axes as axes  # the plain-text log labels, tested alone
from jaxgd.report import _folder as report_folder
from jaxgd.report import _paths as paths  # cutting a path at the frame, tested alone

figures = gd.report.figures

ROOT = pathlib.Path(__file__).parents[2]
PROBLEMS = ["booth", "student_marks"]
OPTIMIZERS = ["vanilla", "adam"]
RATES = [0.01, 0.1, 0.3]
SEEDS = 2
EVAL_SEEDS = 4


@pytest.fixture(scope="module")
def result():
    return gd.compare(
        PROBLEMS, OPTIMIZERS, learning_rates=RATES, seeds=SEEDS, eval_seeds=EVAL_SEEDS, steps=40
    )


@pytest.fixture(scope="module")
def saved(result, tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    path = gd.report.save(result, out / "nested" / "report")
    return result, path.parent


def _tree(folder: pathlib.Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_report_md_holds_protocol_tables_and_figures(saved):
    result, out = saved
    text = (out / "report.md").read_text()
    assert "## Protocol" in text and "fewest diverged seeds" in " ".join(text.split())
    assert "| problem | optimizer | lr |" in text
    for name in PROBLEMS:
        assert f"## {name}" in text
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    # Per problem a loss, a sensitivity and a ratios figure; paths for 2-D Booth; the profile.
    assert len(links) == 3 * len(PROBLEMS) + 1 + 1
    assert sorted(links) == sorted(f"figures/{n}.png" for n in figures.figure_names(result))
    for link in links:
        assert (out / link).is_file()


def test_the_header_names_the_machine_once(saved):
    result, out = saved
    header = (out / "report.md").read_text().splitlines()[2]
    m = result.machine
    assert f"JAX {m['jax_version']}" in header and f"{m['cpu_count']} CPU cores" in header
    assert "(cpu, cpu" not in header and header.count("cpu") <= 1


def test_results_json_parses_and_holds_every_run(saved):
    result, out = saved
    data = gd.comparison.load(out / "results.json")
    assert data == json.loads(result.to_json()) | {"created": data["created"]}
    assert (
        data["schema"] == "jaxgd.comparison"
        and data["schema_version"] == gd.comparison.SCHEMA_VERSION
    )
    assert data["seeds"] == [0, 1] and data["eval_seeds"] == [1000, 1001, 1002, 1003]
    assert len(data["pairwise"]) == len(result.pairwise())
    assert all(p["step_costs"] is None and p["sharpness"] is None for p in data["problems"])
    for key in ["jax_version", "backend", "device_kind", "cpu_count"]:
        assert data["machine"][key]
    assert len(data["problems"]) == len(PROBLEMS)
    for problem in data["problems"]:
        runs = problem["runs"]
        assert len(runs) == len(OPTIMIZERS) * len(RATES) * SEEDS
        seen = {(r["optimizer"], r["learning_rate"], r["seed"]) for r in runs}
        assert len(seen) == len(runs)
        for run in runs:
            assert run["status"] in {s.name for s in gd.Status}
            assert 0 <= run["steps"] <= 40
            assert run["final_loss"] is None or np.isfinite(run["final_loss"])
        assert set(problem["chosen_learning_rates"]) == set(OPTIMIZERS)
        for label in OPTIMIZERS:  # every evaluation seed's run, in order
            evaluated = problem["evaluation"][label]["runs"]
            assert [r["seed"] for r in evaluated] == data["eval_seeds"]
        for rate in problem["chosen_learning_rates"].values():
            assert rate in RATES
    assert len(data["summary"]) == len(PROBLEMS) * len(OPTIMIZERS)
    assert set(data["performance_profile"]["algoperf_score"]) == set(OPTIMIZERS)
    # Booth at 0.3 diverges for vanilla (2/L = 0.111): recorded as such.
    booth = next(p for p in data["problems"] if p["name"] == "booth")
    diverged = [
        r for r in booth["runs"] if r["optimizer"] == "vanilla" and r["learning_rate"] == 0.3
    ]
    assert all(r["status"] == "DIVERGED" and r["steps_to_target"] is None for r in diverged)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not a jaxgd results.json"),
        ('{"schema": "something.else", "schema_version": 1}', "not a jaxgd comparison"),
        ('{"schema": "jaxgd.comparison", "schema_version": 99}', "schema version 99"),
    ],
)
def test_load_refuses_what_is_not_a_comparison(tmp_path, content, match):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        gd.comparison.load(path)


def test_figures_are_real_images(saved):
    result, out = saved
    pngs = sorted((out / "figures").glob("*.png"))
    assert {p.stem for p in pngs} == set(figures.figure_names(result))
    assert "paths_student_marks.png" not in {p.name for p in pngs}  # 3 parameters: no contours
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 300_000
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 300 and image.shape[1] >= 500
        assert image[..., :3].std() > 0.05  # not a blank canvas


def _inside(fig) -> None:
    """The figure's fixed layout cuts nothing: each axes with its titles, labels, tick
    labels and legend, and the figure's own title, lie inside the figure (1 pixel of
    rounding); and pyplot knows nothing of the figure."""
    import matplotlib.pyplot as plt

    assert not plt.get_fignums()  # drawn without pyplot: no global state
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = [ax.get_tightbbox(renderer) for ax in fig.axes]
    boxes += [ax.get_legend().get_window_extent(renderer) for ax in fig.axes if ax.get_legend()]
    boxes += [t.get_window_extent(renderer) for t in fig.texts if t.get_text()]
    for box in boxes:
        assert fig.bbox.x0 - 1 <= box.x0 and box.x1 <= fig.bbox.x1 + 1, (box, fig.bbox)
        assert fig.bbox.y0 - 1 <= box.y0 and box.y1 <= fig.bbox.y1 + 1, (box, fig.bbox)


def _artist(ax, gid):
    found = [a for a in [*ax.lines, *ax.collections] if a.get_gid() == gid]
    assert len(found) == 1, (gid, [a.get_gid() for a in [*ax.lines, *ax.collections]])
    return found[0]


def test_sensitivity_figure_draws_the_stability_limit_and_the_diverged_runs(result):
    booth = result.problems[0]
    fig = figures.sensitivity_figure(result, booth)
    ax = fig.axes[0]
    # Booth's Hessian [[10, 8], [8, 10]] has L = 18: the dotted line stands at 2/18.
    limit = _artist(ax, "stability-limit")
    np.testing.assert_allclose(limit.get_xdata(), [2 / 18, 2 / 18], rtol=1e-4)  # power iteration
    # Vanilla diverged at 0.3 on both seeds: two crosses at 0.3 (times the sideways nudge),
    # drawn at the top, above every finite dot.
    runs = booth.optimizers["vanilla"]
    crosses = _artist(ax, "diverged:vanilla")
    nudge = 10 ** (0.03 * (0 - 0.5))  # vanilla is the first of two optimizers
    np.testing.assert_allclose(crosses.get_xdata(), np.full(runs.diverged.sum(), 0.3 * nudge))
    dots = _artist(ax, "seeds:vanilla")
    assert np.all(crosses.get_ydata() > np.max(dots.get_ydata()))
    assert len(dots.get_xdata()) == (~runs.diverged).sum()
    # The star sits at the chosen rate, on the mean over seeds.
    star = _artist(ax, "chosen:vanilla")
    assert star.get_xdata()[0] == runs.learning_rate == 0.1
    # The legend sits outside the axes (right of them), covering no data.
    legend_box = ax.get_legend().get_window_extent(fig.canvas.get_renderer())
    assert legend_box.x0 >= ax.get_window_extent().x1
    _inside(fig)


def test_loss_figure_bands_run_from_the_best_to_the_worst_seed(result):
    booth = result.problems[0]
    fig = figures.loss_figure(result, booth)
    ax = fig.axes[0]
    for label, runs in booth.optimizers.items():
        # The reported seeds: the evaluation ones (optimum 0: gaps floored at 1e-12).
        gap = np.maximum(runs.evaluation.curves, 1e-12)
        assert gap.shape[0] == EVAL_SEEDS
        band = _artist(ax, f"band:{label}").get_paths()[0].vertices
        for step in (0, 10, 39):
            at = band[np.isclose(band[:, 0], step), 1]
            seeds = gap[:, step]
            np.testing.assert_allclose([at.min(), at.max()], [seeds.min(), seeds.max()])
        median = _artist(ax, f"median:{label}")
        np.testing.assert_allclose(median.get_ydata(), np.median(gap, axis=0))
    _inside(fig)


def test_paths_figure_shows_every_path_whole_and_ends_above_the_minimum(result):
    booth = result.problems[0]
    fig = figures.paths_figure(result, booth)
    for ax, (label, runs) in zip(fig.axes, booth.optimizers.items(), strict=False):
        x0, x1 = ax.get_xlim()
        y0, y1 = ax.get_ylim()
        for j in range(SEEDS):
            path = runs.paths[runs.chosen, j]
            path = path[np.all(np.isfinite(path), axis=1)]
            drawn = _artist(ax, f"path:{label}:{j}")
            np.testing.assert_array_equal(drawn.get_xydata(), path)  # whole, nothing cut
            assert x0 <= path[:, 0].min() and path[:, 0].max() <= x1
            assert y0 <= path[:, 1].min() and path[:, 1].max() <= y1
            star = next(line for line in ax.lines if line.get_marker() == "*")
            assert _artist(ax, f"end:{label}:{j}").get_zorder() > star.get_zorder()
    colorbar = fig.axes[-1]  # every tick labelled: a decade, 10^k (10⁻³ in plain text)
    labels = [t.get_text() for t in colorbar.get_yticklabels()]
    assert len(labels) >= 2 and all(re.fullmatch(r"10⁻?[⁰¹²³⁴⁵⁶⁷⁸⁹]+", t) for t in labels), labels
    _inside(fig)


def test_paths_figure_draws_the_contours_the_comparison_computed(result):
    """Rendering computes nothing: the contour grid comes with the comparison, and a
    problem result without one (built by hand) gets its paths drawn without contours."""
    import dataclasses

    booth = result.problems[0]
    fig = figures.paths_figure(result, booth)
    ax = fig.axes[0]
    assert ax.get_xlim() == (booth.contours.lo[0], booth.contours.hi[0])
    assert ax.collections  # the filled contours and their lines
    bare = figures.paths_figure(result, dataclasses.replace(booth, contours=None))
    assert len(bare.axes) == len(booth.optimizers)  # no colour bar
    assert not bare.axes[0].collections
    runs = booth.optimizers["vanilla"]
    drawn = _artist(bare.axes[0], "path:vanilla:0").get_xydata()
    np.testing.assert_array_equal(drawn, runs.paths[runs.chosen, 0])


def test_the_limits_text_comes_from_the_optimizer(result):
    booth = result.problems[0]
    fig = figures.sensitivity_figure(result, booth)
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith(f"{booth.stability_formula} = ") for t in texts)
    assert booth.stability_formula == "2/L"
    assert f"rates below 2/L = {booth.stability_limit:.3g}" in gd.report.markdown(result)


@pytest.mark.parametrize("limits", [(1e-12, 1e3), (0.15, 3.0)])  # minor ticks labelled in one
def test_log_labels_are_matplotlibs_in_plain_text(limits):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure()
    FigureCanvasAgg(fig)
    plain, math = fig.subplots(1, 2)
    axes.log_scale(plain, "y")
    math.set_yscale("log")
    for ax in (plain, math):
        ax.set_ylim(*limits)
    fig.canvas.draw()
    digits = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
    wide = limits[1] / limits[0] > 10.0**axes.MINOR_TICKS_DECADES
    assert (len(plain.yaxis.get_minorticklocs()) == 0) == wide  # wide: decades only
    for minor in (False, True) if not wide else (False,):
        ours = [t.get_text() for t in plain.get_yticklabels(minor=minor)]
        theirs = [t.get_text() for t in math.get_yticklabels(minor=minor)]
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs, strict=True):  # 2×10⁻¹ is $\mathdefault{2\times10^{-1}}$
            assert "$" not in a
            b = b.replace("$\\mathdefault{", "").replace("\\times", "×").replace("^{", "")
            assert a.translate(digits) == b.replace("}", "").replace("$", "")
    assert any(t.get_text() for t in plain.get_yticklabels(minor=limits[0] > 0.1))


def test_a_path_leaving_the_frame_is_cut_at_its_edges():
    lo, hi = np.array([0.0, 0.0]), np.array([1.0, 1.0])
    path = np.array([[0.5, 0.5], [5.0, 5.0], [-5.0, 4.0], [6.0, -3.0], [0.2, 0.2], [0.3, 0.3]])
    drawn = paths._clip_path(path, lo, hi)
    # Steps 0->1 (leaves) and 3->4 (comes back) are drawn; 1->2 and 2->3 lie outside: a break.
    np.testing.assert_array_equal(drawn[:2], path[:2])
    assert np.isnan(drawn[2]).all()
    np.testing.assert_array_equal(drawn[3:], path[3:])
    np.testing.assert_array_equal(paths._clip_path(path[4:], lo, hi), path[4:])


def test_markdown_and_json_without_saving(result):
    text = gd.report.markdown(result)
    assert "![" not in text  # no figures drawn, none linked
    assert json.loads(result.to_json())["steps"] == 40
    table = gd.report.summary_table(result)
    assert table.splitlines()[0].startswith("problem")
    assert len(table.splitlines()) == 2 + len(PROBLEMS) * len(OPTIMIZERS)


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write the report folder"):
        gd.report.check_folder(blocker / "report")


# -- the report folder: whole or not at all ------------------------------------------------


@pytest.fixture(scope="module")
def small():
    return gd.compare(["booth"], ["vanilla"], learning_rates=[0.01, 0.1], seeds=1, steps=20)


def test_an_interrupted_save_leaves_the_old_report_whole(saved, small, tmp_path, monkeypatch):
    folder = tmp_path / "report"
    gd.report.save(saved[0], folder)
    before = _tree(folder)
    calls = []

    def interrupted(c, p):
        calls.append(p.name)
        raise KeyboardInterrupt  # Ctrl-C while the figures are drawn

    monkeypatch.setattr(figures, "sensitivity_figure", interrupted)
    with pytest.raises(KeyboardInterrupt):
        gd.report.save(small, folder)
    assert calls == ["booth"]  # the new report's loss figure was written before this
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]  # no temporary folder left


def test_ctrl_c_waits_for_the_swap_to_finish():
    import signal

    from jaxgd._host import ctrl_c_held  # the one guard, which save holds over the swap

    done = []
    with pytest.raises(KeyboardInterrupt), ctrl_c_held():
        os.kill(os.getpid(), signal.SIGINT)  # arrives between the two renames
        done.append("second rename")
    assert done == ["second rename"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_save_killed_mid_way_is_cleaned_up_by_the_next(small, tmp_path):
    folder = tmp_path / "report"
    gd.report.save(small, folder)
    # What a SIGKILL leaves: a half-written new report, and (killed between the two
    # renames) the old one moved aside with the target gone.
    (tmp_path / ".report.jaxgd-tmp-dead").mkdir()
    (tmp_path / ".report.jaxgd-tmp-dead" / "report.md").write_text("half")
    folder.rename(tmp_path / ".report.jaxgd-old-dead")
    before = _tree(tmp_path / ".report.jaxgd-old-dead")
    report_folder._clean_up(folder.resolve())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    assert _tree(folder) == before  # the old report put back
    gd.report.save(small, folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


def test_a_smaller_report_replaces_a_bigger_one_whole(saved, small, tmp_path):
    folder = tmp_path / "report"
    gd.report.save(saved[0], folder)
    assert (folder / "figures" / "loss_student_marks.png").is_file()
    gd.report.save(small, folder)
    assert {p.stem for p in (folder / "figures").iterdir()} == set(figures.figure_names(small))
    assert "student_marks" not in (folder / "report.md").read_text()


@pytest.mark.parametrize(
    ("setup", "match"),
    [
        (lambda d: (d / "report.md").write_text("my notes"), "is not a jaxgd report"),
        (lambda d: (d / "results.json").write_text('{"schema": "mine"}'), "is not a jaxgd report"),
        (lambda d: (d / "notes.txt").write_text("mine"), "also holds files jaxgd did not write"),
        (lambda d: (d / "figures" / "plot.svg").write_text("<svg/>"), "figures/plot.svg"),
    ],
)
def test_a_folder_of_other_files_is_never_written_over(saved, small, tmp_path, setup, match):
    folder = tmp_path / "report"
    if "not a jaxgd" in match:
        folder.mkdir()
    else:  # a jaxgd report to which the user added a file
        gd.report.save(small, folder)
    setup(folder)
    before = _tree(folder)
    with pytest.raises(ValueError, match=match + ".*pass a new or empty folder"):
        gd.report.save(saved[0], folder)
    assert _tree(folder) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]


@pytest.mark.parametrize(
    ("out", "match"), [("", "empty name"), (".", "current folder"), ("..", "current folder")]
)
def test_the_current_folder_and_an_empty_name_are_refused(tmp_path, monkeypatch, out, match):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=match):
        gd.report.check_folder(out)


def test_a_file_is_refused_naming_the_function_called(tmp_path):
    (tmp_path / "report").write_text("")
    with pytest.raises(ValueError, match="^check_folder: .* is a file, not a folder"):
        gd.report.check_folder(tmp_path / "report")
    with pytest.raises(ValueError, match="^save: .* is a file, not a folder"):
        gd.report.save(None, tmp_path / "report")


# -- structure and the docs ------------------------------------------------------------------


def test_the_comparing_guide_counts_the_default_figures():
    # figure_names draws paths where they were recorded; compare records them on 2-D problems.
    problems = [gd.problems.get(name) for name in gd.comparison.DEFAULT_PROBLEMS]
    # loss, lr and ratios each; paths on 2-D ones; heldout where there is held-out data
    count = 3 * len(problems) + sum(p.dimension == 2 for p in problems) + 1
    count += sum(p.test_data is not None for p in problems)
    guide = " ".join((ROOT / "docs" / "guides" / "comparing.md").read_text().split())
    said = re.search(r"runs of \d+ steps, then (\d+) figures", guide)
    assert said and int(said.group(1)) == count


# --------------------------------------------------------------------------- #
# compare(sharpness=True) and a line search: the sharpness figure and the costs
# --------------------------------------------------------------------------- #


@pytest.fixture(scope="module")
def curved(tmp_path_factory):
    # armijo's rate 1.0 overshoots the quadratic (L = 100), so its line search backtracks.
    rates = {"vanilla": [0.001, 0.01], "adam": [0.1], "armijo": [1.0]}
    c = gd.compare(["quadratic"], ["vanilla", "adam", "armijo"], learning_rates=rates, seeds=1,
                   eval_seeds=2, steps=60, sharpness=True)  # fmt: skip
    return c, gd.report.save(c, tmp_path_factory.mktemp("curved") / "report").parent


def test_the_sharpness_figure_is_named_drawn_and_linked(curved):
    c, out = curved
    names = figures.figure_names(c)
    assert names == ["loss_quadratic", "lr_quadratic", "paths_quadratic", "sharpness_quadratic",
                     "ratios_quadratic", "performance_profile"]  # fmt: skip
    png = out / "figures" / "sharpness_quadratic.png"
    image = matplotlib.image.imread(png)
    assert image.shape[0] >= 500 and image[..., :3].std() > 0.05
    text = " ".join((out / "report.md").read_text().split())
    assert "(figures/sharpness_quadratic.png)" in text
    # The sentence says what the figure shows and who sat below its limit (100 < 200).
    assert "top panel shows the largest eigenvalue" in text
    assert "below it: vanilla (median 100 against 2/lr = 200)" in text
    assert "No known limit, or no finite record: armijo." in text


def test_the_sharpness_figure_plots_the_sharpness_and_the_limit(curved):
    c, _ = curved
    p = c.problems[0]
    fig = figures.sharpness_figure(c, p)
    top, bottom = fig.axes[:2]
    vanilla = p.optimizers["vanilla"]
    limit = _artist(top, "limit:vanilla")
    np.testing.assert_allclose(limit.get_ydata(), 2 / vanilla.learning_rate)  # 2/lr = 200
    curve = _artist(top, "sharpness:vanilla")
    np.testing.assert_array_equal(curve.get_xdata(), vanilla.sharpness.steps)
    # float32 round-off of the quadratic's largest eigenvalue, 100.
    np.testing.assert_allclose(curve.get_ydata(), 100.0, rtol=1e-5)
    adam = p.optimizers["adam"]
    np.testing.assert_array_equal(
        _artist(top, "sharpness:adam").get_ydata(), adam.sharpness.preconditioned
    )
    np.testing.assert_allclose(_artist(top, "limit:adam").get_ydata(), 38 / adam.learning_rate)
    assert not [a for a in top.lines if a.get_gid() == "limit:armijo"]  # no known limit
    loss = _artist(bottom, "loss:vanilla")
    np.testing.assert_array_equal(loss.get_xdata(), np.arange(60))
    np.testing.assert_allclose(loss.get_ydata(), np.maximum(vanilla.sharpness.loss, 1e-12))
    assert top.get_yscale() == "log" and bottom.get_yscale() == "log"
    _inside(fig)


def test_the_report_shows_evaluations_and_time_per_step(curved):
    c, out = curved
    text = (out / "report.md").read_text()
    armijo = c.problems[0].optimizers["armijo"].cost
    assert armijo.evaluations_per_step > 2
    assert "| optimizer | lr | evaluations per step | time per step | steps to target |" in text
    row = next(line for line in text.splitlines() if line.startswith("| armijo | 1 |"))
    assert f"| {armijo.evaluations_per_step:.3g} |" in row
    assert re.search(r"\| [\d.]+ (µs|ms|s) \|", row)  # the time per step, with its unit
    assert "Steps are not time: armijo is a line search" in " ".join(text.split())
    summary = gd.report.summary_table(c)
    assert "evaluations per step" in summary.splitlines()[0]


def test_load_reads_version_1_results(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"schema": "jaxgd.comparison", "schema_version": 1, "steps": 5}')
    data = gd.comparison.load(path)
    assert data["steps"] == 5 and data.get("step_costs") is None


# -- figures drawn while the comparison computes ---------------------------------------------


def test_figures_drawn_during_the_comparison_are_those_drawn_after(saved, tmp_path):
    result, out = saved
    with gd.report.FigureDrawer(result.optimizer_labels, result.seeds) as drawer:
        for p in result.problems:
            drawer.add(p)
        drawn = drawer.finish(result)
    names = [n for p in result.problems for n in figures.problem_figure_names(p)]
    assert sorted(drawn) == sorted(names)
    for name, png in drawn.items():  # the same pixels, byte for byte
        assert png == (out / "figures" / f"{name}.png").read_bytes(), name
    path = gd.report.save(result, tmp_path / "r", figures=drawn)
    now, before = _tree(path.parent), _tree(out)
    assert now.pop("results.json") != b"" and before.pop("results.json") != b""  # its date
    assert now == before


def test_a_figure_that_fails_fails_the_save(result, monkeypatch):
    def broken(c, p):
        raise ValueError("cannot draw")

    monkeypatch.setattr(figures, "loss_figure", broken)
    with gd.report.FigureDrawer(result.optimizer_labels, result.seeds) as drawer:
        drawer.add(result.problems[0])
        with pytest.raises(ValueError, match="cannot draw"):
            drawer.finish(result)


def test_figures_drawn_for_other_optimizers_are_not_used(result):
    with gd.report.FigureDrawer(["adam", "vanilla"], result.seeds) as drawer:  # other colours
        drawer.add(result.problems[0])
        assert drawer.finish(result) == {}


def test_the_report_states_the_seeds_the_held_out_losses_and_the_verdicts(saved):
    result, out = saved
    text = " ".join((out / "report.md").read_text().split())
    assert "chosen on 2 tuning seeds (0, 1); every figure reported is from 4 fresh" in text
    assert "evaluation seeds (1000-1003)" in text
    assert "| held-out loss [95% CI] |" in text and "## Verdicts" in text
    assert "docs/guides/statistics.md" in text
    rows = result.pairwise()
    named = sum(r["verdict"] in ("a better", "b better") for r in rows)
    assert f"{named} of {len(rows)} rows name a winner" in text
    # A verdict is named in the table only where the row says so.
    table = gd.report.verdict_table(result)
    assert table.count(" better") == named


def test_ratios_figure_draws_each_interval_as_an_error_bar(result):
    booth = result.problems[0]
    fig = figures.ratios_figure(result, booth)
    ax = fig.axes[0]
    shown = [r for r in booth.intervals() if np.isfinite(r["ratio"])]
    assert shown
    for r in shown:
        point = _artist(ax, f"ratio:{r['metric']}:{r['b']}")
        assert point.get_xdata()[0] == pytest.approx(r["ratio"])
        segment = _artist(ax, f"interval:{r['metric']}:{r['b']}").get_segments()[0]
        np.testing.assert_allclose(sorted(segment[:, 0]), [r["ci_low"], r["ci_high"]])
    _inside(fig)


def test_ratios_figure_makes_room_for_long_labels(result, monkeypatch):
    """The left margin fits the widest label: a long metric name and optimizer names
    (the default report's "training loss − optimum: momentum / vanilla" was cut)."""
    booth = result.problems[0]
    labels = ["vanilla", "momentum", "schedule_free_adamw"]
    rows = [
        {"problem": "booth", "a": "vanilla", "b": b, "metric": m, "ratio": 0.9,
         "ci_low": 0.8, "ci_high": 0.95, "verdict": "b better"}
        for b in labels[1:] for m in ("final_gap", "steps_to_target")
    ]  # fmt: skip
    monkeypatch.setattr(type(booth), "intervals", lambda self: rows)
    fig = figures.ratios_figure(types.SimpleNamespace(optimizer_labels=labels), booth)
    _inside(fig)


def test_ratios_figure_with_no_finite_ratio_says_so(result, monkeypatch):
    booth = result.problems[0]
    nan = float("nan")
    row = {"problem": "booth", "a": "vanilla", "b": "adam", "metric": "steps_to_target",
           "ratio": nan, "ci_low": nan, "ci_high": nan, "verdict": "incomparable"}  # fmt: skip
    monkeypatch.setattr(type(booth), "intervals", lambda self: [row])
    fig = figures.ratios_figure(result, booth)
    assert "incomparable" in fig.axes[0].get_title()


def test_heldout_figure_draws_the_evaluation_seeds_held_out_curves():
    c = gd.compare(["breast_cancer_logistic"], ["vanilla", "adam"], learning_rates=[0.1, 1.0],
                   seeds=1, eval_seeds=3, steps=30)  # fmt: skip
    p = c.problems[0]
    text = " ".join(gd.report.markdown(c).split())
    assert "chosen on 1 tuning seed (0); every figure reported is from 3 fresh" in text
    assert "line: 1 tuning seed (dots)" in figures.sensitivity_figure(c, p).axes[0].get_title()
    assert "heldout_breast_cancer_logistic" in figures.figure_names(c)
    fig = figures.heldout_figure(c, p)
    ax = fig.axes[0]
    for label, r in p.optimizers.items():
        median = _artist(ax, f"median:{label}")
        ev = r.evaluation
        np.testing.assert_array_equal(median.get_xdata(), ev.every * np.arange(31))
        assert ev.held_out_curve[:, -1] == pytest.approx(ev.held_out)  # the returned params
        np.testing.assert_allclose(median.get_ydata(), np.median(ev.held_out_curve, axis=0))
    assert _artist(ax, "eval-target").get_ydata()[0] == pytest.approx(p.problem.eval_target)
    _inside(fig)
    assert "heldout_" not in " ".join(
        figures.figure_names(
            gd.compare(["booth"], ["vanilla"], learning_rates=[0.1], seeds=1, eval_seeds=2, steps=5)
        )
    )


def test_the_paths_figures_y_label_fits_beside_negative_tick_labels():
    """The quadratic's frame has tick labels like "−1.5": the fixed left margin cut
    its y label (seen in the default report)."""
    c = gd.compare(["quadratic"], ["vanilla"], learning_rates=[0.01], seeds=1, eval_seeds=2,
                   steps=40)  # fmt: skip
    _inside(figures.paths_figure(c, c.problems[0]))
