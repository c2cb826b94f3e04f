"""What the processes of a multi-process run agree on, and when they wait.

In a run of one process these are no-ops; in a run of several they are
collectives (every process must call them, in the same order).
"""

from __future__ import annotations

import jax

from jaxgd._host import agree

__all__ = ["agree", "barrier"]


def barrier(name: str) -> None:
    """Waits for every process of a multi-process run to get here."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
