"""DeepOBS quadratic_deep, rebuilt exactly: checked against the numbers DeepOBS logged.

The logged values are epoch-0 test losses (theta = 1, before any step) from
Crowded Valley's published DeepOBS runs (github.com/SirRob1997/Crowded-Valley---Results,
commit df102fc28e41312a5ea3fbb16a482c250bbb45b9), ``results/large_budget/none/
quadratic_deep/GradientDescentOptimizer/num_epochs__100__batch_size__128__learning_rate__
1.5375920235e-02/random_seed__4{3,4,5}_*.json``, ``test_losses[0]``; the runs of seeds
43, 44, 45 ran in one process, so they trained on instances 0, 1, 2 (see
:mod:`jaxgd.problems._deepobs`). The same numbers are vendored with the
``crowded-valley`` reproduction (``jaxgd/comparison/data/crowded_valley_quadratic_deep.csv``).
"""

from __future__ import annotations

import numpy as np
import pytest

import jaxgd as gd

LOGGED_EPOCH0_TEST_LOSS = {0: 353.44676426478793, 1: 347.3582327706473, 2: 351.8407985142299}


@pytest.mark.parametrize("instance", [0, 1, 2])
def test_epoch0_test_loss_is_the_one_deepobs_logged(instance):
    problem = gd.problems.get("quadratic_deep", instance=instance)
    value = float(problem.loss(problem.init(None), problem.test_data))
    # float32 evaluation of a sum of 896 terms near 350: agreement to 1e-6 relative
    # (a different Hessian draw is off by > 1e-2, see the instances above).
    assert value == pytest.approx(LOGGED_EPOCH0_TEST_LOSS[instance], rel=1e-6)


def test_definition_matches_deepobs():
    problem = gd.problems.get("quadratic_deep")
    eigenvalues, matrix = gd.problems.quadratic_deep_hessian(0)
    assert np.sum(eigenvalues < 1.0) == 90 and np.sum(eigenvalues > 30.0) == 10
    np.testing.assert_allclose(np.linalg.eigvalsh(matrix), np.sort(eigenvalues), atol=1e-9)
    assert problem.data.shape == (1000, 100) and problem.test_data.shape == (896, 100)
    assert problem.batch_size == 128 and 100 * (1000 // problem.batch_size) == 700
    np.testing.assert_array_equal(np.asarray(problem.init(None)), np.ones(100, np.float32))
    # The training mean is the minimiser: the gradient there is zero (float32).
    grad = np.asarray(gd.gradient(problem.loss)(problem.optimum_params, problem.data))
    assert np.max(np.abs(grad)) < 1e-4
    start = float(problem.loss(problem.init(None), problem.data))
    assert problem.optimum_value < problem.target < start


def test_largest_curvature_is_the_spectrum_maximum():
    problem = gd.problems.get("quadratic_deep")
    top = float(gd.max_curvature(problem.loss, problem.init(None), problem.data, iters=1000))
    # The top two eigenvalues are 53.129 and 52.824: 1000 power iterations
    # converge to 1e-5 relative (float32 Hessian-vector products).
    assert top == pytest.approx(float(np.max(gd.problems.quadratic_deep_hessian(0)[0])), rel=1e-5)
    assert top == pytest.approx(53.12901539863683, rel=1e-5)


def test_bad_instance_is_refused():
    with pytest.raises(ValueError, match=r"instance must be an int >= 0"):
        gd.problems.get("quadratic_deep", instance=-1)
