"""Back-propagated gradients against central finite differences.

``loss_and_gradients(model, x, y)`` returns the mean loss of one batch and
its gradient in the layout of ``model._params``; here each trainable entry
(a systematic sample of them in the widest model) is checked against
(L(w + h) - L(w - h)) / 2h computed with the same float32 forward pass.

Step and tolerance. Inputs lie in [-1, 1] and weights are Glorot-sized, so
the losses are O(1) (below 4 here) and so are their third derivatives. With
h = 1e-2 the difference quotient has
- truncation error h^2 / 6 * |L'''| = about 2e-5, and
- round-off error about dL / h, where dL = 3e-7 * L is a few float32 ulps
  of the loss (a float64 mean of float32 per-sample values): about 3e-5 * L.
The test requires max |g - fd| <= 1e-3 * max |fd|. Over the cases below
max |fd| lies between 0.045 and 3.2 and the worst error measured is 7e-5 of
it, 15 times inside the bound. A wrong derivative fails by far more: making
ELU's negative-side derivative 1% too large fails three of these cases.

Kinks (ReLU, leaky ReLU and SELU at 0, MAE at prediction == target,
clipping in the probability cross-entropies) are kept at least ``MARGIN``
away from every value the perturbations can reach, by construction.
"""
import numpy as np
import pytest

import fastnn as keras
from fastnn.kernels import program as P

from _util import STEP, assert_gradient_matches, compiled

MARGIN = 0.1

ACTIVATIONS = ["linear", "relu", "sigmoid", "softmax", "tanh", "elu", "selu", "gelu", "swish", "leaky_relu",
               "softplus", "exponential"]

N_SAMPLES, N_FEATURES, N_HIDDEN, N_OUT = 5, 4, 6, 3


def _inputs(rows=N_SAMPLES, cols=N_FEATURES, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (rows, cols)).astype(np.float32)


def _regression_targets(rows=N_SAMPLES, cols=N_OUT, seed=2):
    return np.random.default_rng(seed).normal(0, 1, (rows, cols)).astype(np.float32)


LABELS = np.array([0, 2, 1, 2, 0])
ONE_HOT = np.eye(N_OUT, dtype=np.float32)[LABELS]
MULTI_LABEL = np.array([[1, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0], [1, 0, 0]], dtype=np.float32)


def _dense_prefix_output(layers, x):
    """NumPy float64 forward through Dense layers ``layers`` (their written-out formula)."""
    a = x.astype(np.float64)
    for layer in layers:
        kernel, bias = layer.get_weights()
        a = np.asarray(layer.activation(a @ kernel + bias), dtype=np.float64)
    return a


def _keep_away_from_zero(dense, inputs):
    """Sets ``dense``'s bias so every pre-activation inputs @ kernel + bias is at least
    MARGIN from 0 (where ReLU, leaky ReLU and SELU have kinks)."""
    kernel, bias = dense.get_weights()
    z = inputs @ kernel
    for j in range(z.shape[1]):
        candidates = sorted([0.0] + [c for v in z[:, j] for c in (-v - 2 * MARGIN, -v + 2 * MARGIN)], key=abs)
        bias[j] = next(c for c in candidates if np.all(np.abs(z[:, j] + c) >= 1.5 * MARGIN))
    dense.set_weights([kernel, bias])
    z32 = inputs.astype(np.float32) @ kernel + dense.get_weights()[1]
    assert np.abs(z32).min() >= MARGIN


def _assert_steps_stay_clear_of_kinks(x, second):
    """For a tanh layer followed by ``second`` (kinked): a step h on one weight or bias
    of the first layer moves one tanh output by at most h * max(1, max|x|) (tanh' <= 1),
    hence ``second``'s pre-activations by at most that times max|kernel|; a step on
    ``second``'s own weights moves them by at most h * max(1, max|tanh|) = h."""
    kernel = second.get_weights()[0]
    reach = STEP * max(1.0, np.abs(x).max()) * max(1.0, np.abs(kernel).max())
    assert reach < MARGIN / 2


