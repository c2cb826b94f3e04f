"""Results are the same bits as jaxgd 0.1 gave for the same inputs.

``tests/run/golden_runs.json`` was written by ``tests/golden_runs.py`` with
jaxgd 0.1, before the run loop was rebuilt. A field the result has gained
since (a new history entry) is not compared; every recorded one must match
to the bit.
"""

import json

import jax
import numpy as np
import pytest
from golden_runs import PATH, runs

RECORDED = json.loads(PATH.read_text())


@pytest.mark.parametrize("name", sorted(RECORDED))
def test_same_bits_as_recorded(name):
    result = runs()[name]()
    now = {
        jax.tree_util.keystr(p): np.asarray(a)
        for p, a in jax.tree_util.tree_leaves_with_path(result)
    }
    for where, (shape, dtype, hexbytes) in RECORDED[name].items():
        assert where in now, f"{name}: the result no longer has {where}"
        a = now[where]
        assert list(a.shape) == shape and str(a.dtype) == dtype, (name, where)
        assert a.tobytes().hex() == hexbytes, f"{name}: {where} differs from the recorded bits"
