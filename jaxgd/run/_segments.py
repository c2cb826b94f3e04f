"""Runs in compiled segments: resume, progress, checkpoints and Ctrl-C.

A run called from Python (not under ``jit`` or ``vmap``) that is expected
to last more than a segment, or that writes checkpoints or shows progress,
goes through :func:`run_in_segments` (a shorter one is one compiled call,
:func:`jaxgd.run._loop.whole_run`). It is a few calls of the same compiled
loop, each ending at a step ``stop_at``; between two calls Python looks up:

* **Ctrl-C**: a segment lasts about half a second, so Ctrl-C is answered
  within about a second; the run stops there, keeps its work (the
  checkpoint, when there is one, is written) and raises
  :class:`RunInterrupted`, whose ``result`` is the run so far (status
  ``INTERRUPTED``). A segment's length follows the time steps were
  *measured* to take: a run whose steps were never timed starts with a
  segment of at most :data:`FIRST_STEPS` steps (a guess from the bytes a
  step moves cannot see a loss that computes much on little data), unless
  it is short even at :data:`UNTIMED_STEP_SECONDS` a step (500 steps: then
  it is one call, and one program to compile), and each next segment aims
  at :data:`SEGMENT_SECONDS` from the pace the last one showed. The pace is
  remembered per compiled run (:func:`measured_short`): a plain call is one
  compiled call where the whole run is no longer than a first segment would
  be. (The price: a run of more than 500 steps compiles its segments on its
  first call and, found short, its one-call program on the next: measured on
  student_marks, 5000 steps, 6.0 s and 2.6 s against 2.5 s and 0.03 s.);
* **checkpoints**: with ``checkpoint=``, the whole run state is written after
  every ``checkpoint_every`` steps (segments end on those multiples), and a
  compatible checkpoint already there is resumed from;
* **progress**: a tqdm bar over the steps.

Where segments end does not change a single bit: each step computes the same
values whichever segment it falls in, so a segmented, a resumed and a
one-call run end with the same bits. A segment's carry is donated to the
next one (params and optimizer state updated in place, not copied), and only
the segment that ends the run evaluates the full-data loss.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from jaxgd import checkpoint as _checkpoint
from jaxgd._host import agree, ctrl_c_held, progress_bar, register_cache, tree_bytes
from jaxgd.run._loop import finish as finish_run
from jaxgd.run._loop import first_segment, minibatch_order, next_segment, result_of, start
from jaxgd.run._result import RUNNING, Result, Status
from jaxgd.run._state import Carry, Finish, Spec

__all__ = ["RunInterrupted", "first_length", "measured_short", "run_in_segments"]

SEGMENT_SECONDS = 0.5  # the wall time a segment aims at (Ctrl-C waits for at most one)
FIRST_STEPS = 64  # the most steps of a first segment while no step of the run was timed
UNTIMED_STEP_SECONDS = 1e-3  # what an untimed step is assumed to take at least: a run of
# at most 500 steps is one call (one program to compile), a longer one is timed first
_BYTES_PER_SECOND = 2e9  # a guess of the memory traffic a step moves per second on a CPU
_PACES: dict[Spec, float] = {}  # seconds per step measured, per compiled run
register_cache(_PACES.clear)


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a run between two segments; nothing was lost.

    Attributes:
        result: the :class:`~jaxgd.Result` of the steps taken (status
            ``INTERRUPTED``; ``result.loss`` is the full-data loss at its
            params). With ``checkpoint=`` the run state was written too, and
            calling ``minimize`` again with the same arguments resumes it.
    """

    def __init__(self, result: Result, message: str) -> None:
        super().__init__(message)
        self.result = result


def first_length(spec: Spec, params: Any, data: Any, eval_data: Any = None) -> int:
    """Steps of the first segment: from the pace measured for ``spec`` (by an
    earlier run's segments), else at most :data:`FIRST_STEPS`, fewer where a
    guess of the time a step takes (the bytes it moves) says so."""
    pace = _PACES.get(spec)
    if pace is not None:
        return max(1, min(spec.steps, int(SEGMENT_SECONDS / max(pace, 1e-9))))
    n_params = tree_bytes(params)
    n_data = tree_bytes(data)
    if spec.batch_size is not None and spec.n_examples:
        n_data = n_data * spec.batch_size // spec.n_examples
    if spec.eval_every:  # the held-out data, read every eval_every steps
        n_data += tree_bytes(eval_data) // spec.eval_every
    seconds = (8 * n_params + 3 * n_data) / _BYTES_PER_SECOND + 1e-6
    if spec.steps * max(seconds, UNTIMED_STEP_SECONDS) <= SEGMENT_SECONDS:
        return spec.steps  # short even if a step took a millisecond: one call
    return max(1, min(spec.steps, FIRST_STEPS, int(SEGMENT_SECONDS / seconds)))


def measured_short(spec: Spec) -> bool | None:
    """Whether the whole run of ``spec`` fits in one segment, by the pace measured
    (None: its steps were never timed)."""
    pace = _PACES.get(spec)
    return None if pace is None else spec.steps * pace <= SEGMENT_SECONDS


def _note_pace(spec: Spec, pace: float, compiled: bool) -> None:
    """Remember ``spec``'s pace; one from a segment that may have compiled
    (``compiled``) counts only where it is faster than the pace known."""
    known = _PACES.get(spec)
    _PACES[spec] = pace if known is None or not compiled else min(known, pace)
    if len(_PACES) > 256:
        _PACES.pop(next(iter(_PACES)))


