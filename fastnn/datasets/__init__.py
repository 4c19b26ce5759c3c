"""Data sets with Keras's ``load_data()``: ``mnist`` and ``fashion_mnist`` (found locally
or downloaded once, checksummed), ``imdb`` and ``reuters`` (Keras's files), and small real sets shipped in the package:
``digits``, ``breast_cancer``, ``diabetes``."""
from . import breast_cancer, diabetes, digits, fashion_mnist, imdb, mnist, reuters

__all__ = ["mnist", "fashion_mnist", "digits", "breast_cancer", "diabetes", "imdb", "reuters"]


def __dir__():   # dir() shows the public names, not the submodules
    return __all__
