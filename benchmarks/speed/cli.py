"""Target group: the command line, ``jaxgd compare`` (default and ``--quick``) run
twice in fresh processes sharing a fresh cache folder."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time

from .timing import JAXGD_ROOT


def bench_cli(repeats: int) -> dict:
    """``jaxgd compare --quick`` twice, each in a fresh process, with a fresh user
    cache folder (``XDG_CACHE_HOME``): the second run shows what the CLI's
    persistent compile cache saves, where the CLI has one (``--no-cache``)."""
    del repeats  # two runs, by definition
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(JAXGD_ROOT), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "jaxgd", "compare"]
    helptext = subprocess.run(
        [*command, "--help"], capture_output=True, text=True, env=env, check=True
    ).stdout
    out: dict = {"compile_cache": "on" if "--no-cache" in helptext else "off (no --no-cache flag)"}
    for name, flags in (("default", []), ("quick", ["--quick"])):
        run = out[name] = {"command": " ".join(["jaxgd compare", *flags, "--no-progress"])}
        with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as report:
            env["XDG_CACHE_HOME"] = cache  # a cold cache for the first run
            for which in ("first_run_s", "second_run_s"):
                start = time.perf_counter()
                done = subprocess.run(
                    [*command, *flags, "--no-progress", "--out", report],
                    capture_output=True,
                    env=env,
                    check=True,
                    timeout=1800,
                    # Not a checkout: `python -m` imports from the current folder before
                    # PYTHONPATH, so run from a jaxgd checkout it would time that one.
                    cwd=cache,
                )
                run[which] = time.perf_counter() - start
                run[which.replace("_s", "_split")] = time_split(done.stdout.decode())
        run["second_over_first"] = run["second_run_s"] / run["first_run_s"]
    return out


def time_split(output: str) -> str:
    """The command's own account of its time (its ``X s in all: ...`` line: imports,
    checks and data, compare, figures and report, which add up to X; then compare's
    tracing and compiling, and sweeps, summed over threads that overlap), or '' if it
    printed none."""
    lines = [line for line in output.splitlines() if " s in all: " in line]
    return lines[-1].split(" s in all: ", 1)[1].rstrip(".") if lines else ""
