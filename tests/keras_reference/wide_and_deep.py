"""Hands-On ML 3rd ed., chapter 10's subclassed wide & deep model (two outputs), defined once.

The reference script builds it on real Keras and fastnn's tests on fastnn, so
both run the very same ``__init__`` and ``call``. This module imports neither:
the Keras venv and fastnn's test run can both import it.
"""


def wide_and_deep_model_class(keras):
    """``WideAndDeepModel(units=30, activation="relu", **kwargs)`` built on ``keras``
    (the ``keras`` module, or ``fastnn`` imported as keras).

    ``call((input_wide, input_deep))`` returns ``(output, aux_output)``, each of
    shape (batch, 1): the main head reads both inputs, the auxiliary head the
    deep path only.
    """
    L = keras.layers

    class WideAndDeepModel(keras.Model):
        def __init__(self, units=30, activation="relu", **kwargs):
            super().__init__(**kwargs)
            self.norm_layer_wide = L.Normalization()
            self.norm_layer_deep = L.Normalization()
            self.hidden1 = L.Dense(units, activation=activation)
            self.hidden2 = L.Dense(units, activation=activation)
            self.main_output = L.Dense(1)
            self.aux_output = L.Dense(1)

        def call(self, inputs):
            input_wide, input_deep = inputs
            norm_wide = self.norm_layer_wide(input_wide)
            norm_deep = self.norm_layer_deep(input_deep)
            hidden1 = self.hidden1(norm_deep)
            hidden2 = self.hidden2(hidden1)
            concat = L.concatenate([norm_wide, hidden2])
            output = self.main_output(concat)
            aux_output = self.aux_output(hidden2)
            return output, aux_output

    return WideAndDeepModel