# -- activations -------------------------------------------------------------

@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_inside_dense(activation):
    model = compiled([keras.layers.Dense(N_HIDDEN, activation=activation, input_shape=(N_FEATURES,)),
                      keras.layers.Dense(N_OUT)], loss="mse")
    x = _inputs()
    # Perturbing a first-layer weight by h moves a pre-activation by at most h * max|x| = 0.01 < MARGIN.
    _keep_away_from_zero(model.layers[0], x)
    assert_gradient_matches(model, x, _regression_targets())


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_activation_layer(activation):
    model = compiled([keras.layers.Dense(N_HIDDEN, input_shape=(N_FEATURES,)),
                      keras.layers.Activation(activation),
                      keras.layers.Dense(N_OUT)], loss="mse")
    x = _inputs()
    _keep_away_from_zero(model.layers[0], x)
    assert_gradient_matches(model, x, _regression_targets())


def test_stacked_activation_layers():
    """Activation layers in a row, each reading the previous one's output slot,
    the last a softmax fused into the loss on top of a tanh Dense."""
    model = compiled([keras.layers.Dense(N_HIDDEN, input_shape=(N_FEATURES,)),
                      keras.layers.Activation("tanh"), keras.layers.Activation("sigmoid"),
                      keras.layers.Activation("linear"),
                      keras.layers.Dense(N_OUT, activation="tanh"), keras.layers.Activation("softmax")],
                     loss="sparse_categorical_crossentropy")
    assert model._program_for_training().prog[-1][P.FLAGS] & P.LOSS_FUSED
    assert_gradient_matches(model, _inputs(), LABELS)


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "selu", "elu"])
def test_kinked_activation_in_a_deeper_layer(activation):
    """The kink sits in the second Dense layer, so first-layer perturbations reach it too."""
    model = compiled([keras.layers.Dense(N_HIDDEN, activation="tanh", input_shape=(N_FEATURES,)),
                      keras.layers.Dense(5, activation=activation),
                      keras.layers.Dense(N_OUT)], loss="mse")
    x = _inputs()
    hidden = _dense_prefix_output(model.layers[:1], x)
    _keep_away_from_zero(model.layers[1], hidden)
    _assert_steps_stay_clear_of_kinks(x, model.layers[1])
    assert_gradient_matches(model, x, _regression_targets())


def test_wide_layers_split_across_threads():
    """Layers wide enough for the kernels to split their columns and rows into
    several blocks (blocks are multiples of 16), each handled by its own thread."""
    x = _inputs(rows=7, cols=36, seed=3)
    model = compiled([keras.layers.Dense(40, activation="tanh", input_shape=(36,)),
                      keras.layers.Dense(33, activation="relu"),
                      keras.layers.Dense(N_OUT, activation="softmax")],
                     loss="sparse_categorical_crossentropy")
    hidden = _dense_prefix_output(model.layers[:1], x)
    _keep_away_from_zero(model.layers[1], hidden)
    _assert_steps_stay_clear_of_kinks(x, model.layers[1])
    # Every 7th of the 2,935 entries (7 is prime to the row lengths 40, 33 and 3, so
    # every column of every kernel is sampled) and every bias entry.
    params = model._params
    biases = [(layer.bias.value.ctypes.data - params.ctypes.data) // 4 + np.arange(layer.units)
              for layer in model.layers]
    indices = np.unique(np.concatenate([np.arange(0, model._n_trainable, 7), *biases]))
    assert_gradient_matches(model, x, np.array([0, 1, 2, 1, 0, 2, 2]), indices)


# -- losses ------------------------------------------------------------------

