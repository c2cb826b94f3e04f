"""The README's quick start runs as written.

The README is the front page: the two commands, the quick start, a map of the
documentation. What moved to the documentation runs there
(tests/test_docs.py runs every guide's code: the comparison, the mesh and the
optax/optimistix/Flax/Equinox examples among them).
"""

import pathlib
import re

import jax.numpy as jnp
import pytest

import jaxgd as gd

README = (pathlib.Path(__file__).parents[1] / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)[:2]
    assert commands[0].startswith("pip install") and "jaxgd compare" in commands[0]
    # The whole suite, exactly as CI runs it; the text after the commands says how a
    # newcomer skips the slow cases locally (issue 23).
    assert commands[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (pathlib.Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()
    assert 'python -m pytest -m "not slow"' in README.split("<!-- intro -->")[0]


def test_quick_start_runs_and_fits(capsys):
    section = README.split("## Quick start", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README quick start", "exec"), namespace)
    out = capsys.readouterr().out
    assert "partials at the start" in out and "CONVERGED" in out
    result = namespace["result"]
    assert gd.Status(int(result.status)) == gd.Status.CONVERGED
    # marks = 2 h + 0.5 a + 0.01 h a: d/dh = 2 + 0.01 a = 2.9, d/da = 0.5 + 0.01 h = 0.56
    # at h = 6, a = 90 (float32: a few ulps).
    partials = namespace["marks_partials"]
    assert list(partials) == ["hours", "attendance"]
    assert float(partials["hours"]) == pytest.approx(2.9, rel=1e-6)
    assert float(partials["attendance"]) == pytest.approx(0.56, rel=1e-6)
    assert "{'hours': 2.9, 'attendance': 0.56}" in out
    # The loss's partials: d/dw_j mean((X w + b - y)^2) = mean(2 r x_j), d/db = mean(2 r).
    x, y = namespace["data"]
    p = namespace["params"]
    r = x @ jnp.array([p["hours_studied"], p["attendance"]]) + p["bias"] - y
    by_hand = {"hours_studied": 2 * r @ x[:, 0], "attendance": 2 * r @ x[:, 1], "bias": 2 * r.sum()}
    start = gd.partials(namespace["loss"], p, namespace["data"])
    for name, value in by_hand.items():
        # float32 sums of 200 terms: a few ulps of the largest term.
        assert float(start[name]) == pytest.approx(float(value) / len(y), rel=1e-5, abs=1e-4)
    # The two answers to "how far to step": both inside the stable range.
    lr, test = namespace["lr"], namespace["test"]
    assert test.suggested < lr.max_stable and lr.recommended < lr.max_stable
    assert test.blow_up > lr.max_stable  # below 2/L a quadratic loss cannot blow up


def test_readme_is_short_and_points_to_the_gallery():
    assert len(README.encode()) <= 12 * 1024, "the README is the front door: keep it <= 12 KB"
    assert "](docs/gallery/)" in README
    assert (pathlib.Path(__file__).parents[1] / "docs" / "gallery").is_dir()
