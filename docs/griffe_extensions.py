"""Griffe extensions for the API reference (loaded by mkdocs.yml).

* ``ExampleSections``: jaxgd's docstrings title their runnable examples
  ``Example:``; Google style as griffe reads it renders only ``Examples:`` as
  code, so the title is read as ``Examples:``. Their Sphinx roles
  (``:func:`minimize```) are shown as code (``minimize``), and their
  ``Returns:`` sections, prose, are kept whole as the description.
* ``DataclassTransforms``: a subclass of ``gd.Optimizer`` is made a dataclass
  by its base (``typing.dataclass_transform`` and ``__init_subclass__``), not
  by a ``@dataclass`` decorator, so griffe's dataclass support does not see
  it: its signature would lose its hyperparameters. This extension marks such
  classes as dataclasses and shows a field declared with a field specifier
  (``decay_rate(0.9)``) with its default (``0.9``).
"""

import re

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.M)
_ROLE = re.compile(r":(?:func|meth|class|data|attr|mod|obj|exc):`~?([^`]+)`")
# A "Returns:" section's first line, which griffe would split at its first
# colon into a type and a description.
_RETURNS_FIRST_LINE = re.compile(r"^(\s*Returns:\n\s+)(?=\S)", re.M)


class ExampleSections(griffe.Extension):
    """Read ``Example:`` as ``Examples:`` and Sphinx roles as code."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            value = _ROLE.sub(r"`\1`", obj.docstring.value)
            # jaxgd's Returns sections are prose: an empty type before the
            # colon keeps the whole prose as the description (the type shown
            # is the function's return annotation).
            value = _RETURNS_FIRST_LINE.sub(r"\1: ", value)
            obj.docstring.value = _EXAMPLE_TITLE.sub(r"\1Examples:", value)


def _is_transform_base(cls: griffe.Class) -> bool:
    return any(
        str(d.callable_path).endswith("dataclass_transform")
        for d in cls.decorators
    )


def _field_specifiers(base: griffe.Class) -> set[str]:
    """The names the base declares as field specifiers (its decorator's
    ``field_specifiers=(...)``), besides ``dataclasses.field``."""
    names = set()
    for decorator in base.decorators:
        if isinstance(decorator.value, griffe.ExprCall):
            for argument in decorator.value.arguments:
                if getattr(argument, "name", None) == "field_specifiers":
                    names |= set(re.findall(r"\w+", str(argument.value)))
    return names - {"dataclasses", "field"}


def _classes(module: griffe.Module):
    for member in module.members.values():
        if member.is_alias:
            continue
        if member.is_module:
            yield from _classes(member)
        elif member.is_class:
            yield member


class DataclassTransforms(griffe.Extension):
    """Treat subclasses of a ``dataclass_transform`` base as dataclasses."""

    def on_package(self, *, pkg: griffe.Module, **kwargs) -> None:
        marked = False
        for cls in _classes(pkg):
            try:
                bases = [b for b in cls.mro() if _is_transform_base(b)]
            except (ValueError, griffe.AliasResolutionError):
                continue
            if not bases:
                continue
            specifiers = set().union(*(_field_specifiers(b) for b in bases))
            for attribute in cls.attributes.values():
                value = attribute.value
                if (
                    isinstance(value, griffe.ExprCall)
                    and str(value.function).split(".")[-1] in specifiers
                ):
                    default = [
                        a for a in value.arguments if not hasattr(a, "name")
                    ]
                    default += [
                        a.value
                        for a in value.arguments
                        if getattr(a, "name", None) == "default"
                    ]
                    attribute.value = default[0] if default else None
            dataclass = griffe.ExprName("dataclass", parent="dataclasses")
            cls.decorators.append(
                griffe.Decorator(dataclass, lineno=None, endlineno=None)
            )
            marked = True
        if marked:  # build their __init__ as for any dataclass
            griffe.DataclassesExtension().on_package(pkg=pkg)
