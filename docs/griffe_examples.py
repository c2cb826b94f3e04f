"""A griffe extension for the API reference: jaxgd's docstrings title their
runnable examples ``Example:`` (one example); Google style as griffe reads it
renders only ``Examples:`` as code, so the title is read as ``Examples:``."""

import re

import griffe

_EXAMPLE_TITLE = re.compile(r"^(\s*)Example:\s*$", re.M)


class ExampleSections(griffe.Extension):
    """Read an ``Example:`` section as ``Examples:`` (doctest blocks become code)."""

    def on_object(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = _EXAMPLE_TITLE.sub(
                r"\1Examples:", obj.docstring.value
            )
