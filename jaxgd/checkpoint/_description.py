"""The JSON description saved beside the arrays, and its checks.

``jaxgd/metadata`` describes the tree so that it comes back with its containers,
dtypes and shapes checked::

    {"format": "jaxgd.checkpoint", "version": 2,
     "structure": {"type": "dict", "keys": [["str", "w"]], "children": [...]},
     "leaves": [{"path": "['w']", "name": ["w"], "dtype": "bfloat16",
                 "stored_as": "bfloat16", "shape": [3], "checksum": 2918273645}, ...],
     "metadata": {...}}

A typed PRNG key leaf (``jax.random.key``, any registered implementation) is stored
as its key data (:func:`jax.random.key_data`), and its entry adds ``"key"``: the name
of its implementation (``"threefry2x32"``, ``"rbg"``, ...); its ``dtype`` and ``shape``
are the key data's. A description holding a key is of version 3, which a jaxgd that
cannot restore keys refuses; others are of version 2, which this jaxgd reads too.

``structure`` describes the containers (``dict``, ``ordereddict``, ``list``, ``tuple``,
``namedtuple``, ``none``, ``leaf``, or ``node`` for any other registered pytree node);
``leaves`` gives each leaf's key path (:func:`jax.tree_util.keystr`), its name in orbax's
item, dtype, shape and a 32-bit checksum of its bytes (tensorstore checks none for
uncompressed data); ``metadata`` is the caller's JSON-serialisable dict. Loading checks
the description against what orbax stored, and both against ``like``, before restoring
anything, and the checksums after. Empty arrays, which orbax cannot write, are restored
from the description alone.
"""

from __future__ import annotations

import collections
import functools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FORMAT",
    "KEYS_VERSION",
    "NotACheckpointError",
    "VERSION",
    "VERSIONS",
    "check_against_orbax",
    "check_description",
    "decode_structure",
    "encode_structure",
    "key_layout",
    "listing",
    "stored_by_orbax",
]

FORMAT = "jaxgd.checkpoint"
VERSION = 2  # written for trees without typed PRNG keys
KEYS_VERSION = 3  # written for trees with typed PRNG keys (an entry's "key")
VERSIONS = (VERSION, KEYS_VERSION)  # read


class NotACheckpointError(Exception):
    """Internal: the directory's contents are not a valid jaxgd checkpoint."""


def encode_structure(treedef: Any, counter: Any, where: str) -> dict[str, Any]:
    """Describes a PyTreeDef as JSON, numbering leaves in flattening order."""
    node_data = treedef.node_data()
    if node_data is None:
        return {"type": "leaf", "index": next(counter)}
    node_type, aux = node_data
    children = treedef.children()
    if node_type is type(None):
        return {"type": "none"}
    if node_type in (dict, collections.OrderedDict, collections.defaultdict):
        keys = aux[1] if node_type is collections.defaultdict else aux
        encoded_keys = []
        for key in keys:
            if isinstance(key, str):
                encoded_keys.append(["str", key])
            elif isinstance(key, int) and not isinstance(key, bool):
                encoded_keys.append(["int", key])
            else:
                raise TypeError(
                    f"dict key {key!r} at {where or '<root>'} is a {type(key).__name__}; "
                    "checkpoint dict keys must be str or int"
                )
        return {
            "type": "ordereddict" if node_type is collections.OrderedDict else "dict",
            "keys": encoded_keys,
            "children": [
                encode_structure(child, counter, f"{where}[{key!r}]")
                for key, child in zip(keys, children, strict=True)
            ],
        }
    encoded_children = [
        encode_structure(child, counter, f"{where}[{i}]") for i, child in enumerate(children)
    ]
    if node_type is list:
        return {"type": "list", "children": encoded_children}
    if node_type is tuple:
        return {"type": "tuple", "children": encoded_children}
    name = f"{node_type.__module__}.{node_type.__qualname__}"
    if issubclass(node_type, tuple) and hasattr(node_type, "_fields"):
        return {
            "type": "namedtuple",
            "name": name,
            "fields": list(node_type._fields),
            "children": encoded_children,
        }
    return {"type": "node", "name": name, "children": encoded_children}


def check_description(meta: Any) -> None:
    """Checks the JSON description's top level, leaf entries and structure."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise NotACheckpointError("the description is not a jaxgd checkpoint's")
    version = meta.get("version")
    if type(version) is not int or version not in VERSIONS:
        raise NotACheckpointError(
            f"format version {version!r} is not supported (this jaxgd reads versions "
            f"{' and '.join(map(str, VERSIONS))}; was it written by another jaxgd?)"
        )
    if not isinstance(meta.get("leaves"), list) or not isinstance(meta.get("metadata"), dict):
        raise NotACheckpointError("the description is incomplete")
    if "structure" not in meta:
        raise NotACheckpointError("the description has no structure")
    for index, spec in enumerate(meta["leaves"]):
        ok = (
            isinstance(spec, dict)
            and isinstance(spec.get("path"), str)
            and _known_dtype(spec.get("dtype"))
            and _known_dtype(spec.get("stored_as"))
            and isinstance(spec.get("shape"), list)
            and all(isinstance(n, int) and n >= 0 for n in spec["shape"])
            and (spec.get("checksum") is None or type(spec["checksum"]) is int)
            and isinstance(spec.get("name"), list)
            and all(isinstance(part, str) for part in spec["name"])
        )
        if not ok:
            raise NotACheckpointError(f"leaf {index}'s description is malformed")
        dtype, stored_as = jnp.dtype(spec["dtype"]), jnp.dtype(spec["stored_as"])
        if dtype != stored_as and (stored_as.kind != "u" or stored_as.itemsize != dtype.itemsize):
            raise NotACheckpointError(f"leaf {index} ({spec['path']}) has inconsistent dtypes")
        if spec.get("key") is not None:
            _check_key(index, spec, version)
    _check_structure(meta["structure"], len(meta["leaves"]))


@functools.lru_cache
def key_layout(impl: str) -> tuple[Any, tuple[int, ...], np.dtype]:
    """The dtype of a typed key of the PRNG implementation named ``impl``, and its key
    data's trailing shape and dtype; a ValueError if this process knows no such name."""
    key = jax.eval_shape(lambda: jax.random.key(0, impl=impl))
    data = jax.eval_shape(jax.random.key_data, key)
    return key.dtype, tuple(data.shape), np.dtype(data.dtype)


