"""``python -m newsdrop``: the same as the ``newsdrop`` command."""

if __name__ == "__main__":  # worker processes (spawned by full builds) import this module too:
    from newsdrop.cli.main import main  # only then, so that they start without the CLI's imports

    main()
