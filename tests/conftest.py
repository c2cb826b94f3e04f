"""Shared pytest fixtures.

``count_compiles`` counts XLA compilations, so a test can assert that a second
call with new hyperparameters, new params of the same shapes or a new key
compiles nothing:

    def test_no_recompile(count_compiles):
        run(gd.adam(1e-2))  # the first call compiles
        with count_compiles() as compiles:
            run(gd.adam(1e-3))
        assert compiles.count == 0
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import jax.monitoring
import pytest

# The event jax records once per XLA backend compilation (jax._src.dispatch).
BACKEND_COMPILE_EVENT = "/jax/core/compile/backend_compile_duration"


class CompileCount:
    """How many XLA compilations happened inside a ``count_compiles()`` block."""

    def __init__(self) -> None:
        self.count = 0

    def __repr__(self) -> str:
        return f"CompileCount(count={self.count})"


@contextlib.contextmanager
def _count_compiles() -> Iterator[CompileCount]:
    counter = CompileCount()

    def listener(event: str, duration_secs: float, **kwargs) -> None:
        if event == BACKEND_COMPILE_EVENT:
            counter.count += 1

    jax.monitoring.register_event_duration_secs_listener(listener)
    try:
        yield counter
    finally:
        jax.monitoring.unregister_event_duration_listener(listener)


@pytest.fixture
def count_compiles() -> Callable[[], contextlib.AbstractContextManager[CompileCount]]:
    """A context manager factory; the value it yields has ``.count`` (XLA compilations).

    Build every input array before entering the block: creating an array
    (``jnp.ones``, ``x * 2``) can itself compile a small program.
    """
    return _count_compiles
