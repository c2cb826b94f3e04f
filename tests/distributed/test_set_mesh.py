"""``with jax.set_mesh(mesh): gd.minimize(..., mesh=mesh)`` with Explicit axes
(issue 23): works with and without ``mesh=``, full batch and minibatch, and
equals the one-device run (2 forced host devices, in a subprocess)."""

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from helpers import host_devices_env

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import json
    import jax, jax.numpy as jnp, numpy as np
    import jaxgd as gd
    from jax.sharding import AxisType

    x = jnp.asarray(np.random.default_rng(0).normal(size=(16, 3)), jnp.float32)
    y = x @ jnp.array([1.0, -2.0, 0.5])
    loss = lambda p, b: jnp.mean((b[0] @ p - b[1]) ** 2)
    mini = dict(batch_size=4, key=jax.random.PRNGKey(0))
    ref = {
        "full": gd.minimize(loss, jnp.zeros(3), gd.adam(0.1), data=(x, y), steps=30).params,
        "mini": gd.minimize(loss, jnp.zeros(3), gd.adam(0.1), data=(x, y), steps=30, **mini).params,
    }
    mesh = jax.make_mesh((2,), ("data",), axis_types=(AxisType.Explicit,))
    out = {}
    for name, kw in [("full", {}), ("mini", mini)]:
        for label, extra in [("with_mesh", dict(mesh=mesh)), ("context_only", {})]:
            with jax.set_mesh(mesh):
                p0 = jnp.zeros(3)
                r = gd.minimize(loss, p0, gd.adam(0.1), data=(x, y), steps=30, **kw, **extra)
            error = np.abs(np.asarray(r.params) - np.asarray(ref[name]))
            out[f"{name}/{label}"] = float(np.max(error))
    print("RESULTS " + json.dumps(out))
    """
)


def test_set_mesh_context_with_explicit_axes():
    env = host_devices_env(2)
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULTS ")]
    assert proc.returncode == 0 and lines, f"subprocess failed:\n{proc.stdout}\n{proc.stderr}"
    errors = json.loads(lines[-1][len("RESULTS ") :])
    assert set(errors) == {
        f"{a}/{b}" for a in ("full", "mini") for b in ("with_mesh", "context_only")
    }
    for where, error in errors.items():
        assert error <= 1e-5, (where, error)
