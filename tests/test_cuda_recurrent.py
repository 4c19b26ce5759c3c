"""SimpleRNN, LSTM, GRU and Bidirectional on the CUDA device, against the CPU kind.

Text models of the tutorials' shape (Embedding, recurrent layers, Dense softmax) train two steps
(a batch of 3 and a partial one of 2, ``shuffle=False``) from the same initial weights on both
devices and must end on the same weights, losses and predictions within float32 round-off: every
cell (GRU with reset_after True and False), with and without a mask from Embedding(mask_zero=True)
(pre- and post-padded rows, a masked step inside a row), go_backwards, return_sequences, stacked
layers. Dropout masks come from the device's own generator, so that case is checked against a
written-out Keras LSTM and GRU(reset_after=False) (implementation 1: one mask per gate block, per
sequence, kept for every step) run with the masks the device drew, and its gradient against that
formula's finite differences. Device tests: see ``test_cuda.py``'s docstring (they run under
Numba's CUDA simulator in its subprocess); the simulator runs one Python thread per GPU thread, so
shapes are tiny.
"""
import sys

import numpy as np
import pytest

import fastnn as keras
from numba.core import config as numba_config

if numba_config.ENABLE_CUDASIM:
    sys.setswitchinterval(5e-4)     # see test_cuda.py: the simulator's threads wait less for the GIL
    # importing the device kernels loads Numba's random module, whose object-mode jit warns (harmless)
    pytestmark = [pytest.mark.filterwarnings("ignore:overflow encountered in scalar:RuntimeWarning"),
                  pytest.mark.filterwarnings("ignore:The keyword argument 'nopython=False'")]
device = pytest.mark.cuda_device
RNG = np.random.default_rng(41)
L = keras.layers
T, V = 5, 8
# Pre- and post-padded rows, a row with masked steps inside, a row without padding; ids 1..7 all occur.
IDS = np.array([[0, 0, 3, 7, 2], [5, 1, 6, 4, 7], [6, 2, 0, 0, 0], [4, 0, 3, 0, 1], [1, 2, 3, 4, 5]], np.float32)
Y = np.array([0, 1, 1, 0, 1])

# (mask_zero, the layers between the Embedding and Dense(2, softmax)); made inside the test, after
# conftest's clear_session. A sequence output without a mask is flattened for the Dense layer.
CASES = {
    "SimpleRNN-masked-backwards-sequences+stacked": (True, lambda: [
        L.SimpleRNN(4, return_sequences=True, go_backwards=True), L.SimpleRNN(3)]),
    "SimpleRNN-relu-nobias-sequences": (False, lambda: [
        L.SimpleRNN(3, activation="relu", use_bias=False, return_sequences=True), L.Flatten()]),
    "LSTM-masked-sequences+stacked-backwards": (True, lambda: [
        L.LSTM(4, return_sequences=True), L.LSTM(3, go_backwards=True)]),
    "LSTM-other-activations-backwards-sequences": (False, lambda: [
        L.LSTM(3, activation="sigmoid", recurrent_activation="tanh", return_sequences=True, go_backwards=True),
        L.Flatten()]),
    "GRU-masked-backwards-sequences+stacked": (True, lambda: [
        L.GRU(4, return_sequences=True, go_backwards=True), L.GRU(3)]),
    "GRU-nobias-sequences": (False, lambda: [L.GRU(3, use_bias=False, return_sequences=True), L.Flatten()]),
    "GRU-reset_before-masked-sequences+stacked-backwards": (True, lambda: [
        L.GRU(4, reset_after=False, return_sequences=True), L.GRU(3, reset_after=False, go_backwards=True)]),
    "GRU-reset_before-backwards-sequences": (False, lambda: [
        L.GRU(3, reset_after=False, return_sequences=True, go_backwards=True), L.Flatten()]),
    "Bidirectional-masked-concat-sequences+ave": (True, lambda: [
        L.Bidirectional(L.LSTM(3, return_sequences=True)), L.Bidirectional(L.GRU(2), merge_mode="ave")]),
}


