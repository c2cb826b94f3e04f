"""The README's quick start runs as written."""

import pathlib
import re

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
