"""Comparing optimizers: compute only (the report renders, :mod:`jaxgd.report`).

:func:`compare` sweeps every optimizer over a log grid of learning rates and
several seeds on each problem (one vmapped, compiled program per optimizer),
chooses each optimizer's rate on the tuning seeds by the stated :data:`PROTOCOL`,
runs the chosen rates again from fresh evaluation seeds, and returns a
:class:`Comparison`: plain data with its JSON (:func:`load` reads it back).
:func:`lr_range_test` is the quick one-run scan of learning rates.
:func:`paired_comparison` and :func:`pairwise` state how two optimizers differ
over paired evaluation seeds (ratio, interval, test, verdict).

| module | concept |
| --- | --- |
| ``_engine`` | :func:`compare`: the sweeps program by program, the machine |
| ``_checks`` | the defaults, every argument check, the footprint |
| ``_sweep`` | a problem's sweep: every optimizer x rate x seed, vmapped |
| ``_groups`` | problems without data alike: one sweep program, each picked by index |
| ``_evaluation`` | the chosen rates run again from the evaluation seeds, held-out figures |
| ``_chosen`` | at each chosen rate: a step's cost, the sharpness; the seed rule |
| ``_diagnosed`` | at each chosen rate and one grid step up: alpha, cosine (why a step overshoots) |
| ``_landscape`` | the minimiser, vanilla's stability limit, the paths' contour grid |
| ``_programs`` | traced sweeps kept on disk beside JAX's compilation cache |
| ``_protocol`` | the choice of rate, steps to target, performance profiles |
| ``_statistics`` | paired ratios, bootstrap intervals, Holm-corrected tests, verdicts |
| ``_runs``, ``_results``, ``_schema`` | the results: plain data and JSON |
| ``_lr_range`` | the learning-rate range test |
| ``_reproduce`` | :func:`reproduce`: the published results, by name (:func:`reproductions`) |
| ``_reproduction`` | :class:`Reproduction`, :class:`Check`: published beside measured, plain data |
| ``_reproduce_published`` | the entries AlgoPerf's scores and Crowded Valley |
| ``_reproduce_edge`` | the entry edge of stability |

Imports point down: the engine imports the sweep, which imports the checks,
the groups, the landscape and the chosen runs. Nothing here imports :mod:`jaxgd.report`,
which renders the results (tables, figures, Markdown) and computes nothing:
what it draws (the contour grids, the stability limits) is computed here.
"""

from jaxgd.comparison._checks import (
    DEFAULT_EVAL_SEEDS,
    DEFAULT_LEARNING_RATES,
    DEFAULT_OPTIMIZERS,
    DEFAULT_PROBLEMS,
    DEFAULT_RUN_STEPS,
    DEFAULT_SEEDS,
    DEFAULT_STEPS,
    EVAL_SEED_BASE,
    Arguments,
    Footprint,
    SweepSizeWarning,
    check_arguments,
    evaluation_calls,
    footprint,
)
from jaxgd.comparison._chosen import seed_keys
from jaxgd.comparison._diagnosed import Diagnosed, DiagnosticsRun, Overshoot, long_stretch
from jaxgd.comparison._engine import compare, machine
from jaxgd.comparison._evaluation import Evaluation, eval_every
from jaxgd.comparison._jobs import JobStore, connect_executor, job_key
from jaxgd.comparison._lr_range import LRRangeTest, lr_range_test
from jaxgd.comparison._programs import (
    ProgramCacheWarning,
    check_compilation_cache,
    seal_compilation_cache,
    use_program_cache,
)
from jaxgd.comparison._protocol import (
    PROTOCOL,
    choose_learning_rate,
    performance_profile,
    speedups,
    steps_to_target,
)
from jaxgd.comparison._reproduce import describe, reproduce, reproductions
from jaxgd.comparison._reproduction import Check, Panel, Reproduction, Series
from jaxgd.comparison._results import PAIRWISE_METRICS, Comparison
from jaxgd.comparison._runs import Contours, OptimizerRuns, ProblemResult, SharpnessRun, StepCost
from jaxgd.comparison._schema import SCHEMA, SCHEMA_VERSION, SCHEMA_VERSIONS, load
from jaxgd.comparison._statistics import (
    DEFAULT_BOOTSTRAPS,
    MARGIN,
    TIE_RTOL,
    VERDICTS,
    holm,
    mean_interval,
    paired_comparison,
    pairwise,
)

__all__ = [
    "DEFAULT_BOOTSTRAPS",
    "DEFAULT_EVAL_SEEDS",
    "DEFAULT_LEARNING_RATES",
    "DEFAULT_OPTIMIZERS",
    "DEFAULT_PROBLEMS",
    "DEFAULT_RUN_STEPS",
    "DEFAULT_SEEDS",
    "DEFAULT_STEPS",
    "EVAL_SEED_BASE",
    "MARGIN",
    "PAIRWISE_METRICS",
    "PROTOCOL",
    "ProgramCacheWarning",
    "check_compilation_cache",
    "SCHEMA",
    "SCHEMA_VERSION",
    "SCHEMA_VERSIONS",
    "TIE_RTOL",
    "VERDICTS",
    "Arguments",
    "Check",
    "Comparison",
    "Contours",
    "Diagnosed",
    "DiagnosticsRun",
    "Evaluation",
    "Footprint",
    "JobStore",
    "LRRangeTest",
    "OptimizerRuns",
    "Overshoot",
    "Panel",
    "ProblemResult",
    "Reproduction",
    "Series",
    "SharpnessRun",
    "StepCost",
    "SweepSizeWarning",
    "check_arguments",
    "choose_learning_rate",
    "compare",
    "connect_executor",
    "describe",
    "eval_every",
    "evaluation_calls",
    "footprint",
    "holm",
    "job_key",
    "load",
    "long_stretch",
    "lr_range_test",
    "machine",
    "mean_interval",
    "paired_comparison",
    "pairwise",
    "performance_profile",
    "reproduce",
    "reproductions",
    "seed_keys",
    "speedups",
    "steps_to_target",
    "seal_compilation_cache",
    "use_program_cache",
]
