"""A 32-bit checksum of a leaf's bytes, the same for its numpy and JAX forms.

Tensorstore checks nothing for uncompressed data, so :func:`save` records each
leaf's checksum in the description and :func:`load` compares it after
restoring. A JAX array's checksum is computed where its shards are.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["checksum"]


def _fold(xp: Any, data: Any) -> Any:
    """A 32-bit checksum of a flat ``uint8`` array: each byte mixed with its position,
    summed (modulo 2**32); the same with numpy and JAX (``xp``)."""
    position = xp.arange(data.size, dtype=xp.uint32)
    h = data.astype(xp.uint32) * xp.uint32(0x9E3779B1) + position * xp.uint32(0x85EBCA77)
    h = (h ^ (h >> 15)) * xp.uint32(0xC2B2AE3D)
    return xp.sum(h ^ (h >> 13), dtype=xp.uint32)


@jax.jit
def _device_checksum(x: jax.Array) -> jax.Array:
    """:func:`_fold` of a JAX array's bytes, computed where its shards are."""
    data = x.astype(jnp.uint8) if x.dtype == jnp.bool_ else x
    if jnp.iscomplexobj(data):  # numpy's layout: real and imaginary parts interleaved
        data = jnp.stack([data.real, data.imag], axis=-1)
    if data.dtype != jnp.uint8:
        data = jax.lax.bitcast_convert_type(data, jnp.uint8)
    return _fold(jnp, data.reshape(-1))


def checksum(array: Any) -> int | None:
    """A checksum of a leaf's bytes, the same for its numpy and JAX forms; None for a
    sub-byte dtype sharded over processes (JAX has no byte view of it)."""
    if isinstance(array, jax.Array) and not _sub_byte(array):
        return int(_device_checksum(array))
    if isinstance(array, jax.Array):
        if not array.is_fully_addressable:
            return None
        array = np.asarray(array)
    data = np.ascontiguousarray(array).reshape(-1).view(np.uint8)
    return int(_fold(np, data))


def _sub_byte(array: Any) -> bool:
    """Whether JAX packs the dtype below a byte (int4, float4_e2m1fn, ...)."""
    return jax.dtypes.itemsize_bits(array.dtype) < 8
