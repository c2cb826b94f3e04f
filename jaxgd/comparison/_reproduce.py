"""The field's published results, reproduced offline: the one list, by name.

``reproductions()`` lists the entries, ``reproduce(name)`` runs one and
returns a :class:`~jaxgd.comparison.Reproduction` (published numbers beside
jaxgd's, each with its tolerance and verdict, and the data of a figure);
``jaxgd reproduce NAME|all|--list`` prints them and writes each report
(rendered by :mod:`jaxgd.report`). The CLI, the tests and the docs' gallery
read this same list.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

from jaxgd.comparison._reproduce_edge import edge_of_stability
from jaxgd.comparison._reproduce_published import algoperf_score, crowded_valley
from jaxgd.comparison._reproduction import Reproduction

__all__ = ["describe", "reproduce", "reproductions"]

_ENTRIES: dict[str, Callable[..., Reproduction]] = {
    "algoperf-score": algoperf_score,
    "crowded-valley": crowded_valley,
    "edge-of-stability": edge_of_stability,
}


def reproductions() -> list[str]:
    """The names of the reproductions, in order.

    Examples:
        >>> import jaxgd as gd
        >>> gd.comparison.reproductions()
        ['algoperf-score', 'crowded-valley', 'edge-of-stability']
    """
    return list(_ENTRIES)


def _check_name(name: object, caller: str) -> str:
    if not isinstance(name, str) or name not in _ENTRIES:
        raise ValueError(
            f"{caller}: unknown reproduction {name!r}; the known ones are: {', '.join(_ENTRIES)}."
        )
    return name


def describe(name: str) -> str:
    """The one-line summary of the reproduction ``name`` (without running it).

    Examples:
        >>> import jaxgd as gd
        >>> gd.comparison.describe("algoperf-score")
        "AlgoPerf v0.6's 16 self-tuning leaderboard scores, from their published times to target."
    """
    entry = _ENTRIES[_check_name(name, "gd.comparison.describe")]
    return (entry.__doc__ or "").strip().splitlines()[0]


def reproduce(name: str, *, quick: bool = False) -> Reproduction:
    """Run the reproduction ``name`` (one of :func:`reproductions`), offline.

    Args:
        name: the entry, e.g. ``"crowded-valley"``.
        quick: a short case of the entry (fewer runs and steps), for tests; its
            verdict says what it needed.

    Returns:
        A :class:`~jaxgd.comparison.Reproduction`: every published number beside
        jaxgd's with the tolerance and ``"pass"``, ``"fail"`` or ``"not reached"``,
        the entry's verdict, and its figure's data (``gd.report`` renders it).

    An unknown name is refused, listing the known ones.

    Examples:
        >>> import jaxgd as gd
        >>> rep = gd.comparison.reproduce("algoperf-score")
        >>> rep.passed, rep.counts()["pass"]
        (True, 16)
    """
    entry = _ENTRIES[_check_name(name, "gd.comparison.reproduce")]
    if not isinstance(quick, bool):
        raise TypeError(f"gd.comparison.reproduce: quick must be True or False, got {quick!r}.")
    start = time.perf_counter()
    result = entry(quick=quick)
    return dataclasses.replace(result, seconds=time.perf_counter() - start)
