"""compare(mesh=...) with a "runs" axis: the runs sharded over 2 host devices.

The pytest process has one CPU device, so the checks run in a subprocess
started with ``XLA_FLAGS=--xla_force_host_platform_device_count=2``
(``tests/workers/runs_checks.py``). Each run computes the same steps from the
same seed on either device count; XLA compiles the per-device share (half the
runs) into loops of another length, which rounds some float32 operations
differently, so the numbers equal one device's to float round-off, not bit for
bit (measured: up to 3e-6 relative on student_marks after 80 steps). The
chosen rates, the divergences and the statuses are equal.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import host_devices_env

ROOT = Path(__file__).resolve().parents[2]
RTOL = 1e-4  # float32 round-off grown over 80 contracting steps; see the module docstring


@pytest.fixture(scope="module")
def two():
    env = host_devices_env(2)
    proc = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "workers" / "runs_checks.py")],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULTS ") :])


@pytest.mark.parametrize(
    "case", ["runs_seeds2", "runs_seeds3", "mesh2x1", "mesh1x2", "runs_grouped"]
)
def test_runs_axis_gives_one_devices_numbers(two, case):
    """Sharded over seeds (2 seeds), over padded rates (3 seeds), on 2-D meshes, and
    the program two problems without data share (booth and beale)."""
    assert two[case]["chosen_equal"]
    assert two[case]["rel"] < RTOL


@pytest.mark.parametrize("mesh", ["runs"])
def test_a_mesh_sweep_is_kept_in_the_program_cache(two, mesh):
    """The default `jaxgd compare` shards its runs over the cores: its programs are kept
    (a loaded one is given its mesh's devices), loaded without tracing for the same
    mesh with the same bits, and traced again for another."""
    kept = two["kept"]
    assert kept[f"{mesh}_fresh"]["bits_equal"] and kept[f"{mesh}_kept"]["bits_equal"]
    assert kept[f"{mesh}_other_traced"]


def test_mesh_errors_before_compiling(two):
    assert two["error_axes"].startswith("ValueError: compare: mesh has axes ('model',)")
    assert "gd.distributed.runs_mesh()" in two["error_axes"]
    assert two["error_too_many"].startswith("ValueError: compare: the mesh's 'runs' axis has 2")