def _mae_targets(model, x):
    """Targets at least 0.5 from the predictions: |pred - y| never crosses 0 under a step."""
    pred = model.predict(x, verbose=0)
    offset = np.random.default_rng(4).uniform(0.5, 1.0, pred.shape) * np.where(
        np.random.default_rng(5).random(pred.shape) < 0.5, -1.0, 1.0)
    return (pred + offset).astype(np.float32)


def _soft_targets():
    """Non-negative targets whose rows do not sum to 1 (Keras takes them as weights)."""
    return np.random.default_rng(6).uniform(0.0, 1.0, (N_SAMPLES, N_OUT)).astype(np.float32)


L = keras.losses
# (id, output layers after the hidden Dense, loss, targets, fused softmax/sigmoid + cross-entropy?)
LOSS_CASES = [
    ("mse", lambda: [keras.layers.Dense(N_OUT)], "mse", _regression_targets(), False),
    ("mse_on_sigmoid", lambda: [keras.layers.Dense(N_OUT, activation="sigmoid")], L.MeanSquaredError(),
     _regression_targets(), False),
    ("mae", lambda: [keras.layers.Dense(N_OUT)], "mae", None, False),
    ("cce_logits", lambda: [keras.layers.Dense(N_OUT)], L.CategoricalCrossentropy(from_logits=True), ONE_HOT,
     False),
    ("cce_logits_soft_targets", lambda: [keras.layers.Dense(N_OUT)],
     L.CategoricalCrossentropy(from_logits=True), _soft_targets(), False),
    ("cce_fused_softmax", lambda: [keras.layers.Dense(N_OUT, activation="softmax")], "categorical_crossentropy",
     ONE_HOT, True),
    ("cce_fused_softmax_layer", lambda: [keras.layers.Dense(N_OUT), keras.layers.Activation("softmax")],
     L.CategoricalCrossentropy(), ONE_HOT, True),
    # sigmoid outputs do not sum to 1: exercises Keras's renormalisation of probabilities
    ("cce_probabilities", lambda: [keras.layers.Dense(N_OUT, activation="sigmoid")],
     L.CategoricalCrossentropy(from_logits=False), _soft_targets(), False),
    # a layer after the softmax makes the loss read probabilities (Activation("linear") would not:
    # it passes the softmax's output through, and Keras fuses through it too)
    ("cce_softmax_then_rescaling", lambda: [keras.layers.Dense(N_OUT, activation="softmax"),
                                            keras.layers.Rescaling(1.0)], "categorical_crossentropy", ONE_HOT,
     False),
    ("scce_logits", lambda: [keras.layers.Dense(N_OUT)], L.SparseCategoricalCrossentropy(from_logits=True),
     LABELS, False),
    ("scce_fused_softmax", lambda: [keras.layers.Dense(N_OUT, activation="softmax")],
     "sparse_categorical_crossentropy", LABELS, True),
    ("scce_fused_softmax_layer", lambda: [keras.layers.Dense(N_OUT), keras.layers.Activation("softmax")],
     L.SparseCategoricalCrossentropy(), LABELS, True),
    ("scce_probabilities", lambda: [keras.layers.Dense(N_OUT, activation="sigmoid")],
     L.SparseCategoricalCrossentropy(from_logits=False), LABELS, False),
    ("bce_logits", lambda: [keras.layers.Dense(N_OUT)], L.BinaryCrossentropy(from_logits=True), MULTI_LABEL,
     False),
    ("bce_fused_sigmoid", lambda: [keras.layers.Dense(N_OUT, activation="sigmoid")], "binary_crossentropy",
     MULTI_LABEL, True),
    ("bce_fused_sigmoid_layer", lambda: [keras.layers.Dense(N_OUT), keras.layers.Activation("sigmoid")],
     L.BinaryCrossentropy(), MULTI_LABEL, True),
    ("bce_one_unit_sigmoid", lambda: [keras.layers.Dense(1, activation="sigmoid")], "binary_crossentropy",
     np.array([0, 1, 1, 0, 1], dtype=np.float32), True),
    # softmax outputs are probabilities in (0, 1) but not a sigmoid: the unfused path
    ("bce_probabilities", lambda: [keras.layers.Dense(N_OUT, activation="softmax")],
     L.BinaryCrossentropy(from_logits=False), MULTI_LABEL, False),
    ("bce_soft_targets", lambda: [keras.layers.Dense(N_OUT, activation="sigmoid")], "binary_crossentropy",
     _soft_targets(), True),
]


