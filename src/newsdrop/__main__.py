"""``python -m newsdrop``: the same as the ``newsdrop`` command."""

from newsdrop.cli import main

main()
