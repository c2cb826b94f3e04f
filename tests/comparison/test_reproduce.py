"""jaxgd's reproductions of published results: the list, each entry's definition and a
short case of each, the report's page, and the command.

The full entries run in ``jaxgd reproduce all`` (minutes); here each runs a short
case (``quick=True``) except AlgoPerf's, which is instant and runs whole.
"""

from __future__ import annotations

import csv
import math
import pathlib

import pytest

import jaxgd as gd
from jaxgd.cli import main

DATA = pathlib.Path(gd.comparison.__file__).parent / "data"
NAMES = ["algoperf-score", "crowded-valley", "edge-of-stability"]


def test_one_list_of_reproductions():
    assert gd.comparison.reproductions() == NAMES
    assert all(gd.comparison.describe(n) for n in NAMES)


def test_an_unknown_name_is_refused_listing_the_known_ones():
    with pytest.raises(ValueError, match="unknown reproduction 'nope'.*" + ", ".join(NAMES)):
        gd.comparison.reproduce("nope")


def test_algoperf_entry_reproduces_all_16_scores():
    rep = gd.comparison.reproduce("algoperf-score")
    assert rep.passed and rep.counts() == {"pass": 16, "fail": 0, "not reached": 0}
    assert all(abs(c.difference) <= 1e-12 for c in rep.checks)
    assert rep.checks[0].label == "schedule_free_adamw_v2"  # the leaderboard's order
    assert rep.checks[0].published == pytest.approx(0.567901, abs=1e-6)


def _cv_rows():
    with open(DATA / "crowded_valley_quadratic_deep.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_crowded_valley_rows_name_their_source_and_their_deepobs_instance():
    rows = _cv_rows()
    assert len(rows) == 13
    assert {r["setting"] for r in rows} == {
        f"{kind} {opt}" for kind in ("one-shot", "tuned") for opt in ("SGD", "momentum", "Adam")
    }
    assert all(r["file"].startswith("results/") and r["file"].endswith(".json") for r in rows)
    # Every epoch-0 test loss is the theta = 1 test loss of one of the first 11 DeepOBS
    # instances (float32, to 1e-6): the Hessian each run trained on is identified.
    start = {}
    for k in range(11):
        problem = gd.problems.get("quadratic_deep", instance=k)
        start[k] = float(problem.loss(problem.init(None), problem.test_data))
    for r in rows:
        logged = float(r["epoch0_test_loss"])
        assert any(abs(v - logged) <= 1e-6 * logged for v in start.values()), r["file"]


@pytest.mark.slow  # about 7 s on 2 cores: one setting, 2 seeds, 700 steps
def test_crowded_valley_short_case():
    rep = gd.comparison.reproduce("crowded-valley", quick=True)
    assert rep.passed, rep.checks
    (sgd,) = rep.checks
    assert sgd.label == "tuned SGD, seed 43 (instance 0)"
    assert sgd.published == pytest.approx(87.2070813860212, rel=1e-15)
    # 2 minibatch orders of 700 steps: within 1% of the published run
    assert abs(sgd.difference) < 0.01 * sgd.published


@pytest.mark.slow  # about 11 s on 2 cores: 800 steps with the sharpness every 50
def test_edge_of_stability_short_case():
    rep = gd.comparison.reproduce("edge-of-stability", quick=True)
    assert rep.passed, rep.checks
    (gd_run,) = rep.checks
    assert gd_run.published == pytest.approx(2 / 0.4)  # the limit, from gd.sgd(0.4)
    assert abs(gd_run.measured / gd_run.published - 1) <= 0.10


def test_a_check_that_is_not_reached_is_never_a_pass():
    check = gd.comparison.Check("x", 1.0, math.nan, "±10%", "not reached")
    rep = gd.comparison.Reproduction(
        "x", "t", "c", "s", (check,), passed=False, verdict="v", panels=()
    )
    assert rep.counts() == {"pass": 0, "fail": 0, "not reached": 1}
    with pytest.raises(ValueError, match="status must be one of"):
        gd.comparison.Check("x", 1.0, 1.0, "", "ok")


def test_report_page_and_figure(tmp_path):
    rep = gd.comparison.reproduce("algoperf-score")
    md, png = gd.report.save_reproduction(rep, tmp_path / "gallery")
    text = md.read_text()
    row = r"| schedule_free_adamw_v2 | 0.567901234568 | 0.567901234568 | \|diff\| <= 1e-12 | pass |"
    assert row in text
    assert "![" in text and "(algoperf-score.png)" in text and "**REPRODUCED" in text
    assert png.stat().st_size > 10_000
    assert "REPRODUCED" in gd.report.reproduction_text(rep).splitlines()[-1]


def test_command_lists_refuses_and_writes(tmp_path, capsys):
    assert main(["reproduce", "--list"]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == NAMES
    assert main(["reproduce", "nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "known ones are: " + ", ".join(NAMES) in err
    assert main(["reproduce"]) == 2
    capsys.readouterr()
    assert main(["reproduce", "algoperf-score", "--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["algoperf-score.md", "algoperf-score.png"]
    assert "REPRODUCED" in capsys.readouterr().out
