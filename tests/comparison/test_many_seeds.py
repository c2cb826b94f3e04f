"""issue 23: ``--seeds 100000`` draws its keys in one vectorised call and draws a
bounded number of paths (it ran past 300 s creating one key per seed in Python)."""

import jax
import jax.numpy as jnp
import pytest

import jaxgd as gd
from jaxgd.comparison import _chosen
from jaxgd.report import _paths


@pytest.mark.parametrize("seeds", [[0, 1, 2, 3], [7, 2**31 - 1, 2**31 + 5, 2**32 - 1, 2**40]])
def test_the_key_table_is_the_seed_rule_bit_for_bit(seeds):
    table = _chosen.seed_key_table(seeds)
    for row, seed in zip(table, seeds, strict=True):
        assert jnp.array_equal(row, jnp.stack(_chosen.seed_keys(seed)))


def test_many_seeds_draw_their_keys_at_once_and_a_bounded_number_of_paths(monkeypatch):
    made = []
    real = jax.random.PRNGKey
    monkeypatch.setattr(jax.random, "PRNGKey", lambda s, *a, **k: made.append(1) or real(s))
    seeds = 3 * _paths.MOST_PATHS
    result = gd.compare(["booth"], ["adam"], learning_rates=[0.1], seeds=seeds, steps=3)
    assert len(made) < 8, f"{len(made)} keys made one by one for {seeds} seeds"
    fig = gd.report.figures.paths_figure(result, result.problems[0])
    drawn = [line for line in fig.axes[0].lines if (line.get_gid() or "").startswith("path:")]
    assert len(drawn) == _paths.MOST_PATHS
    assert f"first {_paths.MOST_PATHS} of {seeds} seeds" in fig.axes[0].get_title()
