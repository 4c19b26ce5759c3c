"""Metrics written the Keras 3 way: Metric subclasses with state written with keras.ops, Mean, function forms."""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn import ops

from test_custom_layers import Linear

REF = Path(__file__).parent / "keras_reference"
ARRAYS = np.load(REF / "ops_reference.npz")
INFO = json.loads((REF / "ops_reference.json").read_text())
L = keras.layers


class CategoricalTruePositives(keras.metrics.Metric):
    """The Keras guide's metric (make_ops_reference.py's ctp_copy: result() a new value)."""

    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = keras.ops.reshape(keras.ops.argmax(y_pred, axis=1), (-1, 1))
        values = keras.ops.cast(y_true, "int32") == keras.ops.cast(y_pred, "int32")
        self.true_positives.assign_add(keras.ops.sum(keras.ops.cast(values, "float32")))

    def result(self):
        return keras.ops.add(self.true_positives, 0.0)


def test_stateful_metric_updates_per_batch_as_keras():
    """The metric compares every row of a batch with every other: only per-batch updates give Keras's counts."""
    x, labels = ARRAYS["data/x"], ARRAYS["ctp/y"]
    model = keras.Sequential([L.Input((6,)), Linear(3), L.Activation("softmax")])
    model.set_weights([ARRAYS["ctp/init/0"], ARRAYS["ctp/init/1"]])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                  metrics=[CategoricalTruePositives()])
    hist = model.fit(x[:64], labels[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[64:], labels[64:]))
    ref = INFO["ctp_copy"]
    for key, values in ref["history"].items():
        np.testing.assert_allclose(hist.history[key], values, rtol=1e-5)
    got = model.evaluate(x[64:], labels[64:], verbose=0, return_dict=True)
    assert got["categorical_true_positives"] == ref["evaluate_dict"]["categorical_true_positives"]
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, ARRAYS[f"ctp_copy/final/{i}"], rtol=1e-5, atol=1e-6)


def test_function_forms_and_mean():
    a = ARRAYS["in/a"]
    got = keras.metrics.sparse_categorical_accuracy(np.array([0, 1]), ops.softmax(a))
    np.testing.assert_array_equal(got, ARRAYS["ops/keras_metrics_sparse_cat_acc"])
    assert got.dtype == np.float32
    y = np.array([[0.0, 1.0], [1.0, 0.0]])
    p = np.array([[0.2, 0.8], [0.3, 0.7]])
    np.testing.assert_array_equal(keras.metrics.categorical_accuracy(y, p), [1.0, 0.0])
    np.testing.assert_allclose(keras.metrics.binary_accuracy(y, p), [1.0, 0.0])
    np.testing.assert_allclose(keras.metrics.mean_squared_error(y, p), [0.04, 0.49], rtol=1e-6)
    mean = keras.metrics.Mean()
    mean.update_state([1.0, 2.0, 3.0])
    mean.update_state([4.0], sample_weight=[2.0])
    assert mean.result() == pytest.approx((1 + 2 + 3 + 8) / 5)
    mean.reset_state()
    assert mean.result() == 0.0


def test_function_form_in_compile_runs_compiled_under_its_name():
    metric = keras.metrics.get(keras.metrics.sparse_categorical_accuracy)
    assert metric.code is not None and metric.name == "sparse_categorical_accuracy"
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = keras.Sequential([L.Input((4,)), L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", metrics=[keras.metrics.sparse_categorical_accuracy])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    expected = np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)
    assert logs["sparse_categorical_accuracy"] == pytest.approx(expected)
