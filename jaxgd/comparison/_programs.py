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

The key (:func:`program_key`) holds the catalogue problems (one, or the
group that shares the program) and how each was built
(:func:`jaxgd.problems.catalogue_entry`), the registry optimizers (by their
registry label, whatever the comparison calls them), the sweep's
sizes and the shapes and dtypes of its arguments (the values are arguments,
not part of the program), the digest of jaxgd's own source files, the
versions of Python and of the libraries that build the program (JAX, jaxlib,
optax, NumPy, SciPy, scikit-learn), JAX's configuration, ``XLA_FLAGS`` and the
machine (backend, devices, CPU features), and a mesh's axes, shape and
device ids (a ``runs`` or ``data`` mesh's program is exported with its
shardings). A problem or an optimizer made outside the catalogue and the
registry gets no key: it is traced every time (JAX's cache still spares the
XLA compiling).

:func:`use_program_cache` turns the cache on for this process (``jaxgd
compare`` does, in a folder beside JAX's, unless ``--no-cache``). The cache
keeps the :data:`MAX_ENTRIES` most recently used programs. An entry that
cannot be written is skipped with a warning: the comparison never depends on it.

**Damaged entries.** Each entry starts with a header: a format line, the key
it was stored under and the SHA-256 of the program that follows. An entry
whose header is missing, names another key (two entries swapped or copied
over each other: a program that would silently compute another sweep) or
whose program does not match its digest (a flipped or truncated byte), or
that cannot be deserialised or lowered, is deleted, the program is traced
again, and a :class:`ProgramCacheWarning` names the cache folder and the
entry. So a damaged cache costs a trace, never a failed run or a wrong number.
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

__all__ = [
    "MAX_ENTRIES",
    "ProgramCacheWarning",
    "check_compilation_cache",
    "discard",
    "enabled",
    "load",
    "program_key",
    "seal_compilation_cache",
    "store",
    "use_program_cache",
]

MAX_ENTRIES = 100
"""Programs the cache keeps; storing one more deletes the least recently used."""

_SUFFIX = ".jaxgd-sweep"
_FORMAT = b"jaxgd-sweep 2"  # the header's first line


class ProgramCacheWarning(RuntimeWarning):
    """An entry of the program cache was damaged (deleted, traced again) or could
    not be written."""


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
    problem: _problems.Problem | tuple[_problems.Problem, ...],
    factories: Mapping[str, Any],
    static: tuple,
    args: tuple,
    mesh: Any = None,
) -> str | None:
    """The cache key of a sweep, or None where nothing says what its program holds.

    Args:
        problem: the problem swept, or the tuple of problems that share the
            program (:func:`jaxgd.comparison._groups.program_groups`); only
            catalogue ones have a key.
        factories: label -> optimizer factory; only registry ones have a key.
        static: everything else the program is built from (steps, batch size...):
            plain values.
        args: the program's arguments (their shapes and dtypes go into the key).
        mesh: the :class:`jax.sharding.Mesh` of a mesh run (its axes, shape and
            device ids go into the key), or None.

    Examples:
        >>> import jax.numpy as jnp, jaxgd as gd
        >>> booth, vanilla = gd.problems.get("booth"), {"v": gd.optimizers.get("vanilla")}
        >>> len(program_key(booth, vanilla, (100,), (jnp.zeros(3),)))
        64
        >>> program_key(booth, {"v": lambda lr: gd.sgd(lr)}, (100,), (jnp.zeros(3),)) is None
        True
    """
    group = problem if isinstance(problem, tuple) else (problem,)
    entries = [_problems.catalogue_entry(p) for p in group]
    labels = [(label, _registry_label(f)) for label, f in factories.items()]
    if None in entries or any(r is None for _, r in labels):
        return None
    placed = None
    if mesh is not None:  # the mesh's axes, shape and devices: a program is built for them
        if not isinstance(mesh, jax.sharding.Mesh):
            return None
        ids = tuple(int(d.id) for d in mesh.devices.flat)
        placed = (tuple(mesh.axis_names), tuple(mesh.devices.shape), ids)
    values = [
        v for _, positional, options in entries for v in (*positional, *dict(options).values())
    ]
    if not all(isinstance(v, _PLAIN) for v in (*values, *static)):
        return None
    shapes = jax.tree.map(lambda a: (tuple(a.shape), str(a.dtype)), args)
    what = repr((entries, labels, static, shapes, jax.tree.structure(args)))
    what += "" if placed is None else f" on {placed}"
    return hashlib.sha256((_environment() + what).encode()).hexdigest()


