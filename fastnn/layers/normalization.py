"""BatchNormalization: per-feature normalization by batch statistics in training,
by moving statistics at inference (maths in ``kernels/kinds/batchnorm.py``)."""
import math

import numpy as np

from .. import initializers, regularizers
from ..kernels import program as P
from ..utils.numbers import fits_float32
from .base import Layer, Op


class BatchNormalization(Layer):
    """Keras 3's BatchNormalization over the last axis of flat inputs ``(features,)``.

    Training (``fit``): ``gamma * (x - mean) / sqrt(var + epsilon) + beta`` with
    the batch's mean and biased variance, then after each step
    ``moving = moving * momentum + batch_statistic * (1 - momentum)``.
    Inference (``predict``/``evaluate``, and a layer with ``trainable=False``
    also in training, as in Keras 3): the moving statistics instead.

    Weights, in Keras's order: gamma (``scale=True``, init ones) and beta
    (``center=True``, init zeros), trainable; moving_mean (zeros) and
    moving_variance (ones), non-trainable. All of shape ``(features,)``.
    """

    def __init__(self, axis=-1, momentum=0.99, epsilon=1e-3, center=True, scale=True,
                 beta_initializer="zeros", gamma_initializer="ones", moving_mean_initializer="zeros",
                 moving_variance_initializer="ones", beta_regularizer=None, gamma_regularizer=None,
                 beta_constraint=None, gamma_constraint=None, synchronized=False, **kwargs):
        super().__init__(**kwargs)
        if isinstance(axis, (list, tuple)) and len(axis) == 1:
            axis = axis[0]
        if isinstance(axis, bool) or not isinstance(axis, int):
            raise ValueError(f"BatchNormalization axis must be an integer, got {axis!r}")
        self.axis = axis
        for name, value in (("momentum", momentum), ("epsilon", epsilon)):
            if not fits_float32(value):
                raise ValueError(f"BatchNormalization {name} must be a finite float32 number, got {value!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"BatchNormalization momentum must be in [0, 1], got {momentum!r}")
        if np.float32(epsilon) <= 0:     # 1e-50 is 0 in float32: a batch of one would divide by 0
            raise ValueError(f"BatchNormalization epsilon must be positive in float32 (at least 1.4e-45), "
                             f"got {epsilon!r}")
        if beta_constraint is not None or gamma_constraint is not None:
            raise ValueError("BatchNormalization beta_constraint / gamma_constraint are not supported")
        if synchronized:
            raise ValueError("BatchNormalization(synchronized=True) needs a distributed TensorFlow strategy")
        self.momentum, self.epsilon = float(momentum), float(epsilon)
        self.center, self.scale = bool(center), bool(scale)
        self.beta_initializer = initializers.get(beta_initializer)
        self.gamma_initializer = initializers.get(gamma_initializer)
        self.moving_mean_initializer = initializers.get(moving_mean_initializer)
        self.moving_variance_initializer = initializers.get(moving_variance_initializer)
        self.beta_regularizer = regularizers.get(beta_regularizer)
        self.gamma_regularizer = regularizers.get(gamma_regularizer)
        self.gamma = self.beta = self.moving_mean = self.moving_variance = None

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or not input_shape:
            raise ValueError(f"BatchNormalization {self.name!r} needs one input of shape (..., features), got "
                             f"{input_shape}")
        if self.axis not in (-1, len(input_shape)):
            raise ValueError(f"BatchNormalization {self.name!r}: axis={self.axis} is not supported for inputs of "
                             f"shape (None, {', '.join(map(str, input_shape))}); fastnn normalizes the last axis "
                             "(axis=-1, Keras's default for channels_last data)")
        return tuple(input_shape)

    def build(self, input_shape):
        shape = (input_shape[-1],)
        if self.scale:
            self.gamma = self.add_weight("gamma", shape, self.gamma_initializer, regularizer=self.gamma_regularizer)
        if self.center:
            self.beta = self.add_weight("beta", shape, self.beta_initializer, regularizer=self.beta_regularizer)
        self.moving_mean = self.add_weight("moving_mean", shape, self.moving_mean_initializer, trainable=False)
        self.moving_variance = self.add_weight("moving_variance", shape, self.moving_variance_initializer,
                                               trainable=False)

    def op(self, input_shape):
        # 1 - momentum is formed in double precision and then rounded, as Keras
        # computes ``mean * (1.0 - self.momentum)`` with a Python float.
        return Op(P.BATCHNORM, 0, self.gamma, self.beta, consts=(self.epsilon, self.momentum, 1.0 - self.momentum),
                  state=(self.moving_mean, self.moving_variance), ints=(input_shape[-1],),
                  scratch=5 * math.prod(input_shape))

    def get_config(self):
        return {**super().get_config(), "axis": self.axis, "momentum": self.momentum, "epsilon": self.epsilon,
                "center": self.center, "scale": self.scale,
                "beta_initializer": initializers.serialize(self.beta_initializer),
                "gamma_initializer": initializers.serialize(self.gamma_initializer),
                "moving_mean_initializer": initializers.serialize(self.moving_mean_initializer),
                "moving_variance_initializer": initializers.serialize(self.moving_variance_initializer),
                "beta_regularizer": regularizers.serialize(self.beta_regularizer),
                "gamma_regularizer": regularizers.serialize(self.gamma_regularizer)}
