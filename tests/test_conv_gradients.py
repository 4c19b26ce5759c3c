"""Back-propagated gradients of the convolutional kinds against central finite differences.

Each model puts the op under test between trainable layers, so the check
covers its weight gradients and the gradient it passes to its input (the
op before it trains): strides, paddings (valid / same / causal), dilations,
odd map sizes, 1x1 convolutions (which read their input in place), depth
multipliers, several activations (computed in place or from a kept z), a
layer called twice, a map read by two ops, a frozen layer. Batches of 5
samples run in 2 parts on 2 threads (uneven); ``test_uneven_batches_*``
checks that fit's partial last batch trains as the full ones do.

Step, tolerance and their error analysis: ``test_gradients`` (same helper).
Smooth activations only (tanh, sigmoid, elu, softmax, linear) except where
a test keeps ReLU's kink out of reach; max pooling's choice in each window
is kept by the data (its gaps exceed what a step can move).
"""
import numba
import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients

from _util import assert_gradient_matches, compiled

L = keras.layers
N = 5


def _x(shape, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (N, *shape)).astype(np.float32)


def _y(cols=2, seed=2):
    return np.random.default_rng(seed).normal(0, 1, (N, cols)).astype(np.float32)


def _head():
    return [L.Flatten(), L.Dense(2)]


CASES = {
    "conv2d_valid_tanh": ((7, 6, 2), lambda: [L.Conv2D(3, 3, activation="tanh")]),
    "conv2d_same_s2_odd_sigmoid": ((7, 7, 2), lambda: [L.Conv2D(3, 3, strides=2, padding="same",
                                                                activation="sigmoid")]),
    "conv2d_same_s2_even": ((8, 6, 2), lambda: [L.Conv2D(3, 3, strides=2, padding="same", activation="tanh")]),
    "conv2d_dilation2_same_linear": ((7, 8, 2), lambda: [L.Conv2D(3, 3, dilation_rate=2, padding="same")]),
    "conv2d_dilation_2x1_valid": ((8, 6, 2), lambda: [L.Conv2D(2, 3, dilation_rate=(2, 1), activation="elu")]),
    "conv2d_k2x3_s2x1_nobias": ((7, 6, 3), lambda: [L.Conv2D(3, (2, 3), strides=(2, 1), use_bias=False,
                                                             activation="tanh")]),
    "conv2d_k4_same_even_kernel": ((6, 5, 2), lambda: [L.Conv2D(2, 4, padding="same", activation="tanh")]),
    "conv2d_channel_softmax": ((5, 4, 2), lambda: [L.Conv2D(3, 3, padding="same", activation="softmax")]),
    # a first conv whose input gradient the second (3x3) and a 1x1 conv (read in place) pass back
    "conv2d_stack_with_1x1": ((6, 5, 2), lambda: [L.Conv2D(3, 3, padding="same", activation="tanh"),
                                                  L.Conv2D(4, 1, activation="tanh"),
                                                  L.Conv2D(2, 3, strides=2, activation="tanh")]),
    "conv1d_causal_dilation2": ((9, 2), lambda: [L.Conv1D(3, 3, dilation_rate=2, padding="causal",
                                                          activation="tanh"),
                                                 L.Conv1D(2, 2, activation="tanh")]),
    "conv1d_same_s2": ((9, 3), lambda: [L.Conv1D(3, 3, padding="same", activation="tanh"),
                                        L.Conv1D(2, 3, strides=2, padding="same")]),
    "depthwise_same": ((6, 7, 2), lambda: [L.Conv2D(3, 1, activation="tanh"),
                                           L.DepthwiseConv2D(3, padding="same", activation="tanh")]),
    "depthwise_s2_valid_dm2": ((7, 8, 2), lambda: [L.Conv2D(3, 1, activation="tanh"),
                                                   L.DepthwiseConv2D(3, strides=2, depth_multiplier=2,
                                                                     use_bias=False)]),
    "depthwise_dilated_sigmoid": ((7, 7, 2), lambda: [L.Conv2D(2, 1, activation="tanh"),
                                                      L.DepthwiseConv2D(2, dilation_rate=2, padding="same",
                                                                        activation="sigmoid")]),
    "separable_same": ((6, 7, 2), lambda: [L.Conv2D(3, 1, activation="tanh"),
                                           L.SeparableConv2D(4, 3, padding="same", activation="tanh")]),
    "separable_s2_valid_dm2_linear": ((7, 8, 2), lambda: [L.Conv2D(2, 1, activation="tanh"),
                                                          L.SeparableConv2D(3, 3, strides=2, depth_multiplier=2)]),
    "avgpool2d_valid_odd": ((7, 7, 2), lambda: [L.Conv2D(3, 2, activation="tanh"), L.AveragePooling2D(2)]),
    "avgpool2d_3_s2_same": ((7, 8, 2), lambda: [L.Conv2D(3, 1, activation="tanh"),
                                                L.AveragePooling2D(3, strides=2, padding="same")]),
    "avgpool2d_2x3_s1x2": ((6, 7, 2), lambda: [L.Conv2D(2, 1, activation="tanh"),
                                               L.AveragePooling2D((2, 3), strides=(1, 2))]),
    "avgpool1d_same": ((8, 2), lambda: [L.Conv1D(3, 2, padding="same", activation="tanh"),
                                        L.AveragePooling1D(3, strides=2, padding="same")]),
    "global_average_pooling": ((5, 6, 2), lambda: [L.Conv2D(3, 3, activation="tanh"),
                                                   L.GlobalAveragePooling2D()]),
    "zero_padding_and_cropping": ((5, 4, 2), lambda: [L.Conv2D(3, 2, activation="tanh"),
                                                      L.ZeroPadding2D(((1, 2), (0, 1))),
                                                      L.Conv2D(2, 3, activation="tanh"),
                                                      L.Cropping2D(((1, 0), (0, 1)))]),
    "upsampling": ((3, 4, 2), lambda: [L.Conv2D(2, 2, activation="tanh"), L.UpSampling2D((2, 3)),
                                       L.Conv2D(2, 3, activation="tanh")]),
    "spatial_dropout_at_inference": ((4, 4, 2), lambda: [L.Conv2D(3, 2, activation="tanh"),
                                                         L.SpatialDropout2D(0.5)]),
    "batchnorm_and_dense_on_maps": ((5, 4, 2), lambda: [L.Conv2D(3, 2, activation="tanh"),
                                                        L.BatchNormalization(), L.Dense(4, activation="tanh"),
                                                        L.Reshape((4, 12)), L.Conv1D(2, 3)]),
}


