"""Comparing optimizers: compute only (the report renders, :mod:`jaxgd.report`).

:func:`compare` sweeps every optimizer over a log grid of learning rates and
several seeds on each problem (one vmapped, compiled program per optimizer),
chooses each optimizer's rate by the stated :data:`PROTOCOL`, and returns a
:class:`Comparison`: plain data with its JSON (:func:`load` reads it back).
:func:`lr_range_test` is the quick one-run scan of learning rates.

| module | concept |
| --- | --- |
| ``_engine`` | :func:`compare`: the sweeps problem by problem, the machine |
| ``_checks`` | the defaults, every argument check, the footprint |
| ``_sweep`` | one problem: every optimizer x rate x seed, vmapped |
| ``_chosen`` | at each chosen rate: a step's cost, the sharpness |
| ``_programs`` | traced sweeps kept on disk beside JAX's compilation cache |
| ``_protocol`` | the choice of rate, steps to target, performance profiles |
| ``_runs``, ``_results``, ``_schema``, ``_tables`` | the results: plain data, JSON, text tables |
| ``_lr_range`` | the learning-rate range test |

Imports point down: the results import nothing that runs; the engine imports
the sweep, which imports the checks and the chosen runs. Nothing here imports
:mod:`jaxgd.report`.
"""

from jaxgd.comparison._checks import (
    DEFAULT_LEARNING_RATES,
    DEFAULT_OPTIMIZERS,
    DEFAULT_PROBLEMS,
    DEFAULT_RUN_STEPS,
    DEFAULT_SEEDS,
    DEFAULT_STEPS,
    Footprint,
    SweepSizeWarning,
    check_arguments,
    footprint,
)
from jaxgd.comparison._engine import compare, machine
from jaxgd.comparison._lr_range import LRRangeTest, lr_range_test
from jaxgd.comparison._programs import use_program_cache
from jaxgd.comparison._protocol import (
    PROTOCOL,
    choose_learning_rate,
    performance_profile,
    speedups,
    steps_to_target,
)
from jaxgd.comparison._results import Comparison
from jaxgd.comparison._runs import OptimizerRuns, ProblemResult, SharpnessRun, StepCost
from jaxgd.comparison._schema import SCHEMA, SCHEMA_VERSION, SCHEMA_VERSIONS, load

__all__ = [
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_PROBLEMS",
    "DEFAULT_RUN_STEPS",
    "DEFAULT_SEEDS",
    "DEFAULT_STEPS",
    "PROTOCOL",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "Comparison",
    "Footprint",
    "LRRangeTest",
    "OptimizerRuns",
    "ProblemResult",
    "SharpnessRun",
    "StepCost",
    "SweepSizeWarning",
    "check_arguments",
    "choose_learning_rate",
    "compare",
    "footprint",
    "load",
    "lr_range_test",
    "machine",
    "performance_profile",
    "speedups",
    "steps_to_target",
    "use_program_cache",
]
