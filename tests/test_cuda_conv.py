"""Convolution, pooling and reshaping layers on the CUDA device, against the CPU kinds.

Each op's forward pass (``predict``) and gradient (``loss_and_gradients``: every weight's, so
also those of a layer before the op, which its input gradient feeds) on the device must equal
the CPU's within float32 round-off, over strides, paddings, dilations, odd sizes and ties in
max pooling; and a small CNN of the tutorials' shape, and models of DepthwiseConv2D and
SeparableConv2D, must train to the CPU's weights.

Device tests run on a GPU when there is one, and under Numba's CUDA simulator in the
subprocess that ``test_cuda.py`` starts (see its docstring): shapes are tiny, since the
simulator runs one Python thread per GPU thread.
"""
import sys

import numpy as np
import pytest

import fastnn as keras
from numba.core import config as numba_config

SIMULATOR = bool(numba_config.ENABLE_CUDASIM)
if SIMULATOR:
    sys.setswitchinterval(5e-4)     # see test_cuda.py: the simulator's threads wait less for the GIL
    pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
                  pytest.mark.filterwarnings("ignore:The keyword argument 'nopython=False'")]
# Needs numba.cuda; without it conftest.py deselects these (test_cuda.py's simulator subprocess runs them).
device = pytest.mark.cuda_device
RNG = np.random.default_rng(23)
L = keras.layers


def _f32(*shape, lo=-1.0, hi=1.0):
    return RNG.uniform(lo, hi, shape).astype(np.float32)


# The layers under test, between a first trainable layer (whose weight gradient needs their
# input gradient) and Flatten + Dense(3, softmax). 2-D inputs are 7 x 6 x 2 maps, 1-D 9 x 3.
# Each stack is made inside its test (after conftest's clear_session), so the session-numbered
# layer names never clash with the test's own layers.
IMAGE, SEQUENCE = (7, 6, 2), (9, 3)
STACKS = {
    "conv-same-relu+maxpool-tiled-odd": (IMAGE, lambda: [L.Conv2D(3, 3, padding="same", activation="relu"),
                                                 L.MaxPooling2D(2)]),
    "conv-strided-tanh+avgpool-same": (IMAGE, lambda: [L.Conv2D(3, (3, 2), strides=(2, 1), activation="tanh"),
                                               L.AveragePooling2D((2, 3), strides=(1, 2), padding="same")]),
    "conv-dilated-linear-nobias+maxpool-overlapping-same": (
        IMAGE, lambda: [L.Conv2D(2, 2, dilation_rate=2, padding="same", use_bias=False),
                L.MaxPooling2D(3, strides=2, padding="same")]),
    "conv-1x1-sigmoid+avgpool-valid": (IMAGE, lambda: [L.Conv2D(3, 1, activation="sigmoid"),
                                               L.AveragePooling2D(2, strides=1)]),
    "conv-strided-same-softmax+global-max": (IMAGE, lambda: [L.Conv2D(4, (2, 3), strides=2, padding="same",
                                                              activation="softmax"), L.GlobalMaxPooling2D()]),
    "relu+global-average": (IMAGE, lambda: [L.Conv2D(3, 2, activation="relu"), L.GlobalAveragePooling2D()]),
    "padding+cropping+upsampling+batchnorm": (IMAGE, lambda: [L.ZeroPadding2D(((1, 0), (2, 1))),
                                                      L.Cropping2D(((1, 0), (0, 2))), L.UpSampling2D((2, 1)),
                                                      L.BatchNormalization()]),
    "conv1d-causal-strided+maxpool1d": (SEQUENCE, lambda: [L.Conv1D(3, 3, strides=2, padding="causal", activation="elu"),
                                                   L.MaxPooling1D(2)]),
    "conv1d-dilated-same-relu+avgpool1d+global-max1d": (
        SEQUENCE, lambda: [L.Conv1D(4, 2, dilation_rate=2, padding="same", activation="relu"),
                   L.AveragePooling1D(3, strides=2, padding="same"), L.Reshape((8, 2)), L.GlobalMaxPooling1D()]),
    "relu+global-average1d": (SEQUENCE, lambda: [L.Conv1D(3, 2, activation="relu"), L.GlobalAveragePooling1D()]),
}


