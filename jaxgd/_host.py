"""The host process: its memory, and the caches jaxgd keeps in it.

Every cache jaxgd keeps between calls (the warm-call memory of
:func:`jaxgd.minimize`, the compiled transforms of :mod:`jaxgd.calculus`, the
checks' memos) registers how to empty itself here, so that
:func:`clear_caches` forgets them all.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["clear_caches", "register_cache"]

_CLEARERS: list[Callable[[], None]] = []


def register_cache(clear: Callable[[], None]) -> Callable[[], None]:
    """Register ``clear`` (no arguments) to be called by :func:`clear_caches`."""
    _CLEARERS.append(clear)
    return clear


def clear_caches() -> None:
    """Forget every call jaxgd remembers between calls.

    The next call of :func:`jaxgd.minimize`, :func:`jaxgd.make_step` or a
    calculus function runs its checks and builds its programs again, as a
    first call does (JAX's own compilation cache is left alone:
    ``jax.clear_caches()`` empties it). For tests and for long sessions that
    want the memory back.

    Example:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> _ = gd.minimize(lambda w: jnp.sum(w**2), jnp.ones(2), gd.sgd(0.1), steps=3)
        >>> gd.clear_caches()
    """
    for clear in _CLEARERS:
        clear()
