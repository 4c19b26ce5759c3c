"""Seeding, progress bar, summary, Python datasets."""
from .plot import plot_history
from .py_dataset import PyDataset, Sequence
from .seeding import set_random_seed
from .sequences import pad_sequences

__all__ = ["set_random_seed", "plot_history", "PyDataset", "Sequence", "pad_sequences"]
