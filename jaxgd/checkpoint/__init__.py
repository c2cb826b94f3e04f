"""Saving and restoring pytrees of arrays, safely, with orbax-checkpoint.

A checkpoint holds any pytree of arrays: parameters, optimizer states (NamedTuples of
arrays), nested dicts, tuples and lists, and 0-d arrays for scalars. Arrays may be
sharded over the devices of several processes. It never uses pickle, a kill at any
moment leaves either the previous checkpoint or the new one, and a run holds a lock on
its checkpoint so that a second live run, or a :func:`save` from outside the run, cannot
write over it.

| module | concept |
| --- | --- |
| :mod:`~jaxgd.checkpoint._layout` | the directory jaxgd owns, and orbax's steps in it |
| :mod:`~jaxgd.checkpoint._collective` | what the processes of a run agree on, and when they wait |
| :mod:`~jaxgd.checkpoint._locking` | the lock: one live run per checkpoint |
| :mod:`~jaxgd.checkpoint._description` | the JSON description of the tree, and its checks |
| :mod:`~jaxgd.checkpoint._checksums` | a checksum of a leaf's bytes, numpy's and JAX's alike |
| :mod:`~jaxgd.checkpoint._leaves` | leaves as orbax stores them: dtypes, raw bits, placement |
| :mod:`~jaxgd.checkpoint._saving` | :func:`save` |
| :mod:`~jaxgd.checkpoint._loading` | :func:`load` and :func:`load_metadata` |

Imports point down: ``saving`` and ``loading`` import the modules above them in
this table; ``locking`` imports ``layout`` and ``collective``, ``leaves`` imports
``description``; the package imports nothing else of jaxgd.

Multi-process runs
------------------
In a run of several processes (``jax.process_count() > 1``) every process calls
:func:`save`, :func:`load` and :func:`lock` with the same path on a file system they
share (they are collective, as orbax's are). Orbax writes each process's shards of the
arrays; process 0 writes the description and holds the lock. Sharded and replicated
arrays come back with the shardings of ``like``. Python scalars, numpy arrays and JAX
arrays held by one process alone are taken to be the same on every process and are
written once, from process 0.

Dtypes
------
Leaves come back with the dtype they were saved with, bfloat16 and float8 included;
64-bit dtypes come back as numpy arrays while JAX's 64-bit mode is off, and typed PRNG
keys as keys of their implementation (see :mod:`~jaxgd.checkpoint._leaves`).
"""

from jaxgd.checkpoint._layout import check_path, exists
from jaxgd.checkpoint._loading import load, load_metadata
from jaxgd.checkpoint._locking import CheckpointInUseError, lock
from jaxgd.checkpoint._saving import save

__all__ = [
    "CheckpointInUseError",
    "check_path",
    "exists",
    "load",
    "load_metadata",
    "lock",
    "save",
]
