"""The problem catalogue, shared by tests, benchmarks and reports.

A :class:`Problem` bundles a loss, a seeded starting point, its data and what
is known of its optimum, so every optimizer is judged on the same ground.
``names()`` lists the catalogue, ``get(name)`` builds one.
"""

from jaxgd.problems import losses, models
from jaxgd.problems._catalogue import Problem, catalogue_entry, get, names, summary
from jaxgd.problems._datasets import use_dataset_cache

# The catalogue files register their problems on import, in this order.
from jaxgd.problems._textbook import (  # isort: skip
    beale,
    booth,
    himmelblau,
    quadratic,
    rosenbrock,
    student_marks,
    student_marks_data,
    student_marks_model,
)
from jaxgd.problems._real_data import (  # isort: skip
    breast_cancer_logistic,
    diabetes_linear,
    digits_mlp,
    digits_softmax,
)
from jaxgd.problems._deepobs import quadratic_deep, quadratic_deep_hessian  # isort: skip

__all__ = [
    "Problem",
    "beale",
    "booth",
    "breast_cancer_logistic",
    "catalogue_entry",
    "diabetes_linear",
    "digits_mlp",
    "digits_softmax",
    "get",
    "himmelblau",
    "losses",
    "models",
    "names",
    "quadratic",
    "quadratic_deep",
    "quadratic_deep_hessian",
    "rosenbrock",
    "student_marks",
    "student_marks_data",
    "student_marks_model",
    "summary",
    "use_dataset_cache",
]
