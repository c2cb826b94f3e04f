"""Tests for jaxgd.comparison._programs: the traced sweeps kept on disk between comparisons.

A kept program must give the same bits as a fresh one and as a comparison without the
cache, be found again only for the same problem, optimizers, sizes and shapes, never be
used for what nothing identifies (a hand-made problem or optimizer), and a broken entry
must cost a trace, never a wrong or failed comparison.
"""

from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np
import pytest
from helpers import assert_same_bits

import jaxgd as gd
from jaxgd import optimizers
from jaxgd.comparison import _programs as programs  # program_key: the cache's own rule
from jaxgd.comparison import _sweep as grid  # _sweep: watched, so a kept program is not traced

ARGS = dict(learning_rates=[0.01, 0.1], seeds=2, steps=30)


@pytest.fixture
def cache(tmp_path):
    gd.comparison.use_program_cache(tmp_path / "sweeps")
    yield tmp_path / "sweeps"
    gd.comparison.use_program_cache(None)


def _arrays(c):
    return [
        (p.name, label, r.final_loss, r.curves, r.status)
        for p in c.problems
        for label, r in p.optimizers.items()
    ]


def _same_bits(a, b):
    assert_same_bits(_arrays(a), _arrays(b))


def test_a_kept_sweep_is_loaded_not_traced_and_gives_the_same_bits(cache, monkeypatch):
    gd.comparison.use_program_cache(None)
    problems = ["booth", "student_marks", "beale"]
    uncached = gd.compare(problems, ["vanilla", "adam"], **ARGS)
    gd.comparison.use_program_cache(cache)
    fresh = gd.compare(problems, ["vanilla", "adam"], **ARGS)
    assert len(list(cache.iterdir())) == 2  # booth and beale share one program
    _same_bits(uncached, fresh)

    def no_tracing(*args, **kwargs):
        raise AssertionError("the kept program was traced again")

    monkeypatch.setattr(grid, "_sweep", no_tracing)
    kept = gd.compare(problems, ["vanilla", "adam"], **ARGS)
    _same_bits(fresh, kept)


def test_without_the_cache_nothing_is_kept(tmp_path):
    gd.comparison.use_program_cache(None)
    gd.compare(["booth"], ["vanilla"], **ARGS)
    assert not (tmp_path / "sweeps").exists()


def _key(problem, factories=None, static=(30, None, True), args=None, mesh=None):
    factories = {"vanilla": optimizers.get("vanilla")} if factories is None else factories
    args = (jnp.zeros((2, 3)),) if args is None else args
    return programs.program_key(problem, factories, static, args, mesh)


def test_the_key_names_the_program():
    booth = gd.problems.get("booth")
    key = _key(booth)
    assert key == _key(gd.problems.get("booth"))  # built again: the same program
    assert key != _key(gd.problems.get("beale"))
    assert key != _key(booth, static=(31, None, True))
    assert key != _key(booth, args=(jnp.zeros((2, 4)),))
    assert key != _key(booth, args=(jnp.zeros((2, 3), jnp.int32),))
    assert key != _key(booth, {"vanilla": optimizers.get("adam")})  # the label is not enough
    assert key != _key(booth, {"vanilla": optimizers.get("vanilla"), "adam": gd.adam})
    q10, q100 = (gd.problems.get("quadratic", condition_number=c) for c in (10, 100))
    assert _key(q10) != _key(q100)
    beale = gd.problems.get("beale")  # a group's program: its problems, in order
    assert len({key, _key((booth, beale)), _key((beale, booth))}) == 3 and _key((booth,)) == key
    assert _key((booth, beale)) == _key((gd.problems.get("booth"), gd.problems.get("beale")))
    runs, data = gd.distributed.runs_mesh(), gd.distributed.data_mesh()
    # A mesh run's program is built for its mesh: the axes and devices are in the key.
    assert len({key, _key(booth, mesh=runs), _key(booth, mesh=data)}) == 3
    assert _key(booth, mesh=runs) == _key(booth, mesh=gd.distributed.runs_mesh())


def test_what_nothing_identifies_gets_no_key():
    booth = gd.problems.get("booth")
    assert _key(dataclasses.replace(booth)) is None  # not the catalogue's own
    assert _key((booth, dataclasses.replace(booth, name="mine"))) is None  # nor one of a group
    assert _key(booth, {"vanilla": lambda lr: gd.sgd(lr)}) is None  # not the registry's
    assert _key(booth, mesh=object()) is None
    assert _key(booth, static=(30, None, np.float32(1.0))) is None  # not a plain value


def test_an_unreadable_entry_is_compiled_again(cache):
    fresh = gd.compare(["booth"], ["vanilla"], **ARGS)
    (entry,) = cache.iterdir()
    entry.write_bytes(b"not a program")
    with pytest.warns(gd.comparison.ProgramCacheWarning, match="program cache .*deleted"):
        again = gd.compare(["booth"], ["vanilla"], **ARGS)
    _same_bits(fresh, again)
    (rewritten,) = cache.iterdir()
    assert rewritten.read_bytes() != b"not a program"


def test_the_least_recently_used_programs_go_first(cache, monkeypatch):
    monkeypatch.setattr(programs, "MAX_ENTRIES", 1)
    gd.compare(["booth"], ["vanilla"], **ARGS)
    (first,) = cache.iterdir()
    gd.compare(["beale"], ["vanilla"], **ARGS)
    (second,) = cache.iterdir()
    assert second != first


