"""The one CLI, ``shulian``. Each area has its own module; main.py wires them explicitly."""