@pytest.fixture(params=["pixels", "taps"])
def conv_path(request, monkeypatch):
    """Runs a test with every Conv gathering col(X) pixel by pixel, then tap by tap."""
    from fastnn.kernels.kinds import conv
    monkeypatch.setattr(conv, "TAPS_BELOW_C", 0 if request.param == "pixels" else 10 ** 9)
    return request.param


@pytest.mark.parametrize("case", sorted(CASES))
def test_gradient(case, conv_path):
    shape, layers = CASES[case]
    model = compiled(lambda: [L.Input(shape=shape), *layers(), *_head()], loss="mse")
    assert_gradient_matches(model, _x(shape), _y())


def _separated(values, gap):
    """Whether the largest value is ahead of the next by more than ``gap``."""
    top = np.sort(values.reshape(-1))[::-1]
    return len(top) == 1 or top[0] - top[1] > gap


@pytest.mark.parametrize("pool, shape", [(lambda: L.MaxPooling2D(2), (6, 7, 2)),
                                         (lambda: L.MaxPooling2D(3, strides=2, padding="same"), (7, 8, 2)),
                                         (lambda: L.MaxPooling1D(3, strides=2, padding="same"), (9, 2)),
                                         (lambda: L.GlobalMaxPooling2D(), (4, 5, 2))],
                         ids=["max2d_2", "max2d_3_s2_same", "max1d_3_s2_same", "global_max"])
def test_max_pooling_gradient(pool, shape):
    """Max pooling directly on the input, after a per-channel 1x1 conv whose
    weights scale whole maps: the winner of each window is the winner in the
    input (for positive scales), and the input's windows are separated."""
    layer = pool()
    rank = len(shape) - 1
    model = compiled(lambda: [L.Input(shape=shape),
                              (L.Conv2D if rank == 2 else L.Conv1D)(shape[-1], 1, activation="tanh"), layer,
                              *_head()], loss="mse")
    conv = model.layers[0]
    kernel = np.eye(shape[-1], dtype=np.float32).reshape(conv.kernel.shape) * 0.9
    conv.set_weights([kernel, np.zeros(shape[-1], np.float32)])
    # inputs spaced 0.05 apart within each channel, shuffled: every window has a clear winner
    rng = np.random.default_rng(5)
    x = np.stack([rng.permutation(np.prod(shape)).reshape(shape) for _ in range(N)]).astype(np.float32)
    x = x / np.prod(shape) * 2 - 1
    assert_gradient_matches(model, x, _y())