def _stack_model(name):
    shape, make_tested = STACKS[name]
    keras.set_random_seed(4)
    first = L.Conv2D(2, 2, activation="elu") if len(shape) == 3 else L.Conv1D(2, 2, activation="elu")
    model = keras.Sequential([L.Input(shape=shape), first, *make_tested(), L.Flatten(),
                              L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    return model


@device
@pytest.mark.parametrize("name", list(STACKS))
def test_forward_and_gradients_of_each_op_on_the_device_match_the_cpu(name):
    from fastnn.models.training import loss_and_gradients
    shape = STACKS[name][0]
    X, y = _f32(3, *shape), RNG.integers(0, 3, 3)
    model = _stack_model(name)
    # make a layer's later weights non-trivial (BatchNormalization's gamma/beta start at 1/0)
    model.set_weights([w + _f32(*w.shape, lo=-0.3, hi=0.3) for w in model.get_weights()])
    with keras.device("cpu"):
        p0 = model.predict(X, verbose=0)
        loss0, g0 = loss_and_gradients(model, X, y)
    with keras.device("cuda"):
        p1 = model.predict(X, verbose=0)
        loss1, g1 = loss_and_gradients(model, X, y)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-7)
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    n_first = model.layers[0].count_params()
    assert np.abs(g0[:n_first]).max() > 1e-3      # the input gradient of the ops under test reached it
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6 * np.abs(g0).max())


def _cnn():
    """The tutorials' CNN (Conv2D same relu, MaxPooling2D, Conv2D, MaxPooling2D, Flatten, Dense, Dense
    softmax; Adam, sparse cross-entropy) on 8 x 8 x 1 images, with few filters; without its Dropout,
    since the device draws other masks than the CPU (``test_cuda.py`` checks Dropout on the device)."""
    keras.set_random_seed(8)
    model = keras.Sequential([L.Conv2D(4, kernel_size=3, activation="relu", padding="same", input_shape=(8, 8, 1)),
                              L.MaxPooling2D(2),
                              L.Conv2D(6, kernel_size=(3, 3), activation="relu", padding="same"),
                              L.MaxPooling2D(2), L.Flatten(), L.Dense(5, activation="relu"),
                              L.Dense(3, activation="softmax")])
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


@device
def test_a_small_cnn_trains_to_the_cpu_weights():
    # Two steps, of 3 images and of 2 (a partial batch).
    X, y = _f32(5, 8, 8, 1, lo=0, hi=1), RNG.integers(0, 3, 5)
    runs = []
    for dev in ("cpu", "cuda"):
        model = _cnn()
        with keras.device(dev):
            history = model.fit(X, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
            pred = model.predict(X, verbose=0)
        runs.append((model, history.history, pred))
    (m0, h0, p0), (m1, h1, p1) = runs
    start = _cnn().get_weights()
    for a, b, w in zip(m0.get_weights(), m1.get_weights(), start):
        assert not np.array_equal(a, w)                       # every weight moved
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m1.optimizer.slots, m0.optimizer.slots, rtol=1e-4, atol=1e-7)
    assert m0.optimizer.iterations == m1.optimizer.iterations == 2
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h1[key], h0[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-7)


# DepthwiseConv2D and SeparableConv2D with every option the CPU kinds take between them: strides 1 and 2,
# padding same and valid, dilation 2, depth_multiplier 1 and 2, odd kernels and maps, activations computed
# in place (ReLU, softmax) or kept beside the output (tanh), with and without bias. Each kind comes second
# once, so its input gradient (which trains the first layer) is checked too.
DEPTHWISE_STACKS = {
    "depthwise-strided-same-m2-relu+separable-dilated-valid-m2-tanh": lambda: [
        L.DepthwiseConv2D(3, strides=2, padding="same", depth_multiplier=2, activation="relu"),
        L.SeparableConv2D(3, 2, dilation_rate=2, depth_multiplier=2, activation="tanh")],
    "separable-strided-same-softmax+depthwise-dilated-valid-tanh-nobias": lambda: [
        L.SeparableConv2D(4, (2, 3), strides=2, padding="same", activation="softmax"),
        L.DepthwiseConv2D(2, dilation_rate=2, use_bias=False, activation="tanh")],
}


