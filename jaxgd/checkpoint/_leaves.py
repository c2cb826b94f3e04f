"""Leaves as orbax stores them, and back: dtypes, raw bits and placement.

Leaves come back with the dtype they were saved with. ``bfloat16``, ``float8`` and the
other ``ml_dtypes`` types are stored natively where tensorstore knows them and as their
raw bits (``uint8``) otherwise, so they round-trip exactly. Leaves are returned as
:class:`jax.Array`, except for 64-bit dtypes (``float64``, ``int64``, ``uint64``,
``complex128``) while JAX's 64-bit mode is off: converting those to JAX would silently
narrow them to 32 bits, so they are returned as :class:`numpy.ndarray` with their exact
values instead. Python scalars in the saved tree are stored as the 0-d array JAX makes
of them (``jnp.asarray``), so a Python ``float`` is saved as ``float32`` unless 64-bit
mode is on. Typed PRNG keys (``jax.random.key``) are stored as their key data and come
back as the same keys (the implementation named in the description), bit for bit.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import tensorstore

from jaxgd.checkpoint._description import key_layout

__all__ = [
    "describe_path",
    "from_stored",
    "is_key",
    "key_parts",
    "logical_shape_dtype",
    "natively_stored",
    "restore_target",
    "shape_dtype",
    "sharding_of",
    "storable",
]


def describe_path(key_path: tuple[Any, ...]) -> str:
    """A human-readable name for a leaf's key path."""
    return jax.tree_util.keystr(key_path) or "<root>"


def natively_stored(dtype: np.dtype) -> bool:
    """Whether tensorstore (under orbax) stores this dtype as it is."""
    try:
        tensorstore.dtype(dtype.name)
    except (ValueError, TypeError):
        return False
    return True


def is_key(dtype: Any) -> bool:
    """Whether ``dtype`` is a typed PRNG key's (``key<fry>``, ...)."""
    return dtype is not None and bool(jnp.issubdtype(dtype, jax.dtypes.prng_key))


def key_parts(leaf: Any, where: str) -> tuple[Any, str | None]:
    """A typed PRNG key's key data and the name of its implementation; any other leaf
    as it is, with None."""
    if not (isinstance(leaf, jax.Array) and is_key(leaf.dtype)):
        return leaf, None
    impl = jax.random.key_impl(leaf)
    if not isinstance(impl, str):  # jax.extend.random.define_prng_impl's: not by name
        raise TypeError(
            f"leaf {where} is a PRNG key of an implementation JAX has no name for ({impl}), "
            "which a checkpoint cannot restore; save its jax.random.key_data instead, and "
            "wrap the loaded data with jax.random.wrap_key_data(data, impl=...)"
        )
    return jax.random.key_data(leaf), impl


def logical_shape_dtype(spec: dict[str, Any]) -> tuple[tuple[int, ...], Any]:
    """The shape and dtype of the leaf a (checked) description entry restores: a key's
    batch shape and key dtype for a typed PRNG key."""
    shape, dtype = tuple(spec["shape"]), jnp.dtype(spec["dtype"])
    if spec.get("key") is None:
        return shape, dtype
    key_dtype, key_shape, _ = key_layout(spec["key"])
    return shape[: len(shape) - len(key_shape)], key_dtype


