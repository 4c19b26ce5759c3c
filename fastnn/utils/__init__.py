"""Seeding, progress bar, summary, Python datasets."""
from .numerical import normalize, to_categorical
from .plot import plot_history
from .py_dataset import PyDataset, Sequence
from .seeding import set_random_seed
from .sequences import pad_sequences

__all__ = ["set_random_seed", "plot_history", "PyDataset", "Sequence", "to_categorical", "normalize", "pad_sequences"]


def __dir__():   # dir() shows the public names, not the submodules
    return __all__
