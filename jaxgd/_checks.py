"""Checks of plain arguments (counts, flags) shared by every floor.

Each raises before anything compiles, names the function and the argument,
and says what is expected. Imports nothing of jaxgd, so the maths modules can
use it too.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["boolean", "positive_int"]


def positive_int(caller: str, name: str, value: Any, *, most: int | None = None) -> int:
    """``value`` as a Python int >= 1 (NumPy and 0-d JAX integers accepted).

    Example:
        >>> positive_int("minimize", "steps", 3)
        3
        >>> positive_int("minimize", "steps", 0)
        Traceback (most recent call last):
        ...
        ValueError: minimize: steps must be a positive integer, got 0.
    """
    if isinstance(value, jax.Array) and not isinstance(value, jax.core.Tracer) and value.ndim == 0:
        value = value.item() if jnp.issubdtype(value.dtype, jnp.integer) else value
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{caller}: {name} must be a positive integer, got {value!r}.")
    if most is not None and value > most:
        raise ValueError(
            f"{caller}: {name} must be at most {most} (the step counter is an int32), got "
            f"{value}; run a longer descent as several calls resuming a checkpoint=."
        )
    return int(value)


def boolean(caller: str, name: str, value: Any) -> bool:
    """``value`` if it is True or False (not merely truthy)."""
    if not isinstance(value, bool):
        raise TypeError(f"{caller}: {name} must be True or False, got {value!r}.")
    return value