def _text_model(name):
    mask_zero, body = CASES[name]
    keras.set_random_seed(3)
    model = keras.Sequential([L.Input(shape=(T,)), L.Embedding(V, 3, mask_zero=mask_zero), *body(),
                              L.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer=keras.optimizers.SGD(0.5),
                  metrics=["accuracy"])
    return model


@device
@pytest.mark.parametrize("name", list(CASES))
def test_a_text_model_trains_on_the_device_to_the_cpu_weights(name):
    runs = []
    for dev in ("cpu", "cuda"):
        model = _text_model(name)
        with keras.device(dev):
            history = model.fit(IDS, Y, batch_size=3, epochs=1, shuffle=False, verbose=0)
            pred = model.predict(IDS, verbose=0)
        runs.append((model.get_weights(), history.history, pred))
    (w0, h0, p0), (w1, h1, p1) = runs
    start = _text_model(name).get_weights()
    moved = np.abs(w0[0] - start[0]).max(axis=1)
    assert moved[1:].min() > 0 and (moved[0] == 0) == CASES[name][0]     # a masked id 0 gets no gradient
    for a, w in zip(w0[1:], start[1:]):
        assert not np.array_equal(a, w)                                  # every later weight moved
    for a, b in zip(w0, w1):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    for key in ("loss", "accuracy"):
        np.testing.assert_allclose(h1[key], h0[key], rtol=1e-5, err_msg=key)
    np.testing.assert_allclose(p1, p0, rtol=1e-5, atol=1e-7)


@device
def test_final_states_nothing_reads_leave_the_gradients_as_the_cpu():
    from fastnn.models.training import loss_and_gradients
    keras.set_random_seed(4)
    inp = L.Input(shape=(T,))
    out, _, _ = L.LSTM(3, return_state=True)(L.Embedding(V, 2, mask_zero=True)(inp))
    model = keras.Model(inp, L.Dense(2, activation="softmax")(out))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    results = []
    for dev in ("cpu", "cuda"):
        with keras.device(dev):
            results.append(loss_and_gradients(model, IDS, Y))
    (loss0, g0), (loss1, g1) = results
    assert loss1 == pytest.approx(loss0, rel=1e-6)
    np.testing.assert_allclose(g1, g0, rtol=1e-4, atol=1e-6 * np.abs(g0).max())


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _cell_with_masks(cell, x, kernel, recurrent, bias, dm, rm, go_backwards):
    """Keras 3's LSTM or GRU(reset_after=False) with dropout and recurrent_dropout (implementation 1),
    in float64: gate block k reads x * dm[:, k] and h * rm[:, k], the same masks at every step (GRU's
    candidate: (r * h * rm[:, 2]) @ its recurrent block); the outputs in processing order."""
    b, t, f = x.shape
    u = recurrent.shape[0]
    h, c, outs = np.zeros((b, u)), np.zeros((b, u)), []
    for s in range(t):
        xs = x[:, t - 1 - s if go_backwards else s]
        xw = [(xs * dm[:, k]) @ kernel[:, k * u:(k + 1) * u] + bias[k * u:(k + 1) * u] for k in range(dm.shape[1])]
        hw = [(h * rm[:, k]) @ recurrent[:, k * u:(k + 1) * u] for k in range(rm.shape[1])]
        if cell == "LSTM":
            i, fg, g, o = (_sigmoid(xw[0] + hw[0]), _sigmoid(xw[1] + hw[1]), np.tanh(xw[2] + hw[2]),
                           _sigmoid(xw[3] + hw[3]))
            c = fg * c + i * g
            h = o * np.tanh(c)
        else:
            z, r = _sigmoid(xw[0] + hw[0]), _sigmoid(xw[1] + hw[1])
            hh = np.tanh(xw[2] + (r * h * rm[:, 2]) @ recurrent[:, 2 * u:])
            h = z * h + (1 - z) * hh
        outs.append(h)
    return np.stack(outs, axis=1)


@device
@pytest.mark.parametrize("cell", ["LSTM", "GRU-reset_before"])
def test_dropout_masks_are_drawn_per_sequence_kept_for_every_step_and_backpropagated(cell):
    from fastnn.kernels import program as P
    from fastnn.kernels.cuda.engine import Session
    from fastnn.kernels.kinds import recurrent as R
    b, t, f, u, rate = 4, 4, 2, 3, 0.5
    keras.set_random_seed(5)
    options = dict(dropout=rate, recurrent_dropout=rate, return_sequences=True, go_backwards=True)
    layer = L.LSTM(u, **options) if cell == "LSTM" else L.GRU(u, reset_after=False, **options)
    g = 4 if cell == "LSTM" else 3
    model = keras.Sequential([L.Input(shape=(t, f)), layer])
    model.compile(loss="mse", optimizer="sgd")
    x = RNG.uniform(-1, 1, (b, t, f)).astype(np.float32)
    program = model._program_for_training()
    rec = program.prog[0]
    c = program.ints[rec[P.IAUX]:rec[P.IAUX] + R.N_INTS]
    _, _, _, _, _, dm_at, _, _, rm_at, _ = R._layout(c, b, b * int(rec[P.Z_POS]))

    def forward(seed):
        """A training forward pass (masks drawn) on a new session; its workspace."""
        session = Session(program, model._params, b, seed=seed)
        data = session.data(x.reshape(b, -1), np.zeros((b, t * u), np.float32), np.zeros(0, np.int64))
        plan = session._plan(b, True)
        session._step_in(plan, data, data.order, 0, b)
        return session, data, plan, session.ws.copy_to_host()
    session, data, plan, ws = forward(11)
    dm, rm = ws[dm_at:dm_at + b * g * f].reshape(b, g, f), ws[rm_at:rm_at + b * g * u].reshape(b, g, u)
    for masks in (dm, rm):
        assert set(np.unique(masks)) == {0.0, 2.0}          # kept values scaled by 1 / (1 - rate)
    if cell == "LSTM":      # (new sessions are slow in the simulator: once is enough)
        again, other = forward(11)[3], forward(12)[3]
        np.testing.assert_array_equal(again[dm_at:dm_at + dm.size], dm.ravel())    # a seed, the same masks
        assert not np.array_equal(other[rm_at:rm_at + rm.size], rm.ravel())
    a = b * int(rec[P.A_POS])
    out = ws[a:a + b * t * u].reshape(b, t, u)
    W, Wr, bias = (w.astype(np.float64) for w in model.get_weights())
    np.testing.assert_allclose(out, _cell_with_masks(cell, x, W, Wr, bias, dm, rm, True), rtol=1e-5, atol=1e-6)
    # backward through the same masks: the gradient of sum(out * G) against the formula's
    G = RNG.uniform(-1, 1, (b, t, u))
    gs = session.gs.copy_to_host()
    gs[a:a + b * t * u] = G.ravel()
    session.gs.copy_to_device(gs)
    session._run(plan.backward, data, data.order, 0)
    grads = session.grads.copy_to_host()
    params = model._params.astype(np.float64)
    shapes = [w.shape for w in model.get_weights()]

    def objective(p):
        parts, lo = [], 0
        for shape in shapes:
            parts.append(p[lo:lo + int(np.prod(shape))].reshape(shape))
            lo += parts[-1].size
        return np.sum(_cell_with_masks(cell, x, *parts, dm, rm, True) * G)
    eps, fd = 1e-6, np.zeros_like(params)
    for k in range(params.size):
        step = np.zeros_like(params)
        step[k] = eps
        fd[k] = (objective(params + step) - objective(params - step)) / (2 * eps)
    np.testing.assert_allclose(grads, fd, rtol=1e-3, atol=1e-5 * np.abs(fd).max())


@device
def test_initial_states_and_masked_pooling_are_refused_by_name():
    keras.set_random_seed(6)
    enc_in, dec_in = L.Input(shape=(T, 2)), L.Input(shape=(T, 2))
    _, h = L.GRU(3, return_state=True)(enc_in)
    model = keras.Model([enc_in, dec_in], L.Dense(1)(L.GRU(3)(dec_in, initial_state=[h])))
    model.compile(loss="mse", optimizer="sgd")
    x = RNG.uniform(-1, 1, (2, T, 2)).astype(np.float32)
    with keras.device("cuda"):
        with pytest.raises(NotImplementedError, match="does not run recurrent layers called with initial_state=") \
                as refused:
            model.fit([x, x], np.zeros((2, 1), np.float32), verbose=0)
    assert "return_state=True outputs (final states) read by other layers" in str(refused.value)
    pooled = keras.Sequential([L.Input(shape=(T,)), L.Embedding(V, 2, mask_zero=True), L.GlobalAveragePooling1D(),
                               L.Dense(1)])
    pooled.compile(loss="mse", optimizer="sgd")
    with keras.device("cuda"):
        with pytest.raises(NotImplementedError, match="does not run GlobalPooling1D over a masked sequence"):
            pooled.fit(IDS, np.zeros((5, 1), np.float32), verbose=0)