def _check_resumed(carry: Carry, spec: Spec, path: str) -> None:
    """A loaded run state is one this run could have written."""
    step, status = int(carry.step), int(carry.status)
    problem = None
    if not 0 <= step <= spec.steps:
        problem = f"its step {step} is outside 0..{spec.steps}"
    elif status != RUNNING and status not in set(Status):
        problem = f"its status {status} is not a Status code"
    if problem:
        raise ValueError(
            f"minimize: the checkpoint at {path!r} cannot be resumed: {problem}; delete it "
            "to start afresh."
        )


def _resume(path: str, like: Carry, fingerprint: dict, spec: Spec) -> Carry:
    found = _checkpoint.load_metadata(path).get("fingerprint")
    if found != fingerprint:
        differs = sorted(
            k
            for k in set(found or {}) | set(fingerprint)
            if (found or {}).get(k) != fingerprint.get(k)
        )
        raise ValueError(
            f"minimize: the checkpoint at {path!r} belongs to another run (it differs in: "
            f"{', '.join(differs)}); delete it or pass another checkpoint= path to start afresh."
        )
    carry = _checkpoint.load(path, like=like)
    _check_resumed(carry, spec, path)
    return carry


def run_in_segments(
    spec: Spec,
    traced: Any,
    params: Any,
    data: Any,
    key: Any,
    tol: Any,
    target: Any,
    *,
    checkpoint: str | None = None,
    every: int | None = None,
    fingerprint: Callable[[], dict] | None = None,
    progress: bool = False,
    eval_data: Any = None,
    begin: tuple = (None, None),
) -> Result:
    """The run of ``spec`` as one or more compiled segments (see the module docstring);
    ``eval_data``: the held-out data (with ``spec.eval_every``); ``begin``: the
    ``(opt_state, state)`` to start from (see :func:`jaxgd.run._loop.start`)."""
    steps = spec.steps
    every = every or steps
    lock = _checkpoint.lock(checkpoint) if checkpoint else contextlib.nullcontext()
    # Ctrl-C is acted on between two segments; a second one interrupts at once.
    with lock, ctrl_c_held(deliver=False, second_interrupts=True) as ctrl_c:
        # The run's fingerprint is computed (compiled) only once the path is ours.
        fingerprint = fingerprint() if fingerprint is not None else None
        carry = finish = None
        if checkpoint is not None and _checkpoint.exists(checkpoint):
            like = start(spec, traced, params, data, eval_data, begin)
            carry = _resume(checkpoint, like, fingerprint, spec)
        bar = None
        if progress:
            done = 0 if carry is None else int(carry.step)
            bar = progress_bar(steps, initial=done, desc="minimize", unit="step")
        length = first_length(spec, params, data, eval_data)
        # The minibatch order, drawn once, not in every segment.
        order = minibatch_order(spec, key) if spec.batch_size is not None else None
        segment = 0
        try:
            while True:
                before = 0 if carry is None else int(carry.step)
                # Every process of a multi-process run takes process 0's segment.
                stop_at = agree(min(before + length, (before // every + 1) * every, steps))
                last = stop_at == steps  # else no full-data evaluation until the run is over
                t0 = time.perf_counter()
                if carry is None:
                    first = (spec, traced, params, data, order, tol, target, stop_at, last)
                    carry, finish = first_segment(*first, eval_data, begin)
                else:
                    carry, finish = next_segment(
                        spec, traced, carry, data, order, tol, target, stop_at, last, eval_data
                    )
                step = int(carry.step)  # waits for the segment
                seconds = time.perf_counter() - t0
                # A segment's pace counts its compiling where it is the first of its
                # kind (the first two, and the last): those only ever lower the pace known.
                pace = seconds / max(1, step - before)
                _note_pace(spec, pace, compiled=segment < 2 or last)
                segment += 1
                over = int(carry.status) != RUNNING or step >= steps
                pressed = bool(agree(int(ctrl_c.pressed)))  # process 0's Ctrl-C stops all
                if checkpoint is not None and (over or step % every == 0 or pressed):
                    _checkpoint.save(checkpoint, carry, metadata={"fingerprint": fingerprint})
                if bar is not None:
                    bar.update(step - before)
                    entry = min(before // spec.history_stride, carry.history.loss.shape[0] - 1)
                    bar.set_postfix(loss=f"{float(carry.history.loss[entry]):.4g}")
                if (over or pressed) and finish is None:
                    finish = finish_run(spec, traced, carry, data, tol, target)
                if over:
                    return result_of(carry, finish)
                if pressed:
                    raise _interrupted(carry, finish, checkpoint)
                # The next segment aims at SEGMENT_SECONDS, from this one's pace
                # (which counts a first call's compiling: it errs on the short side).
                length = max(1, min(8 * length, int(SEGMENT_SECONDS / max(pace, 1e-9))))
        finally:
            if bar is not None:
                bar.close()


def _interrupted(carry: Carry, finish: Finish, checkpoint: str | None) -> RunInterrupted:
    result = result_of(carry, finish)._replace(status=np.asarray(Status.INTERRUPTED, np.int32))
    where = (
        f"the run state is in {checkpoint!r}; call minimize again with the same arguments to resume"
        if checkpoint
        else "pass checkpoint=PATH to be able to resume a run"
    )
    return RunInterrupted(
        result,
        f"minimize: interrupted after {int(carry.step)} steps; the run so far is in this "
        f"exception's .result ({where}).",
    )
