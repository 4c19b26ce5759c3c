"""Normalization and Rescaling: fixed affine maps of the features."""
import numpy as np

from ..kernels import program as P
from ..utils.numbers import fits_float32
from .base import Layer, Op


def _finite_vector(values, what):
    arr = np.asarray(values)
    if arr.dtype.kind not in "biuf" or not np.isfinite(arr.astype(np.float32)).all():
        raise ValueError(f"{what} must be finite real numbers, got {values!r}")
    return arr.astype(np.float32).reshape(-1)


class Normalization(Layer):
    """``(x - mean) / max(sqrt(variance), 1e-7)`` per feature (last axis).

    ``adapt(data)`` sets mean and variance from data of shape
    ``(n, ..., features)``; or pass ``mean=``/``variance=``. Weights (all
    non-trainable, Keras's order): mean (features,), variance (features,),
    count () = number of rows adapted on.
    """

    def __init__(self, axis=-1, mean=None, variance=None, invert=False, **kwargs):
        super().__init__(**kwargs)
        if axis not in (-1, None) and not (isinstance(axis, (list, tuple)) and list(axis) == [-1]):
            raise ValueError(f"Normalization supports axis=-1 only, got {axis!r}")
        if invert:
            raise ValueError("Normalization(invert=True) is not supported")
        if (mean is None) != (variance is None):
            raise ValueError("Normalization: pass both mean and variance, or neither")
        self._init_mean = None if mean is None else _finite_vector(mean, "Normalization mean")
        self._init_var = None if variance is None else _finite_vector(variance, "Normalization variance")
        if self._init_var is not None and (self._init_var < 0).any():
            raise ValueError("Normalization variance must be >= 0")
        self.mean = self.variance = self.count = None

    def build(self, input_shape):
        n = input_shape[-1]
        self.mean = self.add_weight("mean", (n,), "zeros", trainable=False)
        self.variance = self.add_weight("variance", (n,), "ones", trainable=False)
        self.count = self.add_weight("count", (), "zeros", trainable=False)
        if self._init_mean is not None:
            for given, var in ((self._init_mean, self.mean), (self._init_var, self.variance)):
                if given.size not in (1, n):
                    raise ValueError(f"Normalization {self.name!r}: mean/variance of size {given.size} "
                                     f"do not match {n} features")
                var.value[...] = given

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or not input_shape:
            raise ValueError(f"Normalization {self.name!r} needs one input of shape (..., features), got "
                             f"{input_shape}")
        return tuple(input_shape)

    def adapt(self, data, batch_size=None, steps=None):
        """Sets mean and variance (population, ddof=0) per feature from ``data``."""
        data = np.asarray(data)
        if data.ndim < 2 or data.shape[0] == 0:
            raise ValueError(f"Normalization.adapt needs a non-empty array of shape (n, features), got {data.shape}")
        if not np.issubdtype(data.dtype, np.number) or np.issubdtype(data.dtype, np.complexfloating):
            raise ValueError(f"Normalization.adapt needs real numbers, got dtype {data.dtype}")
        flat = data.reshape(-1, data.shape[-1]).astype(np.float64)
        if not np.all(np.isfinite(flat)):
            raise ValueError("Normalization.adapt: data contains NaN or inf")
        self.build_for(tuple(data.shape[1:]))
        self.mean.value[...] = flat.mean(axis=0)
        self.variance.value[...] = flat.var(axis=0)
        self.count.value[...] = flat.shape[0]

    def op(self, input_shape):
        return Op(P.NORMALIZE, 0, self.mean, self.variance, ints=(input_shape[-1],))

    def get_config(self):
        given = self._init_mean is not None
        return {**super().get_config(), "axis": [-1], "invert": False,
                "mean": self._init_mean.tolist() if given else None,
                "variance": self._init_var.tolist() if given else None}


class Rescaling(Layer):
    """``x * scale + offset``, e.g. ``Rescaling(1/255)`` for pixels."""

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        for value, what in ((scale, "scale"), (offset, "offset")):
            if not fits_float32(value):
                raise ValueError(f"Rescaling {what} must be a finite number, got {value!r} (it must also be finite "
                                 "in float32, the kernels' type: at most 3.4e38)")
        self.scale, self.offset = float(scale), float(offset)

    def op(self, input_shape):
        return Op(P.RESCALE, consts=(self.scale, self.offset))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "offset": self.offset}
