"""The `newsdrop` command: one module per command group, calling the stages' functions."""