def load(key: str | None) -> jax.export.Exported | None:
    """The program stored under ``key``, or None (no cache, no key, not stored, or
    damaged: then deleted, with a :class:`ProgramCacheWarning`)."""
    if _folder is None or key is None:
        return None
    path = _folder / f"{key}{_SUFFIX}"
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    head, _, payload = blob.partition(b"\n\n")
    lines = head.split(b"\n")
    if len(lines) != 3 or lines[0] != _FORMAT:
        discard(key, "it has no jaxgd header (damaged, or written by an older jaxgd)")
        return None
    if lines[1] != key.encode():
        discard(key, "it holds the program of another key (entries swapped or copied)")
        return None
    if lines[2] != hashlib.sha256(payload).hexdigest().encode():
        discard(key, "its program does not match its digest (damaged or truncated)")
        return None
    try:
        exported = jax.export.deserialize(bytearray(payload))
    except Exception as err:  # noqa: BLE001 - whatever JAX raises: trace it again
        discard(key, f"it cannot be deserialised ({type(err).__name__})")
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # recently used
    return exported


def discard(key: str, why: str) -> None:
    """Delete the entry of ``key`` (damaged: ``why``) and say so, naming the cache."""
    if _folder is None:
        return
    path = _folder / f"{key}{_SUFFIX}"
    with contextlib.suppress(OSError):
        path.unlink(missing_ok=True)
    warnings.warn(
        f"jaxgd's program cache ({_folder}): the entry {path.name} was deleted because {why}; "
        "its sweep is traced again (to empty the cache, delete the folder or run with "
        "--no-cache).",
        ProgramCacheWarning,
        stacklevel=3,
    )


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
        digest = hashlib.sha256(blob).hexdigest().encode()
        _folder.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b"\n".join([_FORMAT, key.encode(), digest]) + b"\n\n" + bytes(blob))
        os.replace(tmp, _folder / f"{key}{_SUFFIX}")
        _evict(_folder)
    except (OSError, ValueError, NotImplementedError) as err:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        warnings.warn(
            f"jaxgd could not keep a traced sweep in {_folder} ({err}); the next run "
            "traces it again.",
            ProgramCacheWarning,
            stacklevel=2,
        )
        return exported
    return jax.export.deserialize(bytearray(blob))


_SEAL = ".jaxgd-sha256"  # beside each of JAX's entries: the digest of its name and bytes


def _digest_of(entry: pathlib.Path) -> str:
    return hashlib.sha256(entry.name.encode() + b"\0" + entry.read_bytes()).hexdigest()


def check_compilation_cache(folder: str | os.PathLike) -> list[str]:
    """Delete the entries of JAX's persistent compilation cache in ``folder`` that
    no longer match the seal :func:`seal_compilation_cache` put beside them
    (damaged, or swapped with another: JAX keys an entry by its file name only,
    and would run the program of another); returns their names, and warns
    naming the cache where there were any. Unsealed entries are left as they
    are (JAX itself recompiles one it cannot read)."""
    folder = pathlib.Path(folder)
    removed = []
    for seal in folder.glob(f"*{_SEAL}") if folder.is_dir() else ():
        entry = seal.with_name(seal.name[: -len(_SEAL)])
        with contextlib.suppress(OSError):
            if not entry.exists() or seal.read_text().strip() != _digest_of(entry):
                entry.unlink(missing_ok=True)
                seal.unlink(missing_ok=True)
                removed.append(entry.name)
    if removed:
        warnings.warn(
            f"jaxgd: JAX's compilation cache ({folder}) held {len(removed)} damaged or swapped "
            f"entries ({', '.join(sorted(removed)[:3])}{', ...' * (len(removed) > 3)}); they "
            "were deleted and are compiled again.",
            ProgramCacheWarning,
            stacklevel=2,
        )
    return removed


def seal_compilation_cache(folder: str | os.PathLike) -> None:
    """Put a seal (the digest of its name and bytes) beside each unsealed entry of
    JAX's persistent compilation cache in ``folder`` (see
    :func:`check_compilation_cache`)."""
    folder = pathlib.Path(folder)
    for entry in folder.glob("*-cache") if folder.is_dir() else ():
        seal = entry.with_name(entry.name + _SEAL)
        if not seal.exists():
            with contextlib.suppress(OSError):
                seal.write_text(_digest_of(entry) + "\n")


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
