"""GlobalAveragePooling1D and GlobalMaxPooling1D (maths in ``kernels/kinds/global_pooling1d.py``)."""
from ..kernels.kinds import global_pooling1d as K
from .base import Layer, Op


class _GlobalPooling1D(Layer):
    mode = None
    keras_build_config = False

    def __init__(self, data_format="channels_last", keepdims=False, **kwargs):
        super().__init__(**kwargs)
        if data_format not in ("channels_last", None):
            raise ValueError(f"{type(self).__name__} data_format={data_format!r} is not supported; fastnn pools "
                             "inputs of shape (steps, channels) (channels_last)")
        self.keepdims = bool(keepdims)

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) != 2:
            raise ValueError(f"{type(self).__name__} {self.name!r} needs inputs of shape (steps, channels), got "
                             f"{input_shape}")
        return (1, input_shape[1]) if self.keepdims else (input_shape[1],)

    def op(self, input_shape):
        return Op(K.POOLING1D, ints=(input_shape[0], input_shape[1], self.mode))

    def get_config(self):
        return {**super().get_config(), "data_format": "channels_last", "keepdims": self.keepdims}


class GlobalAveragePooling1D(_GlobalPooling1D):
    """The mean over the steps: (steps, channels) -> (channels,) (``keepdims``:
    (1, channels)). Under a mask (``Embedding(mask_zero=True)``) the mean of
    the unmasked steps, as Keras; NaN when every step is masked, as Keras."""
    mode = K.AVERAGE
    takes_mask = reads_mask = True


class GlobalMaxPooling1D(_GlobalPooling1D):
    """The maximum over the steps: (steps, channels) -> (channels,). Keras's
    GlobalMaxPooling1D ignores masks, and so does this one."""
    mode = K.MAXIMUM
