"""Compiled kernels: ``program`` (the op-table layout), ``cpu`` and ``cuda``."""
from . import cache  # noqa: F401  (must precede any cached kernel definition)
