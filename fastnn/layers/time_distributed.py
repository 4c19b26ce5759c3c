"""TimeDistributed(Dense): a Dense layer applied to every step of a sequence."""
from .base import Layer
from .core import Dense


class TimeDistributed(Layer):
    """Keras 3's TimeDistributed around a Dense layer: input (steps, ...,
    features) -> (steps, ..., units), the same kernel and bias at every step.
    fastnn's Dense already maps the last axis of N-D inputs, so this runs the
    wrapped layer's own op; other wrapped layers are not supported. The
    weights are the wrapped layer's (Keras keeps them at
    ``layers/time_distributed/layer/vars`` in a weights file). As in Keras its call is given the
    input's mask (the steps stay masked downstream); the Dense maths ignores it."""
    propagates_mask = takes_mask = True

    def __init__(self, layer, **kwargs):
        if isinstance(layer, dict):
            from . import deserialize
            layer = deserialize(layer)
        if not isinstance(layer, Dense):
            raise ValueError(f"TimeDistributed supports a Dense layer in fastnn, got {layer!r}")
        super().__init__(**kwargs)
        self.layer = layer

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list) or len(input_shape) < 2:
            raise ValueError(f"TimeDistributed {self.name!r} needs inputs of shape (steps, ..., features), got "
                             f"{input_shape}")
        return self.layer.compute_output_shape(input_shape)

    def build(self, input_shape):
        self.layer.build_for(input_shape[1:])
        self._weights = self.layer.weights

    @property
    def trainable(self):
        return self._trainable

    @trainable.setter
    def trainable(self, value):
        self._trainable = bool(value)
        if getattr(self, "layer", None) is not None:
            self.layer.trainable = value

    def op(self, input_shape):
        return self.layer.op(input_shape)

    def keras_weight_groups(self):
        return [("", self.name, []), ("/layer", self.layer.name, self.layer.weights)]

    def get_config(self):
        from . import serialize
        return {**super().get_config(), "layer": serialize(self.layer)}
