"""``python -m newsdrop``: the same as the ``newsdrop`` command."""

from newsdrop.cli import main

if __name__ == "__main__":  # worker processes (spawned by full builds) import this module too
    main()