@pytest.mark.parametrize("case", LOSS_CASES, ids=[c[0] for c in LOSS_CASES])
def test_loss_gradient(case):
    _, head, loss, y, fused = case
    model = compiled([keras.layers.Dense(N_HIDDEN, activation="tanh", input_shape=(N_FEATURES,)), *head()],
                     loss=loss)
    x = _inputs()
    # The test is about the path named in its id: check the program takes it.
    last = model._program_for_training().prog[-1]
    assert bool(last[P.FLAGS] & P.LOSS_FUSED) == fused
    if y is None:
        y = _mae_targets(model, x)
    else:
        # Probabilities stay far from the clipping bounds 1e-7 and 1 - 1e-7.
        out = model.predict(x, verbose=0)
        if not model.loss.from_logits and model.loss.code in (P.CCE, P.SCCE, P.BCE):
            assert out.min() > 1e-3 and out.max() < 1 - 1e-3
    assert_gradient_matches(model, x, y)


# -- preprocessing layers and bias-free Dense ----------------------------------------

def _normalization(features, seed=7):
    layer = keras.layers.Normalization()
    layer.adapt(np.random.default_rng(seed).normal(0.3, 0.7, (64, features)))
    return layer


def test_rescaling_and_normalization_in_the_middle():
    model = compiled(lambda: [keras.layers.Dense(N_HIDDEN, activation="tanh", input_shape=(N_FEATURES,)),
                              keras.layers.Rescaling(2.0, offset=-0.5),
                              _normalization(N_HIDDEN),
                              keras.layers.Dense(N_OUT, activation="softmax")],
                     loss="sparse_categorical_crossentropy")
    # The Normalization statistics are weights of the model but not trainable.
    assert model._n_trainable == N_FEATURES * N_HIDDEN + N_HIDDEN + N_HIDDEN * N_OUT + N_OUT
    assert_gradient_matches(model, _inputs(), LABELS)


def test_normalization_and_rescaling_first():
    """The regression recipe: Normalization before any trainable layer."""
    model = compiled(lambda: [keras.layers.Rescaling(0.5, input_shape=(N_FEATURES,)),
                              _normalization(N_FEATURES),
                              keras.layers.Dense(N_HIDDEN, activation="tanh"),
                              keras.layers.Dense(1)], loss="mse")
    assert_gradient_matches(model, _inputs(), _regression_targets(cols=1))


def test_dense_without_bias():
    model = compiled([keras.layers.Dense(N_HIDDEN, activation="tanh", use_bias=False, input_shape=(N_FEATURES,)),
                      keras.layers.Dense(N_OUT, activation="softmax", use_bias=False)],
                     loss="categorical_crossentropy")
    assert model._n_trainable == N_FEATURES * N_HIDDEN + N_HIDDEN * N_OUT
    assert_gradient_matches(model, _inputs(), ONE_HOT)


def test_frozen_layer_passes_the_gradient_on():
    """A non-trainable Dense in the middle: its weights are not in the trainable
    prefix, and the layers before it still get the right gradient through it."""
    model = compiled([keras.layers.Dense(N_HIDDEN, activation="tanh", input_shape=(N_FEATURES,)),
                      keras.layers.Dense(5, activation="tanh", trainable=False),
                      keras.layers.Dense(N_OUT)], loss="mse")
    assert model._n_trainable == N_FEATURES * N_HIDDEN + N_HIDDEN + 5 * N_OUT + N_OUT
    assert_gradient_matches(model, _inputs(), _regression_targets())
