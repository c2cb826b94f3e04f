"""Tests for jaxgd.report: report.md, results.json and the PNG figures of a small comparison."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest

import jaxgd as gd

PROBLEMS = ["booth", "student_marks"]
OPTIMIZERS = ["vanilla", "adam"]
RATES = [0.01, 0.1, 0.3]
SEEDS = 2


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    result = gd.compare(PROBLEMS, OPTIMIZERS, learning_rates=RATES, seeds=SEEDS, steps=40)
    out = tmp_path_factory.mktemp("report")
    path = result.save(out / "nested" / "report")
    return result, path.parent


def test_report_md_holds_protocol_tables_and_figures(saved):
    result, out = saved
    text = (out / "report.md").read_text()
    assert "## Protocol" in text and "fewest diverged seeds" in " ".join(text.split())
    assert "| problem | optimizer | lr |" in text
    for name in PROBLEMS:
        assert f"## {name}" in text
    links = [line.split("](")[1].rstrip(")") for line in text.splitlines() if line.startswith("![")]
    # Per problem a loss figure and a sensitivity figure; paths for 2-D Booth; the profile.
    assert len(links) == 2 * len(PROBLEMS) + 1 + 1
    for link in links:
        assert (out / link).is_file()


def test_results_json_parses_and_holds_every_run(saved):
    result, out = saved
    data = json.loads((out / "results.json").read_text())
    assert data["schema"] == "jaxgd.comparison" and data["schema_version"] == 1
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


def test_figures_are_real_images(saved):
    _, out = saved
    pngs = sorted((out / "figures").glob("*.png"))
    names = {p.name for p in pngs}
    assert {"loss_booth.png", "lr_booth.png", "paths_booth.png", "performance_profile.png"} <= names
    assert "paths_student_marks.png" not in names  # 3 parameters: no contour plot
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert png.stat().st_size < 300_000
        image = matplotlib.image.imread(png)
        assert image.shape[0] >= 300 and image.shape[1] >= 500
        assert image[..., :3].std() > 0.05  # not a blank canvas


def test_markdown_and_json_without_saving(saved):
    result, _ = saved
    text = result.to_markdown()
    assert "![" not in text  # no figures drawn, none linked
    assert json.loads(result.to_json())["steps"] == 40
    table = result.summary_table()
    assert table.splitlines()[0].startswith("problem")
    assert len(table.splitlines()) == 2 + len(PROBLEMS) * len(OPTIMIZERS)


def test_unwritable_folder_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(ValueError, match="cannot write the report folder"):
        gd.report.check_writable(blocker / "report")