def test_relu_conv_kink_out_of_reach():
    """ReLU computed in place (its derivative read from the output): biases keep
    every pre-activation at least 0.05 from 0; a step of 1e-2 on a weight or bias moves
    them by at most 1e-2 (inputs in [-1, 1])."""
    shape = (5, 5, 1)
    model = compiled(lambda: [L.Input(shape=shape), L.Conv2D(3, 3, activation="relu"), L.Flatten(), L.Dense(2)],
                     loss="mse")
    x = _x(shape)
    conv = model.layers[0]
    kernel = np.random.default_rng(4).uniform(-0.3, 0.3, (3, 3, 1, 3)).astype(np.float32)
    linear = L.Conv2D(3, 3)
    linear.build_for(shape)
    linear.set_weights([kernel, np.zeros(3, np.float32)])
    pre = linear(x)
    bias = []
    for c in range(3):
        v = pre[..., c]
        bias.append(next(b for b in np.linspace(-2, 2, 401) if np.abs(v + b).min() > 0.05 and (v + b > 0).any()
                         and (v + b < 0).any()))
    conv.set_weights([kernel, np.array(bias, np.float32)])
    assert_gradient_matches(model, x, _y())


def test_shared_conv_and_a_map_read_twice(conv_path):
    """One Conv2D called on two inputs (its weight gradients add up) and a map
    read by a pooling op and a conv (its input gradients add up)."""
    keras.utils.set_random_seed(0)
    a, b = keras.Input(shape=(6, 5, 2)), keras.Input(shape=(6, 5, 2))
    shared = L.Conv2D(3, 3, padding="same", activation="tanh")
    ha, hb = shared(a), shared(b)
    pooled = L.AveragePooling2D(2)(ha)
    conv = L.Conv2D(3, 2, strides=2, activation="tanh")(ha)
    merged = L.Add()([pooled, conv, L.AveragePooling2D(2)(hb)])
    out = L.Dense(2)(L.Flatten()(merged))
    model = keras.Model([a, b], out)
    model.compile(loss="mse", optimizer="sgd")
    xa, xb = _x((6, 5, 2), seed=7), _x((6, 5, 2), seed=8)
    assert_gradient_matches(model, [xa, xb], _y())


def test_frozen_conv_passes_the_gradient_on(conv_path):
    model = compiled(lambda: [L.Input(shape=(6, 6, 2)), L.Conv2D(3, 3, activation="tanh"),
                              L.Conv2D(3, 3, activation="tanh", trainable=False), L.Flatten(), L.Dense(2)],
                     loss="mse")
    assert model._n_trainable == 3 * 3 * 2 * 3 + 3 + 2 * 2 * 3 * 2 + 2
    assert_gradient_matches(model, _x((6, 6, 2)), _y())


@pytest.mark.parametrize("threads", [1, 2])
def test_uneven_batches_train_as_single_steps(threads, conv_path):
    """fit over 7 samples in batches of 3 (3, 3, 1) ends on the weights of
    three SGD steps taken by hand on the same batches; on 1 or 2 threads."""
    def model():
        return compiled(lambda: [L.Input(shape=(6, 5, 2)), L.Conv2D(3, 3, padding="same", activation="tanh"),
                                 L.MaxPooling2D(2), L.DepthwiseConv2D(2, padding="same", activation="tanh"),
                                 L.Flatten(), L.Dense(2)], loss="mse", optimizer=keras.optimizers.SGD(0.1))
    x = np.random.default_rng(1).uniform(-1, 1, (7, 6, 5, 2)).astype(np.float32)
    y = np.random.default_rng(2).normal(0, 1, (7, 2)).astype(np.float32)
    previous = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        fitted = model()
        fitted.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
        manual = model()
        for lo in (0, 3, 6):
            _, g = loss_and_gradients(manual, x[lo:lo + 3], y[lo:lo + 3])
            manual._params[:manual._n_trainable] -= np.float32(0.1) * g[:manual._n_trainable]
    finally:
        numba.set_num_threads(previous)
    np.testing.assert_allclose(fitted._params, manual._params, rtol=1e-5, atol=1e-6)


def test_predictions_do_not_depend_on_the_batch_size(conv_path):
    """Inference in batches of 1, 3 and 7 rows (parts with no samples, uneven parts) gives the same outputs."""
    model = compiled(lambda: [L.Input(shape=(7, 6, 2)), L.Conv2D(4, 3, padding="same", activation="relu"),
                              L.MaxPooling2D(2), L.SeparableConv2D(3, 2, activation="tanh"),
                              L.GlobalAveragePooling2D(), L.Dense(3, activation="softmax")],
                     loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(3).uniform(-1, 1, (7, 7, 6, 2)).astype(np.float32)
    ref = model.predict(x, batch_size=7, verbose=0)
    for batch in (1, 3):
        np.testing.assert_allclose(model.predict(x, batch_size=batch, verbose=0), ref, rtol=1e-6, atol=1e-7)
