"""scikit-learn wrappers: ``SKLearnClassifier``, ``SKLearnRegressor``, ``SKLearnTransformer``.

Importing this package imports scikit-learn (``pip install "fastnn[distributed]"``);
``import fastnn`` alone does not.
"""
from .sklearn_wrapper import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer

__all__ = ["SKLearnClassifier", "SKLearnRegressor", "SKLearnTransformer"]