def storable(leaf: Any, where: str) -> tuple[Any, np.dtype | None]:
    """The array orbax will write for ``leaf``, and its logical dtype if stored as bits.

    Python scalars and numpy values become numpy arrays (orbax writes those once, from
    process 0); JAX arrays stay JAX arrays (each process writes its shards), except
    arrays local to one process of a multi-process run, which are written as numpy.
    """
    if isinstance(leaf, (bool, int, float, complex)) and not isinstance(leaf, np.generic):
        try:
            leaf = np.asarray(jnp.asarray(leaf))
        except OverflowError as err:
            raise TypeError(f"leaf {where}: {err}") from err
    elif isinstance(leaf, jax.Array):
        if jax.process_count() > 1 and leaf.is_fully_addressable:
            leaf = np.asarray(leaf)
    elif isinstance(leaf, (np.ndarray, np.generic)):
        leaf = np.asarray(leaf)
    else:
        raise TypeError(
            f"leaf {where} is a {type(leaf).__name__}; checkpoint leaves must be JAX or "
            "numpy arrays or Python scalars"
        )
    dtype = np.dtype(leaf.dtype)
    if dtype.kind == "O":
        raise TypeError(
            f"leaf {where} has the object dtype, which a checkpoint cannot store "
            "(it would need pickle); convert it to a numeric array"
        )
    if not (jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, np.bool_)):
        raise TypeError(
            f"leaf {where} has dtype {dtype}, which a checkpoint cannot store; "
            "use a boolean, integer, floating or complex dtype"
        )
    if isinstance(leaf, np.ndarray):
        leaf = np.asarray(leaf, dtype=dtype.newbyteorder("="))  # native byte order
    if natively_stored(dtype):
        return leaf, None
    if isinstance(leaf, jax.Array):
        if not leaf.is_fully_addressable:
            raise TypeError(
                f"leaf {where} has dtype {dtype}, which orbax stores only as raw bytes, "
                "from a whole array; gather it to one process first or cast it"
            )
        leaf = np.asarray(leaf)
    return leaf.view(f"uint{8 * dtype.itemsize}"), dtype


def shape_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
    """The shape and dtype ``leaf`` stands for (without copying its data)."""
    if isinstance(leaf, (bool, int, float, complex)) and not isinstance(leaf, np.generic):
        leaf = jnp.asarray(leaf)
    if hasattr(leaf, "shape") and hasattr(leaf, "dtype"):
        return tuple(leaf.shape), leaf.dtype if is_key(leaf.dtype) else np.dtype(leaf.dtype)
    array = np.asarray(leaf)
    return array.shape, array.dtype


def sharding_of(leaf: Any) -> Any:
    """The sharding of a JAX array or ShapeDtypeStruct in ``like``, if it has one (a
    typed key's: the sharding of its batch dimensions, which its key data's are too)."""
    if isinstance(leaf, (jax.Array, jax.ShapeDtypeStruct)):
        return getattr(leaf, "sharding", None)
    return None


def _narrowed_by_jax(dtype: np.dtype) -> bool:
    """Whether JAX would narrow ``dtype`` (64-bit types while 64-bit mode is off)."""
    return jax.dtypes.canonicalize_dtype(dtype) != dtype


def restore_target(spec: dict[str, Any], sharding: Any) -> Any:
    """What orbax restores a leaf into: numpy for 64-bit types JAX would narrow and for
    dtypes stored as raw bits, else a JAX array with ``sharding`` (or this process's
    first device)."""
    shape, stored_as = tuple(spec["shape"]), jnp.dtype(spec["stored_as"])
    if _narrowed_by_jax(jnp.dtype(spec["dtype"])) or stored_as != jnp.dtype(spec["dtype"]):
        return np.empty(shape, stored_as)
    return jax.ShapeDtypeStruct(shape, stored_as, sharding=sharding or _default_sharding())


def _default_sharding() -> jax.sharding.Sharding:
    return jax.sharding.SingleDeviceSharding(jax.local_devices()[0])


def from_stored(leaf: Any, spec: dict[str, Any], sharding: Any) -> Any:
    """A restored leaf with its logical dtype: raw bits viewed as float8, ..., key data
    wrapped as its typed PRNG key, and put on ``sharding`` (numpy only for 64-bit types
    JAX would narrow)."""
    data = _array_from_stored(leaf, spec, sharding)
    if spec.get("key") is None:
        return data
    return jax.random.wrap_key_data(data, impl=spec["key"])


def _array_from_stored(leaf: Any, spec: dict[str, Any], sharding: Any) -> Any:
    dtype = jnp.dtype(spec["dtype"])
    if isinstance(leaf, jax.ShapeDtypeStruct):  # an empty array
        leaf = np.empty(leaf.shape, leaf.dtype)
    elif np.dtype(leaf.dtype) == dtype:
        return leaf
    leaf = np.asarray(leaf).view(dtype)
    if _narrowed_by_jax(dtype):
        return leaf
    return jax.device_put(leaf, sharding or _default_sharding())