def _depthwise_model(name):
    keras.set_random_seed(6)
    model = keras.Sequential([L.Input(shape=IMAGE), *DEPTHWISE_STACKS[name](), L.Flatten(),
                              L.Dense(3, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5, momentum=0.9))
    return model


@device
@pytest.mark.parametrize("name", list(DEPTHWISE_STACKS))
def test_depthwise_and_separable_convolutions_train_to_the_cpu_weights(name):
    # Two steps, of 3 images and of 2 (a partial batch).
    X, y = _f32(5, *IMAGE), RNG.integers(0, 3, 5)
    runs = []
    for dev in ("cpu", "cuda"):
        model = _depthwise_model(name)
        with keras.device(dev):
            history = model.fit(X, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
            pred = model.predict(X, verbose=0)
        runs.append((model.get_weights(), history.history["loss"], pred))
    (w0, loss0, p0), (w1, loss1, p1) = runs
    for a, b, start in zip(w0, w1, _depthwise_model(name).get_weights()):
        step = a - start
        assert np.abs(step).max() > 1e-3                       # every weight array moved
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        # and moved as on the CPU: the gradients agree to float32 round-off
        np.testing.assert_allclose(b - start, step, rtol=1e-4, atol=1e-6 * np.abs(step).max())
    np.testing.assert_allclose(loss1, loss0, rtol=1e-5)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-7)


@device
def test_spatial_dropout_drops_whole_channels_and_its_gradient_follows_the_mask():
    import warnings
    from numba import cuda
    from numba.cuda.random import create_xoroshiro128p_states
    from fastnn.kernels.cuda.launch import THREADS
    from fastnn.kernels.cuda.spatial_dropout import spatial_dropout, spatial_dropout_backward
    b, pixels, C, rate = 5, 6, 7, np.float32(0.5)
    n = pixels * C
    x = _f32(b * n, lo=0.5, hi=1.5)                       # no zeros: a zero output means dropped
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        states = create_xoroshiro128p_states(THREADS, seed=1)
    # ws: x at 0, masks at b*n, a at b*n + b*C
    ws = cuda.to_device(np.r_[x, np.full(b * C + b * n, np.nan, np.float32)])
    spatial_dropout[1, THREADS](states, rate, b, pixels, C, ws, 0, b * n, b * n + b * C)
    out = ws.copy_to_host()
    mask, a = out[b * n:b * n + b * C].reshape(b, 1, C), out[b * n + b * C:].reshape(b, pixels, C)
    assert set(np.unique(mask)) == {0.0, 2.0}               # kept values scaled by 1 / (1 - rate)
    np.testing.assert_array_equal(a, x.reshape(b, pixels, C) * mask)    # the same mask at every pixel
    ga = _f32(b * n)
    gs = cuda.to_device(np.r_[np.zeros(b * n, np.float32), ga])
    spatial_dropout_backward[1, THREADS](n, C, ws, gs, 0, b * n, b * n, b)
    np.testing.assert_array_equal(gs.copy_to_host()[:b * n].reshape(b, pixels, C),
                                  ga.reshape(b, pixels, C) * mask)


@device
def test_every_kind_the_device_runs_has_a_plan_and_the_others_are_refused_by_name():
    from fastnn.kernels import kinds, program as P
    from fastnn.kernels.cuda import kinds as device_kinds
    engine_kinds = {P.DENSE, P.ACTIVATION, P.NORMALIZE, P.RESCALE, P.DROPOUT, P.BATCHNORM, P.LEAKY_RELU}
    for code, kind in kinds._KINDS.items():
        planned = code in engine_kinds or device_kinds.get(code) is not None
        assert kind.on_cuda == planned, kind.name
    inputs = keras.Input(shape=(3,))
    model = keras.Model(inputs, L.Dense(1)(keras.ops.exp(inputs)))      # a keras.ops op: CPU only
    model.compile(loss="mse", optimizer="sgd")
    with keras.device("cuda"):
        with pytest.raises(NotImplementedError, match=r"does not run layers \['Unary'\]"):
            model.fit(_f32(2, 3), _f32(2, 1), verbose=0)


@device
def test_batchnormalization_after_a_convolution_trains_like_the_cpu():
    # Batch statistics per channel over every pixel of the batch (not per pixel), and the moving ones.
    X, y = _f32(5, 5, 4, 2), RNG.integers(0, 2, 5)
    runs = []
    for dev in ("cpu", "cuda"):
        keras.set_random_seed(9)
        model = keras.Sequential([L.Input(shape=(5, 4, 2)), L.Conv2D(3, 2, activation="relu"),
                                  L.BatchNormalization(momentum=0.5), L.Flatten(), L.Dense(2, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5))
        with keras.device(dev):
            model.fit(X, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
        runs.append(model.get_weights())
    for a, b in zip(*runs):      # kernels, biases, gamma, beta, moving mean and variance
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    moving_mean = runs[0][4]
    assert moving_mean.shape == (3,) and np.abs(moving_mean).min() > 0
