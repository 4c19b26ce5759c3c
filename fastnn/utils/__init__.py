"""Seeding, progress bar, summary."""
from .plot import plot_history
from .seeding import set_random_seed

__all__ = ["set_random_seed", "plot_history"]
