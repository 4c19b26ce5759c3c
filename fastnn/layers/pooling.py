"""Pooling layers (channels_last): MaxPooling1D/2D, AveragePooling1D/2D,
GlobalAveragePooling2D, GlobalMaxPooling2D. Maths in ``kernels/kinds/pooling.py``."""
from ..kernels.kinds import pooling as K
from ..kernels.kinds.parallel import header
from .base import Layer, Op
from .convolutional import check_data_format, check_padding, int_tuple, output_size, spatial_shape


class _Pooling(Layer):
    """Pools windows of ``pool_size`` every ``strides`` (default: ``pool_size``)."""
    rank = 2
    mode = K.MAX
    keras_build_config = False

    def __init__(self, pool_size=2, strides=None, padding="valid", data_format=None, **kwargs):
        super().__init__(**kwargs)
        what = type(self).__name__
        self.data_format = check_data_format(data_format, what)
        self.pool_size = int_tuple(pool_size, self.rank, "pool_size", what)
        self.strides = self.pool_size if strides is None else int_tuple(strides, self.rank, "strides", what)
        self.padding = check_padding(padding, what)

    def _window(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, self.rank)
        (KH, KW), (SH, SW) = ((1, *self.pool_size), (1, *self.strides)) if self.rank == 1 else \
            (self.pool_size, self.strides)
        OH, PT = output_size(H, KH, SH, 1, "valid" if self.rank == 1 else self.padding)
        OW, PL = output_size(W, KW, SW, 1, self.padding)
        if OH <= 0 or OW <= 0:
            raise ValueError(f"{type(self).__name__} layer {self.name!r}: input of shape {(None, *input_shape)} is "
                             f"smaller than pool_size {self.pool_size} with padding='valid'; the output would be "
                             "empty")
        return H, W, C, OH, OW, KH, KW, SH, SW, PT, PL

    def compute_output_shape(self, input_shape):
        H, W, C, OH, OW = self._window(input_shape)[:5]
        return (OW, C) if self.rank == 1 else (OH, OW, C)

    def op(self, input_shape):
        window = self._window(input_shape)
        return Op(K.POOL, ints=header(window[2]) + K.geometry(*window, self.mode))

    def get_config(self):
        return {**super().get_config(), "pool_size": list(self.pool_size), "padding": self.padding,
                "strides": list(self.strides), "data_format": self.data_format}


class MaxPooling2D(_Pooling):
    """The largest value of each window, per channel."""
    rank, mode = 2, K.MAX


class AveragePooling2D(_Pooling):
    """The mean of each window, per channel (with padding="same", of the values inside the map)."""
    rank, mode = 2, K.AVERAGE


class MaxPooling1D(_Pooling):
    rank, mode = 1, K.MAX


class AveragePooling1D(_Pooling):
    rank, mode = 1, K.AVERAGE


class _GlobalPooling2D(Layer):
    """Pools the whole ``(rows, cols)`` map: output ``(channels,)``, or
    ``(1, 1, channels)`` with ``keepdims=True``."""
    mode = K.AVERAGE
    keras_build_config = False

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, type(self).__name__)
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        C = spatial_shape(self, input_shape, 2)[2]
        return (1, 1, C) if self.keepdims else (C,)

    def op(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        return Op(K.POOL, ints=header(C) + K.geometry(H, W, C, 1, 1, H, W, 1, 1, 0, 0, self.mode))

    def get_config(self):
        return {**super().get_config(), "data_format": self.data_format, "keepdims": self.keepdims}


class GlobalAveragePooling2D(_GlobalPooling2D):
    mode = K.AVERAGE


class GlobalMaxPooling2D(_GlobalPooling2D):
    mode = K.MAX
