"""Feature-map reshaping layers (channels_last): ZeroPadding2D, Cropping2D,
UpSampling2D. Maths in ``kernels/kinds/reshaping.py``."""
import numbers

from ..kernels.kinds import reshaping as K
from ..kernels.kinds.parallel import header
from .base import Layer, Op
from .convolutional import check_data_format, int_tuple, spatial_shape


def _pairs(value, name, what):
    """Keras's int / (sym_h, sym_w) / ((top, bottom), (left, right)) as ((t, b), (l, r))."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        value = (value, value)
    try:
        parts = tuple(value)
    except TypeError:
        parts = ()
    if len(parts) == 2:
        out = []
        for p in parts:
            if isinstance(p, numbers.Integral) and not isinstance(p, bool):
                p = (p, p)
            try:
                p = tuple(p)
            except TypeError:
                p = ()
            if len(p) != 2 or any(isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0 for v in p):
                break
            out.append(tuple(int(v) for v in p))
        else:
            return tuple(out)
    raise ValueError(f"{what}: {name} must be an int, a tuple of 2 ints or a tuple of 2 tuples of 2 ints, all "
                     f">= 0; got {value!r}")


class ZeroPadding2D(Layer):
    """Adds rows and columns of zeros around each map."""
    keras_build_config = False

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "ZeroPadding2D")
        self.padding = _pairs(padding, "padding", "ZeroPadding2D")

    def compute_output_shape(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        (t, b), (l, r) = self.padding
        return (H + t + b, W + l + r, C)

    def op(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        OH, OW, _ = self.compute_output_shape(input_shape)
        return Op(K.WINDOW, ints=header(0) + (H, W, C, OH, OW, -self.padding[0][0], -self.padding[1][0]))

    def get_config(self):
        return {**super().get_config(), "padding": [list(p) for p in self.padding], "data_format": self.data_format}


class Cropping2D(Layer):
    """Removes rows and columns at the edges of each map."""
    keras_build_config = False

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "Cropping2D")
        self.cropping = _pairs(cropping, "cropping", "Cropping2D")

    def compute_output_shape(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        (t, b), (l, r) = self.cropping
        if H - t - b <= 0 or W - l - r <= 0:
            raise ValueError(f"Cropping2D layer {self.name!r}: cropping {self.cropping} leaves nothing of inputs of "
                             f"shape {(None, *input_shape)}")
        return (H - t - b, W - l - r, C)

    def op(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        OH, OW, _ = self.compute_output_shape(input_shape)
        return Op(K.WINDOW, ints=header(0) + (H, W, C, OH, OW, self.cropping[0][0], self.cropping[1][0]))

    def get_config(self):
        return {**super().get_config(), "cropping": [list(p) for p in self.cropping],
                "data_format": self.data_format}


class UpSampling2D(Layer):
    """Repeats each row ``size[0]`` times and each column ``size[1]`` times
    (interpolation="nearest"; "bilinear" is refused)."""
    keras_build_config = False

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.data_format = check_data_format(data_format, "UpSampling2D")
        self.size = int_tuple(size, 2, "size", "UpSampling2D")
        if interpolation != "nearest":
            raise ValueError(f"UpSampling2D: interpolation={interpolation!r} is not supported; fastnn has "
                             "interpolation='nearest' (Keras's default)")
        self.interpolation = interpolation

    def compute_output_shape(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        return (H * self.size[0], W * self.size[1], C)

    def op(self, input_shape):
        H, W, C = spatial_shape(self, input_shape, 2)
        return Op(K.UPSAMPLE, ints=header(0) + (H, W, C, self.size[0], self.size[1], 0, 0))

    def get_config(self):
        return {**super().get_config(), "size": list(self.size), "data_format": self.data_format,
                "interpolation": self.interpolation}
