"""Models: Sequential and the training engine."""
from .sequential import Sequential

__all__ = ["Sequential"]
