"""``python -m jaxgd``: the same as the ``jaxgd`` command."""

from jaxgd.cli import command

if __name__ == "__main__":
    command()
