"""Sequential: a stack of layers, the chain special case of a graph model."""
import copy

from .. import layers as layers_module
from ..layers.base import FLOAT32_POLICY, Layer, check_float32, normalize_shape, several_outputs
from ..layers.core import InputLayer
from ..layers.node import KerasTensor
from .model import Model


class Sequential(Model):
    """A linear stack of layers: each layer takes the previous one's output.

    Examples::

        model = keras.Sequential([keras.Input(shape=(28, 28)), keras.layers.Flatten(),
                                  keras.layers.Dense(10, activation="softmax")], name="mnist")
        model = keras.models.Sequential()
        model.add(keras.layers.Flatten(input_shape=[28, 28]))
        model.add(keras.layers.Dense(300, activation="relu"))

    Args:
        layers: Optional list of layers, added in order as by ``add``. The
            first may be ``keras.Input(shape=...)`` (or an ``InputLayer``),
            which fixes the input shape. Defaults to ``None`` (an empty model).
        name: Optional non-empty string. Defaults to ``"sequential"``, then
            ``"sequential_1"``, ... numbered across the session as Keras 3 does
            (``keras.backend.clear_session()`` starts again).
        trainable: Boolean, default ``True``. ``False`` freezes every layer:
            ``fit`` leaves their weights unchanged.
        **kwargs: ``dtype`` is accepted, as Keras's models take it (fastnn
            computes in float32); any other keyword raises ``TypeError``.

    ``add(layer)`` appends a layer (an ``Input`` only first; the same layer
    object only once). The model is built as soon as its input shape is
    known: from an ``Input`` first, from ``input_shape=`` on the first layer,
    from ``build((None, *shape))``, or from the first data given to ``fit``,
    ``evaluate`` or ``predict``. Building calls each layer on the previous
    one's output, so ``model.inputs``, ``model.outputs``, ``layer.output``
    and ``keras.Model(model.inputs, layer.output)`` work as in Keras.
    Then ``compile``, ``fit``, ``evaluate``, ``predict``, ``summary`` and
    ``save`` (see ``keras.Model``)."""
    _defer_build = False    # from_config adds every layer, then builds once (linear in the layers)

    def __init__(self, layers=None, name=None, trainable=True, **kwargs):
        super().__init__(name=name, trainable=trainable, **kwargs)
        self._layers = []
        self._input_shape = None
        self._input_layer = None
        self._chain = None          # (inputs, nodes, outputs) of the last build
        for layer in layers or []:
            self.add(layer)
        if not trainable:
            self.trainable = False

    _traced = False

    def _default_name(self):
        from ..layers.base import unique_name
        return unique_name("sequential")    # "sequential", then "sequential_1", ... as Keras 3

    # -- structure -------------------------------------------------------
    @property
    def layers(self):
        return list(self._layers)

    def _all_layers(self):
        return self._layers

    def add(self, layer):
        if isinstance(layer, KerasTensor):     # keras.Input(...) as the first "layer", as Keras 3 allows
            layer = layer._keras_history[0] if layer._keras_history else None
        if isinstance(layer, InputLayer):
            if self._layers:
                raise ValueError("Input must be the first layer of a Sequential model")
            self._input_shape = layer.shape
            self._input_layer = layer
            return
        if not isinstance(layer, Layer):
            raise TypeError(f"Sequential.add expects a Layer, got {type(layer).__name__}")
        if not self._defer_build and any(layer is l for l in self._layers):   # from_config's are all new
            raise ValueError(f"Layer {layer.name!r} is already in this model")
        if not self._layers and self._input_shape is None and layer._input_shape_arg is not None:
            self._input_shape = layer._input_shape_arg
        # names are numbered across the session (Keras 3), so only a name given twice can clash
        if not self._defer_build and any(l.name == layer.name for l in self._layers):   # from_config: a set
            raise ValueError(f"A layer named {layer.name!r} is already in the model; names must be unique")
        self._layers.append(layer)
        self._chain = None
        if self._input_shape is not None and not self._defer_build:
            self.build()

    def pop(self):
        if not self._layers:
            raise ValueError("There are no layers to pop")
        layer = self._layers.pop()
        self._chain = None
        self._layout = None
        if self._layers and self._input_shape is not None:
            self.build()
        return layer

    def build(self, input_shape=None):
        """Builds every layer for per-sample ``input_shape`` (or the declared one).

        Shapes are checked through the whole stack before any layer is built,
        so a shape that does not fit leaves the model as it was."""
        shape = self._input_shape
        if input_shape is not None:
            shape = tuple(input_shape)
            if shape and shape[0] is None:
                shape = shape[1:]
            shape = normalize_shape(shape, "input_shape")
        if shape is None:
            raise ValueError("The model's input shape is unknown; add an Input layer or pass input_shape")
        if not self._layers:
            raise ValueError("The model has no layers")
        out = shape
        for layer in self._layers:   # a dry run: checks every shape, builds nothing
            out = layer.build_for(out) if layer.built else tuple(layer.compute_output_shape(out))
            if several_outputs(out):
                raise ValueError(f"Layer {layer.name!r} has several outputs (return_state=True or merge_mode=None), "
                                 "which a Sequential model cannot pass on; use a functional model (keras.Model)")
        self._input_shape = shape
        if self._input_layer is None or self._input_layer.shape != shape:
            self._input_layer = InputLayer(shape=shape)     # "input_layer", numbered as Keras 3 does
        x = inputs = self._input_layer.output
        for layer in self._layers:
            x = layer(x)
        from .functional import walk      # a user's layer adds the nodes its traced call made
        self._chain = ([inputs], walk([inputs], [x]), [x])
        self._pack()

    @property
    def built(self):
        return self._chain is not None

    def _graph(self):
        if self._chain is None:
            if self._input_shape is None or not self._layers:
                raise ValueError(f"Model {self.name!r} is not built yet: add an Input layer, pass input_shape to "
                                 "the first layer, or call it on data first")
            self.build()
        return self._chain

    @property
    def output_names(self):
        return [self._layers[-1].name]

    @property
    def input_names(self):
        return [self._input_layer.name if self._input_layer is not None else "input_layer"]

    # -- config ----------------------------------------------------------
    def get_config(self):
        """Keras 3's Sequential config: name, trainable, dtype, the layers'
        records (an InputLayer first when the input shape is known) and
        ``build_input_shape`` once built."""
        records = []
        if self._input_shape is not None:
            if self._input_layer is None or self._input_layer.shape != self._input_shape:
                self._input_layer = InputLayer(shape=self._input_shape)
            records.append(layers_module.serialize(self._input_layer))
        records += [layers_module.serialize(l) for l in self._layers]
        config = {"name": self.name, "trainable": True, "dtype": copy.deepcopy(FLOAT32_POLICY), "layers": records}
        if self.built:
            config["build_input_shape"] = [None, *self._input_shape]
        return config

    @classmethod
    def from_config(cls, config):
        """The model ``get_config`` (fastnn's or Keras's) describes, built when
        the config gives the input shape. Layer classes are looked up in
        fastnn's registry only (``fastnn.layers.deserialize``)."""
        if not isinstance(config, dict) or not isinstance(config.get("layers"), list):
            raise ValueError("A Sequential config must be a dict with a 'layers' list")
        check_float32(config.get("dtype"), f"Model {config.get('name')!r}")
        model = cls(name=config.get("name"))
        model._defer_build = True
        for record in config["layers"]:
            model.add(layers_module.deserialize(record))
        del model._defer_build
        names = [layer.name for layer in model._layers]
        if len(set(names)) != len(names):
            duplicate = next(n for i, n in enumerate(names) if n in names[:i])
            raise ValueError(f"A layer named {duplicate!r} is already in the model; names must be unique")
        if model._input_shape is not None and model._layers:
            model.build()
        shape = config.get("build_input_shape")
        if not model.built and model._layers and isinstance(shape, list) and len(shape) >= 2:
            model.build(shape)
        if config.get("trainable") is False:
            for layer in model._layers:
                layer.trainable = False
        return model