def test_a_cache_that_cannot_be_written_is_warned_of_and_skipped(tmp_path):
    (tmp_path / "file").write_text("")
    gd.comparison.use_program_cache(tmp_path / "file" / "sweeps")
    try:
        with pytest.warns(RuntimeWarning, match="could not keep a traced sweep"):
            c = gd.compare(["booth"], ["vanilla"], **ARGS)
    finally:
        gd.comparison.use_program_cache(None)
    assert c.problems[0].optimizers["vanilla"].final_loss.shape == (2, 2)


def test_the_source_digest_covers_every_wing(monkeypatch):
    """A cached program is keyed on jaxgd's whole source: a change in the run loop (not
    only in the problems) must give new keys, or an old program would run stale code."""
    import pathlib

    before = programs._installed.__wrapped__()[0]
    body = pathlib.Path(programs.__file__).parents[1] / "run" / "_body.py"
    real = pathlib.Path.read_bytes

    def edited(path):
        return real(path) + b"\n# edited" if path == body else real(path)

    monkeypatch.setattr(pathlib.Path, "read_bytes", edited)
    assert programs._installed.__wrapped__()[0] != before


def _flip_a_byte(entry, at):
    blob = bytearray(entry.read_bytes())
    blob[at] ^= 0x10
    entry.write_bytes(bytes(blob))


@pytest.mark.parametrize("at", [-1, 2000])
def test_a_damaged_entry_is_detected_deleted_and_traced_again(cache, at, monkeypatch):
    """issue 23: a corrupted entry broke every later run ("Failed to deserialize
    StableHLO"), was never deleted, and the error did not mention the cache."""
    fresh = gd.compare(["booth"], ["vanilla"], **ARGS)
    (entry,) = cache.iterdir()
    _flip_a_byte(entry, at)
    damaged = entry.read_bytes()
    traced = []
    real = grid._sweep
    monkeypatch.setattr(grid, "_sweep", lambda *a: traced.append(a) or real(*a))
    with pytest.warns(gd.comparison.ProgramCacheWarning, match=rf"{cache}.*{entry.name}"):
        again = gd.compare(["booth"], ["vanilla"], **ARGS)
    assert traced  # traced again, not loaded
    _same_bits(fresh, again)
    assert entry.read_bytes() != damaged  # the damaged entry was replaced


def test_swapped_entries_are_never_used_for_each_other(cache, monkeypatch):
    """issue 23: two entries swapped gave silently wrong numbers."""
    booth = gd.compare(["booth"], ["vanilla"], **ARGS)
    beale = gd.compare(["beale"], ["vanilla"], **ARGS)
    first, second = sorted(cache.iterdir())
    a, b = first.read_bytes(), second.read_bytes()
    first.write_bytes(b)
    second.write_bytes(a)
    for name, alone in (("booth", booth), ("beale", beale)):  # each alone: its own program
        with pytest.warns(gd.comparison.ProgramCacheWarning, match="another key"):
            again = gd.compare([name], ["vanilla"], **ARGS)
        _same_bits(alone, again)


def test_swapped_or_damaged_entries_of_jaxs_cache_are_deleted(tmp_path):
    """issue 23: JAX keys a compiled program by its file name only: two entries of
    its persistent cache swapped ran each other's program (measured: sin for cos)."""
    f, g, h = (tmp_path / f"jit_{n}-{n * 8}-cache" for n in "fgh")
    for entry in (f, g, h):
        entry.write_bytes(entry.name.encode() * 10)
    gd.comparison.seal_compilation_cache(tmp_path)
    assert gd.comparison.check_compilation_cache(tmp_path) == []  # sealed and whole
    a, b = f.read_bytes(), g.read_bytes()
    f.write_bytes(b)
    g.write_bytes(a)
    with pytest.warns(gd.comparison.ProgramCacheWarning, match=rf"compilation cache \({tmp_path}"):
        removed = gd.comparison.check_compilation_cache(tmp_path)
    assert sorted(removed) == [f.name, g.name]
    assert sorted(p.name for p in tmp_path.iterdir()) == [h.name, h.name + ".jaxgd-sha256"]
    h.write_bytes(h.read_bytes()[:-3])  # truncated
    with pytest.warns(gd.comparison.ProgramCacheWarning):
        assert gd.comparison.check_compilation_cache(tmp_path) == [h.name]


def test_the_sweeps_run_costliest_first_when_traced_cheapest_first_when_loaded(cache):
    # Traced anew, the largest compile goes first (the others compile while it runs);
    # loaded, the small problems' results (and figures) come while the largest runs last.
    names = ["booth", "diabetes_linear", "student_marks"]  # cheapest: booth (2 x 1)
    for expected in (
        ["diabetes_linear", "student_marks", "booth"],
        ["booth", "student_marks", "diabetes_linear"],
    ):
        seen: list[str] = []
        c = gd.compare(names, ["vanilla"], on_problem=seen.append, **ARGS, eval_seeds=2)
        seen = [p.name for p in seen]
        assert seen == expected
        assert [p.name for p in c.problems] == names  # reported in the order asked
