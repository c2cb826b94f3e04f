"""issue 23: a minimize call that compiles again only because its loss or
optimizer is a new object with the same code (a new lambda, a functools.partial,
a schedule made again) is warned of once, naming the cause and the fix."""

from __future__ import annotations

import functools
import warnings

import jax
import jax.numpy as jnp
import optax
import pytest

import jaxgd as gd

P0 = jnp.zeros(3)


@pytest.fixture(autouse=True)
def forget():
    gd.clear_caches()
    yield
    gd.clear_caches()


def _bowl(p, c=3.0):
    return jnp.sum((p - c) ** 2)


def _calls(make_loss, make_optimizer, n=3) -> list[str]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(n):
            gd.minimize(make_loss(), P0, make_optimizer(), steps=5)
    return [str(w.message) for w in caught if "compiles again" in str(w.message)]


@pytest.mark.parametrize(
    ("make_loss", "make_optimizer", "said"),
    [
        (lambda: lambda p: _bowl(p), lambda: gd.adam(0.1), "the loss holds a new lambda"),
        (lambda: functools.partial(_bowl, c=2.0), lambda: gd.adam(0.1), "new functools.partial"),
        (
            lambda: _bowl,
            lambda: gd.sgd(optax.cosine_decay_schedule(0.1, 5)),
            "the optimizer holds a new cosine_decay_schedule.<locals>.schedule",
        ),
    ],
    ids=["lambda", "partial", "schedule"],
)
def test_a_call_recompiling_for_a_new_object_is_warned_of_once(make_loss, make_optimizer, said):
    messages = _calls(make_loss, make_optimizer)
    assert len(messages) == 1, messages  # once, though every call after the first compiles
    assert said in messages[0] and "jax.tree_util.Partial" in messages[0]


@pytest.mark.parametrize(
    ("make_loss", "make_optimizer"),
    [
        (lambda: _bowl, lambda: gd.adam(0.1)),  # the same objects: compiled once
        (lambda: jax.tree_util.Partial(_bowl, c=2.0), lambda: gd.adam(0.1)),  # traced values
        (lambda: _bowl, lambda: optax.adam(0.1)),  # an inline optax optimizer compiles once
    ],
    ids=["same-objects", "tree-partial", "inline-optax"],
)
def test_calls_that_do_not_compile_again_are_not_warned_of(make_loss, make_optimizer):
    assert _calls(make_loss, make_optimizer) == []


def test_a_new_lambda_with_other_values_is_another_loss_not_warned_of():
    values = iter([1.0, 2.0, 3.0])
    make_loss = lambda: (lambda c: lambda p: _bowl(p, c))(next(values))
    assert _calls(make_loss, lambda: gd.sgd(0.1)) == []
