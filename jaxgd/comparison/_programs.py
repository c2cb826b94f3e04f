"""Traced sweeps kept on disk: a second ``jaxgd compare`` traces none of them again.

JAX's persistent compilation cache spares XLA's compiling, but to find a
program there JAX must trace and lower it first (its key is a hash of the
lowered program): half a second to a second per problem, most of what a
second ``jaxgd compare`` spent before running. This cache keeps each
problem's sweep as traced and lowered (a :class:`jax.export.Exported`, in
JAX's own serialization), under a key made of what the program is built
from, so that a second run loads it (a few hundredths of a second), lowers
the small call around it and finds its compiled code in JAX's cache. (Not
the compiled executable itself: one that JAX loaded from its own cache
serializes without its code, in jaxlib 0.10.)

The key (:func:`program_key`) holds the catalogue problem and how it was
built (:func:`jaxgd.problems.catalogue_entry`), the registry optimizers
(by their registry label, whatever the comparison calls them), the sweep's
sizes and the shapes and dtypes of its arguments (the values are arguments,
not part of the program), the digest of jaxgd's own source files, the
versions of Python and of the libraries that build the program (JAX, jaxlib,
optax, NumPy, SciPy, scikit-learn), JAX's configuration, ``XLA_FLAGS`` and the
machine (backend, devices, CPU features). A problem or an optimizer made
outside the catalogue and the registry, or a run on a mesh, gets no key: it
is traced every time (JAX's cache still spares the XLA compiling).

:func:`use_program_cache` turns the cache on for this process (``jaxgd
compare`` does, in a folder beside JAX's, unless ``--no-cache``). The cache
keeps the :data:`MAX_ENTRIES` most recently used programs. An entry that
cannot be read is deleted and the program traced again; one that cannot be
written is skipped with a warning: the comparison never depends on it.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.metadata
import os
import pathlib
import platform
import sys
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import jax
import jax.export

from jaxgd import optimizers as _optimizers
from jaxgd import problems as _problems

__all__ = ["MAX_ENTRIES", "enabled", "load", "program_key", "store", "use_program_cache"]

MAX_ENTRIES = 100
"""Programs the cache keeps; storing one more deletes the least recently used."""

_SUFFIX = ".jaxgd-sweep"
_LIBRARIES = ("jax", "jaxlib", "optax", "numpy", "scipy", "scikit-learn")
_folder: pathlib.Path | None = None


def use_program_cache(folder: str | os.PathLike | None) -> None:
    """Keep traced sweeps in ``folder`` from now on in this process (None: stop).

    The folder is made when the first program is stored.

    Examples:
        >>> import tempfile
        >>> use_program_cache(tempfile.mkdtemp())
        >>> use_program_cache(None)
    """
    global _folder
    _folder = None if folder is None else pathlib.Path(folder).expanduser()


def _cpu_features() -> str:
    """What the compiled code may use of this CPU (``/proc/cpuinfo``'s flags on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{platform.machine()} {platform.processor()}"


def _version(name: str) -> str:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


@functools.cache
def _installed() -> tuple:
    """jaxgd's source digest, the library versions and the machine (fixed in a process)."""
    root = pathlib.Path(__file__).parents[1]  # the whole jaxgd package
    source = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        source.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    devices = jax.devices()
    return (
        source.hexdigest(),
        sys.version,
        [(name, _version(name)) for name in _LIBRARIES],
        devices[0].client.platform,
        devices[0].client.platform_version,
        [d.device_kind for d in devices],
        _cpu_features(),
    )


def _environment() -> str:
    """Everything but the sweep itself that the compiled program depends on."""
    config = sorted((k, repr(v)) for k, v in jax.config.values.items() if "cache" not in k)
    return repr((_installed(), config, os.environ.get("XLA_FLAGS", "")))


def _registry_label(factory: Any) -> str | None:
    for label in _optimizers.names():
        if _optimizers.get(label) is factory:
            return label
    return None


_PLAIN = (bool, int, float, str, type(None))


def program_key(
    problem: _problems.Problem,
    factories: Mapping[str, Any],
    static: tuple,
    args: tuple,
    mesh: Any = None,
) -> str | None:
    """The cache key of a sweep, or None where nothing says what its program holds.

    Args:
        problem: the problem swept; only a catalogue one has a key.
        factories: label -> optimizer factory; only registry ones have a key.
        static: everything else the program is built from (steps, batch size...):
            plain values.
        args: the program's arguments (their shapes and dtypes go into the key).
        mesh: a mesh run has no key.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> booth, vanilla = gd.problems.get("booth"), {"v": gd.optimizers.get("vanilla")}
        >>> len(program_key(booth, vanilla, (100,), (jnp.zeros(3),)))
        64
        >>> program_key(booth, {"v": lambda lr: gd.sgd(lr)}, (100,), (jnp.zeros(3),)) is None
        True
    """
    entry = _problems.catalogue_entry(problem)
    labels = [(label, _registry_label(f)) for label, f in factories.items()]
    if mesh is not None or entry is None or any(r is None for _, r in labels):
        return None
    name, positional, options = entry
    if not all(isinstance(v, _PLAIN) for v in (*positional, *(v for _, v in options), *static)):
        return None
    shapes = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), args)
    what = repr((name, positional, options, labels, static, shapes, jax.tree.structure(args)))
    return hashlib.sha256((_environment() + what).encode()).hexdigest()


def load(key: str | None) -> jax.export.Exported | None:
    """The program stored under ``key``, or None (no cache, no key, not stored, unreadable)."""
    if _folder is None or key is None:
        return None
    path = _folder / f"{key}{_SUFFIX}"
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        exported = jax.export.deserialize(bytearray(blob))
    except Exception:  # written by a crashed run, or unreadable: trace it again
        with contextlib.suppress(OSError):
            path.unlink(missing_ok=True)
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used
    return exported


def store(key: str | None, exported: jax.export.Exported) -> jax.export.Exported:
    """Keep ``exported`` under ``key`` (nothing without a cache or a key); returns the
    program as a later :func:`load` will give it.

    A program read back is lowered to the same bytes as the one loaded by a
    later run (the in-memory one is not: JAX would compile it under another
    key of its own cache). The file is written to a temporary name and
    renamed, so a reader never sees half a program; then the oldest entries
    beyond :data:`MAX_ENTRIES` are deleted.
    """
    if _folder is None or key is None:
        return exported
    tmp = _folder / f".{key}.{uuid.uuid4().hex[:8]}.tmp"
    try:
        blob = exported.serialize()
        _folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(blob)
        os.replace(tmp, _folder / f"{key}{_SUFFIX}")
        _evict(_folder)
    except (OSError, ValueError, NotImplementedError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        warnings.warn(
            f"jaxgd could not keep a traced sweep in {_folder} ({err}); the next run "
            "traces it again.",
            RuntimeWarning,
            stacklevel=2,
        )
        return exported
    return jax.export.deserialize(bytearray(blob))


def enabled() -> bool:
    """Whether the cache is on (:func:`use_program_cache`).

    Examples:
        >>> use_program_cache(None); enabled()
        False
    """
    return _folder is not None


def _evict(folder: pathlib.Path) -> None:
    """Delete the least recently used entries beyond :data:`MAX_ENTRIES`."""
    used = []
    for path in folder.glob(f"*{_SUFFIX}"):
        with contextlib.suppress(OSError):  # deleted meanwhile by another jaxgd process
            used.append((path.stat().st_mtime, path))
    for _, path in sorted(used)[:-MAX_ENTRIES]:
        path.unlink(missing_ok=True)
