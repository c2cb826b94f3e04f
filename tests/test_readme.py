"""The README's quick start runs as written."""

import pathlib
import re

import jax.numpy as jnp
import pytest

import jaxgd as gd

README = (pathlib.Path(__file__).parents[1] / "README.md").read_text()


def test_readme_starts_with_the_two_commands():
    commands = re.findall(r"```bash\n(.*?)\n```", README, re.S)[:2]
    assert commands[0].startswith("pip install") and "jaxgd compare" in commands[0]
    assert commands[1] == 'pip install -e ".[test]" && python -m pytest'
    ci = (pathlib.Path(__file__).parents[1] / ".ci" / "run").read_text()
    assert commands[1] in ci.splitlines()


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


def test_the_compare_example_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # it writes ./jaxgd-report
    section = README.split("## Comparing optimizers", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    exec(compile(code, "README compare example", "exec"), {})
    assert "booth" in capsys.readouterr().out
    assert (tmp_path / "jaxgd-report" / "report.md").is_file()


def test_the_mesh_example_runs_on_whatever_devices_there_are():
    section = README.split("## Scale-out", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    namespace = {}
    exec(compile(code, "README mesh example", "exec"), namespace)
    result = namespace["result"]
    assert float(result.loss) < 1.05 * namespace["problem"].optimum_value


def test_the_ecosystem_examples_run(capsys):
    section = README.split("## Using jaxgd with optax, optimistix, Flax and Equinox", 1)[1]
    section = section.split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 4
    namespaces = []
    for i, code in enumerate(blocks):
        namespace = {}
        exec(compile(code, f"README ecosystem example {i}", "exec"), namespace)
        namespaces.append(namespace)
    out = capsys.readouterr().out
    optax_ns, optx_ns, flax_ns, eqx_ns = namespaces
    assert abs(optax_ns["result"].params - 1.0).max() < 1e-3  # L-BFGS reached (1, 1)
    assert "L-BFGS: CONVERGED" in out
    assert abs(optx_ns["solution"].value - 1.0).max() < 1e-2
    assert float(flax_ns["loss"]) < 1e-2 and float(flax_ns["result"].loss) < 1e-2
    assert float(eqx_ns["result"].loss) < 0.05


def test_how_far_to_step_quotes_its_numbers():
    """The student-marks numbers of "How far to step" (the MLP's are in test_sharpness)."""
    import importlib.util

    path = pathlib.Path(__file__).parents[1] / "examples" / "how_far_to_step.py"
    spec = importlib.util.spec_from_file_location("how_far_to_step", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    marks = example.student_marks()
    section = README.split("## How far to step", 1)[1].split("\n## ", 1)[0]
    lr = marks["lr"]
    assert f"`L = {lr.curvature:.2f}`" in section and f"`2/L = {lr.max_stable:.3f}`" in section
    below, above = marks["runs"][0.9], marks["runs"][1.1]
    assert float(below.loss) == pytest.approx(24.47, abs=0.01)
    assert f"{float(above.loss):.1e}".replace("+", "") in section
    # the text's factor |1 - lr L| = 1.2 a step: the loss grows by 1.2^2 a step once the
    # top direction dominates
    curve = above.history.loss
    assert float(curve[-1] / curve[-2]) == pytest.approx(1.2**2, rel=1e-3)
    assert f"({marks['test'].suggested:.3f} here)" in section
