"""The rules of the house (shared/DESIGN.md), checked on the source.

Rules, not counts: imports point down the floors, never up or round a circle;
computing never imports rendering and rendering computes nothing; each wing's
implementation is private behind its face; no module or function grows into
a hub; the public face stays small; one definition each of the concepts that
used to be written twice.
"""

from __future__ import annotations

import ast
import pathlib
import re

import pytest

import jaxgd as gd

PACKAGE = pathlib.Path(gd.__file__).parent

# The floors, lowest first: a module may import its own floor and those below.
FLOORS = [
    {"_checks", "_partition", "_host"},
    {"calculus", "checkpoint"},
    {"optimizers", "problems"},
    {"distributed"},
    {"run"},
    {"comparison"},
    {"report"},
    {"cli", "__main__", "__init__"},
]
FLOOR = {name: level for level, names in enumerate(FLOORS) for name in names}
MOST_LINES = 500
MOST_FUNCTION_LINES = 80
MOST_LOOSE_MODULES = 4
MOST_PUBLIC_NAMES = 36


def _modules() -> dict[str, pathlib.Path]:
    return {
        ".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
        for p in sorted(PACKAGE.rglob("*.py"))
    }


MODULES = _modules()


def _absolute(node: ast.ImportFrom, path: pathlib.Path) -> str:
    """The module an ``from ... import`` names, relative imports resolved."""
    if not node.level:
        return node.module or ""
    package = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if path.name != "__init__.py":
        package = package[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: pathlib.Path) -> set[str]:
    """The jaxgd modules a file imports, at the top or inside functions."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(node, path)
            submodules = {f"{module}.{a.name}" for a in node.names} & set(MODULES)
            names |= submodules
            if len(submodules) < len(node.names):  # names from the module itself
                names.add(module)
    return {n for n in names if n in MODULES and n != "jaxgd"}


# The compiled loop knows no files, devices, progress bars, reports or optimizer
# classes: what it needs it is handed as a value, or asks the optimizer.
LOOP = ("jaxgd.run._body", "jaxgd.run._loop", "jaxgd.run._state", "jaxgd.run._result")
NOT_IN_THE_LOOP = ("jaxgd.optimizers", "jaxgd.distributed", "jaxgd.checkpoint", "jaxgd._host")


@pytest.mark.parametrize("module", LOOP)
def test_the_loop_knows_no_files_devices_progress_or_optimizer_classes(module):
    for imported in _imports(MODULES[module]):
        assert not imported.startswith(NOT_IN_THE_LOOP), f"{module} imports {imported}"


def _wing(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down(module):
    here = FLOOR[_wing(module)]
    for imported in _imports(MODULES[module]):
        assert FLOOR[_wing(imported)] <= here, f"{module} imports {imported}, a floor up"


def test_no_import_circle():
    edges = {m: _imports(p) - {m} for m, p in MODULES.items()}
    done: set[str] = set()

    def visit(m, path):
        assert m not in path, " -> ".join([*path, m])
        if m in done:
            return
        for n in edges[m]:
            visit(n, [*path, m])
        done.add(m)

    for m in MODULES:
        visit(m, [])


@pytest.mark.parametrize("module", sorted(MODULES))
def test_implementation_is_reached_through_the_face(module):
    """A private module (``_name``) of a wing is imported only by its own wing."""
    for imported in _imports(MODULES[module]):
        private = any(part.startswith("_") for part in imported.split(".")[2:])
        assert not (private and _wing(imported) != _wing(module)), f"{module} reaches {imported}"


def test_computing_never_imports_rendering_and_rendering_never_computes():
    for module, path in MODULES.items():
        if _wing(module) == "comparison":
            assert not {i for i in _imports(path) if _wing(i) == "report"}, module
        if _wing(module) == "report":  # contour grids and limits arrive as data
            tree = ast.parse(path.read_text())
            jax_imports = [
                n for n in ast.walk(tree)
                if isinstance(n, ast.Import | ast.ImportFrom)
                and any((getattr(n, "module", None) or a.name).split(".")[0] == "jax"
                        for a in n.names)
            ]  # fmt: skip
            assert not jax_imports, f"{module} imports jax"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_hubs(module):
    text = MODULES[module].read_text()
    assert len(text.splitlines()) <= MOST_LINES, module
    for node in ast.walk(ast.parse(text)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            size = node.end_lineno - node.lineno + 1
            if ast.get_docstring(node):
                size -= node.body[0].end_lineno - node.body[0].lineno + 1
            assert size <= MOST_FUNCTION_LINES, f"{module}.{node.name}: {size} code lines"


def test_a_small_root_and_face():
    loose = [p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py")]
    assert len(loose) <= MOST_LOOSE_MODULES, sorted(p.name for p in loose)
    assert len(gd.__all__) <= MOST_PUBLIC_NAMES
    assert sorted(set(gd.__all__)) == sorted(gd.__all__)


def test_no_function_shadows_its_module():
    for name in gd.__all__:
        assert (
            f"jaxgd.{name}" not in MODULES
            or not callable(getattr(gd, name))
            or isinstance(getattr(gd, name), type(gd))
        ), name


@pytest.mark.parametrize("name", ["top_eigenvalue", "stability_limit", "seed_keys"])
def test_one_definition_each(name):
    """Power iteration, the stability limit and the seed rule are written once, as
    module-level functions (each optimizer states its own limit as a method)."""
    defined = [
        module
        for module, path in MODULES.items()
        for node in ast.parse(path.read_text()).body
        if isinstance(node, ast.FunctionDef) and node.name == name
    ]
    assert len(defined) == 1, defined


# Tests go through the public faces; these test modules also unit-test an
# internal on purpose (or patch one), each for the reason given.
WHITE_BOX = {
    "test_cli.py": "the CLI's thresholds, read from the comparison's checks",
    "report/test_report.py": "log labels, path clipping, the folder's clean-up, the Ctrl-C guard",
    "comparison/test_compare.py": "the protocol's functions and the engine's sweep, patched",
    "comparison/test_sweep_programs.py": "the program cache's key and the traced sweep, watched",
    "workers/runs_checks.py": "the traced sweep, watched (a mesh sweep loaded, not traced)",
    "workers/checkpoint_worker.py": "one process's segment lengths, cut otherwise",
    "run/test_per_example.py": "the per-example moments of the noise scale, alone",
    "run/test_diagnostics.py": "the shared step's pass, watched; the join limit, patched",
    "test_cli_interrupts.py": "a Ctrl-C swallowed, by calling the noting handler itself",
    "comparison/test_many_seeds.py": "the seed rule's key table and the paths drawn, alone",
    "optimizers/test_optax_traced.py": "the traced/static rule itself (jaxgd._partition)",
    "checkpoint/test_checkpoint.py": "checksums and leaf storage, alone",
    "run/test_minimize_warm.py": "the warm-call memory and the unroll knob, patched",
    "run/test_loop_batching.py": "the loop's carry marked as varying under vmap, alone",
    "comparison/test_shared_programs.py": "the groups that share a program, and their tracing",
    "run/test_resume.py": "segment lengths, patched to cut a run where a test wants",
    "run/test_long_runs.py": "segment lengths, patched to cut a run where a test wants",
    "run/test_precision.py": "the plan's steps per loop iteration under x64",
    "run/test_weak_types.py": "the memory of loss outputs, empty after a refusal",
}


def test_only_the_listed_tests_reach_private_modules():
    tests = PACKAGE.parent / "tests"
    private = re.compile(
        r"^\s*(from|import) jaxgd(\.\w+)*\._|^\s*from jaxgd(\.\w+)* import _", re.M
    )
    reaching = {
        str(p.relative_to(tests)) for p in tests.rglob("*.py") if private.search(p.read_text())
    }
    unlisted = reaching - set(WHITE_BOX)
    assert not unlisted, f"test through the faces, or list with a reason: {unlisted}"