def _check_key(index: int, spec: dict[str, Any], version: int) -> None:
    """A key leaf's entry names a PRNG implementation this process knows, whose key
    data its dtype and shape are."""
    impl, where = spec["key"], f"leaf {index} ({spec['path']})"
    if version != KEYS_VERSION or not isinstance(impl, str):
        raise NotACheckpointError(f"{where}'s description is malformed")
    try:
        _, key_shape, data_dtype = key_layout(impl)
    except ValueError:
        raise NotACheckpointError(
            f"{where} is a PRNG key of the implementation {impl!r}, which this JAX does not "
            f"know (JAX {jax.__version__}; was it saved with another version?)"
        ) from None
    shape = tuple(spec["shape"])
    if (
        jnp.dtype(spec["dtype"]) != data_dtype
        or len(shape) < len(key_shape)
        or shape[len(shape) - len(key_shape) :] != key_shape
    ):
        raise NotACheckpointError(
            f"{where} is not the key data of a {impl} key (dtype {spec['dtype']}, shape "
            f"{shape}; such keys hold {data_dtype} data of trailing shape {key_shape})"
        )


def _known_dtype(name: Any) -> bool:
    """Whether ``name`` names a numeric or boolean dtype JAX knows."""
    if not isinstance(name, str):
        return False
    try:
        dtype = jnp.dtype(name)
    except TypeError:
        return False
    return bool(jnp.issubdtype(dtype, jnp.number) or jnp.issubdtype(dtype, np.bool_))


def check_against_orbax(description: dict[str, Any], stored: Any) -> None:
    """The arrays orbax stored are exactly the described ones, with their shapes and dtypes."""
    import orbax.checkpoint as ocp  # here, not at import: it costs 0.3 s

    stored_flat = {} if stored is None else ocp.tree.to_flat_dict(stored)
    in_orbax = list(filter(stored_by_orbax, description["leaves"]))
    described = {tuple(spec["name"]): spec for spec in in_orbax}
    if len(described) != len(in_orbax) or set(described) != set(stored_flat):
        extra = sorted(".".join(k) for k in set(stored_flat) - set(described))
        missing = sorted(".".join(k) for k in set(described) - set(stored_flat))
        raise NotACheckpointError(
            f"the stored arrays differ from the description (stored but not described: "
            f"{listing(extra)}; described but not stored: {listing(missing)})"
        )
    for name, spec in described.items():
        array = stored_flat[name]
        shape, dtype = tuple(getattr(array, "shape", ())), getattr(array, "dtype", None)
        if (
            shape != tuple(spec["shape"])
            or dtype is None
            or np.dtype(dtype) != jnp.dtype(spec["stored_as"])
        ):
            raise NotACheckpointError(
                f"leaf {spec['path']} is stored as {dtype} with shape {shape}, the "
                f"description says {spec['stored_as']} with shape {tuple(spec['shape'])}"
            )


def _check_structure(structure: Any, num_leaves: int) -> None:
    """Checks that the structure is well formed and uses each leaf exactly once."""
    seen: list[int] = []

    def visit(node: Any) -> None:
        kind = node["type"]
        if kind == "leaf":
            seen.append(node["index"])
        elif kind == "none":
            pass
        elif kind in ("dict", "ordereddict"):
            if len(node["keys"]) != len(node["children"]):
                raise NotACheckpointError("a dict's keys and values differ in number")
            for key_kind, key in node["keys"]:
                if (key_kind, type(key)) not in (("str", str), ("int", int)):
                    raise NotACheckpointError(f"a dict key is malformed: {key!r}")
            for child in node["children"]:
                visit(child)
        elif kind in ("list", "tuple", "namedtuple", "node"):
            for child in node["children"]:
                visit(child)
        else:
            raise NotACheckpointError(f"unknown container type {kind!r}")

    try:
        visit(structure)
    except (KeyError, TypeError, ValueError) as err:
        raise NotACheckpointError(f"the structure is malformed ({err!r})") from None
    if seen != list(range(num_leaves)):
        raise NotACheckpointError("the structure does not match the leaves")


def decode_structure(node: dict[str, Any], leaves: list[Any]) -> Any:
    """Rebuilds a tree from its (already checked) JSON structure."""
    kind = node["type"]
    if kind == "leaf":
        return leaves[node["index"]]
    if kind == "none":
        return None
    children = [decode_structure(child, leaves) for child in node["children"]]
    if kind in ("dict", "ordereddict"):
        container = collections.OrderedDict if kind == "ordereddict" else dict
        keys = [key for _, key in node["keys"]]
        return container(zip(keys, children, strict=True))
    if kind == "list":
        return children
    return tuple(children)  # tuples, NamedTuples and other nodes


def listing(paths: list[str]) -> str:
    """Formats a list of key paths for an error message."""
    if not paths:
        return "none"
    return ", ".join(p or "<root>" for p in paths)


def stored_by_orbax(spec: dict[str, Any]) -> bool:
    """Whether orbax holds the leaf (it cannot write empty arrays)."""
    return math.prod(spec["shape"]) > 0
