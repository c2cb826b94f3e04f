"""The AlgoPerf score as AlgoPerf publishes it, from its published times to target.

The two tables in ``jaxgd/comparison/data/`` are AlgoPerf v0.6's self-tuning
leaderboard (their source is named in that folder's ``README.md``): the wall-clock
time to target of 16 submissions on 9 workloads, and the ``score_by_wallclock``
AlgoPerf's scoring code computed from it. ``jaxgd reproduce algoperf-score`` reads
the same files.
"""

import csv
import math
import pathlib

import numpy as np
import pytest

import jaxgd as gd

DATA = pathlib.Path(gd.comparison.__file__).parent / "data"


def _time_table() -> dict[str, list[float]]:
    """Submission -> seconds to target per workload (``inf``: not reached; NaN: no result)."""
    with open(DATA / "algoperf_v06_time_to_targets.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert rows[0][0] == "submission" and len(rows[0]) == 10  # 9 workloads
    return {r[0]: [float(x) if x else math.nan for x in r[1:]] for r in rows[1:]}


def _published() -> dict[str, float]:
    with open(DATA / "algoperf_v06_leaderboard.csv", newline="") as f:
        return {r["submission"]: float(r["score_by_wallclock"]) for r in csv.DictReader(f)}


PUBLISHED = _published()


@pytest.fixture(scope="module")
def profile():
    return gd.comparison.performance_profile(_time_table())


def test_the_tables_cover_the_same_16_submissions():
    assert len(PUBLISHED) == 16
    assert set(_time_table()) == set(PUBLISHED)


@pytest.mark.parametrize("submission", sorted(PUBLISHED))
def test_reproduces_the_published_score(profile, submission):
    assert profile["score"][submission] == pytest.approx(PUBLISHED[submission], rel=0, abs=1e-12)


def test_the_exact_area_is_not_the_published_score(profile):
    # The step function's exact area differs from the grid's trapezoid by up to a
    # few thousandths here: the reason the score follows AlgoPerf's grid.
    gaps = [abs(profile["exact_area"][s] - PUBLISHED[s]) for s in PUBLISHED]
    assert 1e-4 < max(gaps) < 5e-3
    assert profile["exact_area"]["schedule_free_adamw_v2"] == pytest.approx(0.567578, abs=1e-6)


def test_the_score_is_the_trapezoid_of_the_returned_profile(profile):
    taus = np.asarray(profile["taus"])
    assert len(taus) == 100 and taus[0] == 1.0 and taus[-1] == 4.0
    for label, rho in profile["rho"].items():
        rho = np.asarray(rho)
        area = np.sum(np.diff(taus) * (rho[1:] + rho[:-1]) / 2) / 3
        assert area == pytest.approx(profile["score"][label], rel=0, abs=1e-14)
