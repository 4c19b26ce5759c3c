"""Embedding: token ids to dense vectors (maths in ``kernels/kinds/embedding.py``)."""
import numpy as np

from .. import initializers, regularizers
from ..kernels.kinds import embedding as E
from .base import Layer, Op


class Embedding(Layer):
    """Keras 3's Embedding: an input of token ids, shape ``(...)`` per sample
    (any numeric dtype; the ids must be whole numbers in ``[0, input_dim)``,
    checked before training or prediction runs), gives ``(..., output_dim)``:
    row ``id`` of ``embeddings`` (input_dim, output_dim), initialized
    uniform in [-0.05, 0.05] as Keras does.

    ``mask_zero=True``: id 0 is padding. The recurrent layers and
    GlobalAveragePooling1D downstream skip those steps, as Keras's mask does
    (``input_dim`` must then leave room for id 0, as in Keras)."""
    keras_fixed = {"embeddings_constraint": None, "quantization_config": None, "lora_rank": None,
                   "lora_alpha": None, "sparse": False}

    def __init__(self, input_dim, output_dim, embeddings_initializer="uniform", embeddings_regularizer=None,
                 embeddings_constraint=None, mask_zero=False, weights=None, lora_rank=None, activity_regularizer=None,
                 **kwargs):
        input_length = kwargs.pop("input_length", None)    # Keras 2's argument: the input shape
        if input_length is not None and kwargs.get("input_shape") is None:
            kwargs["input_shape"] = (input_length,)
        super().__init__(**kwargs)
        for name, value in (("input_dim", input_dim), ("output_dim", output_dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"Embedding {name} must be a positive integer, got {value!r}")
        if embeddings_constraint is not None:
            raise ValueError("Embedding embeddings_constraint is not supported")
        if lora_rank is not None:
            raise ValueError("Embedding lora_rank is not supported")
        if activity_regularizer is not None:
            raise ValueError("Embedding activity_regularizer is not supported")
        self.input_dim, self.output_dim = int(input_dim), int(output_dim)
        self.embeddings_initializer = initializers.get(
            "random_uniform" if embeddings_initializer == "uniform" else embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.mask_zero = bool(mask_zero)
        self._initial_weights = weights
        self.embeddings = None

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, list):
            raise ValueError(f"Embedding {self.name!r} takes one input, got {len(input_shape)}")
        return (*input_shape, self.output_dim)

    def build(self, input_shape):
        self.embeddings = self.add_weight("embeddings", (self.input_dim, self.output_dim),
                                          self.embeddings_initializer, regularizer=self.embeddings_regularizer)
        if self._initial_weights is not None:
            self.set_weights(self._initial_weights)
            self._initial_weights = None

    def output_mask(self, inputs, mask):
        """With mask_zero, Keras's ``compute_mask``: the op ``keras.ops.not_equal(ids, 0)``, a node of
        the graph (Keras saves it as a ``NotEqual`` operation); else no mask."""
        if not self.mask_zero:
            return None
        from .. import ops
        return ops.not_equal(inputs[0], 0)

    def input_ids_limit(self):
        """Ids read from a model input must be whole numbers below this (``models.program``)."""
        return self.input_dim

    def op(self, input_shape):
        return Op(E.EMBEDDING, w=self.embeddings, ints=(self.input_dim, self.output_dim))

    def get_config(self):
        return {**super().get_config(), "input_dim": self.input_dim, "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": None, "embeddings_constraint": None, "mask_zero": self.mask_zero,
                "quantization_config": None}
