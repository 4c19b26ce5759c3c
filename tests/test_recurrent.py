"""Sequence kernels (Embedding, SimpleRNN, LSTM, GRU, Bidirectional, 1-D global pooling): back-propagated
gradients against central finite differences (``_util.assert_gradient_matches``; step and tolerance
argued in test_gradients' docstring), for every option: return_sequences, go_backwards, masks from
Embedding(mask_zero=True) with pre- and post-padding, stacked layers, Bidirectional merge modes, input
dropout (masks redrawn identically for every loss evaluation), frozen layers, and the token-id checks.
Inputs: floats in [-1, 1] or token ids; weights Glorot-sized, so losses are O(1) as the error analysis
assumes. These run under NUMBA_BOUNDSCHECK=1 in CI's kernel pass.
"""
import numpy as np
import pytest

import fastnn as keras
from fastnn.models.training import loss_and_gradients

from _util import STEP, assert_gradient_matches

L = keras.layers
T, F, U = 5, 3, 4
CELLS = {"SimpleRNN": L.SimpleRNN, "LSTM": L.LSTM, "GRU": L.GRU}
# Pre- and post-padded rows, a row with a masked step inside, and one with no padding.
TOKENS = np.array([[0, 0, 3, 7, 2], [5, 1, 9, 4, 8], [6, 2, 0, 0, 0], [4, 0, 3, 0, 1]], dtype=np.float32)


def _floats(rows=4, seed=1):
    return np.random.default_rng(seed).uniform(-1, 1, (rows, T, F)).astype(np.float32)


def _targets(model, x, seed=2):
    shape = (len(x), *model.outputs[0].shape[1:])
    return np.random.default_rng(seed).uniform(-1, 1, shape).astype(np.float32)


def _model(body, tokens=False, mask_zero=True, seed=0):
    keras.utils.set_random_seed(seed)
    inp = L.Input(shape=(T,) if tokens else (T, F))
    t = L.Embedding(10, F, mask_zero=mask_zero, embeddings_initializer="glorot_uniform")(inp) if tokens else inp
    for layer in body():
        t = layer(t)
    model = keras.Model(inp, L.Dense(2)(L.Flatten()(t)) if len(t.shape) > 2 else L.Dense(2)(t))
    model.compile(loss="mse", optimizer="sgd")
    return model


def _check(body, tokens=False, mask_zero=True):
    model = _model(body, tokens, mask_zero)
    x = TOKENS if tokens else _floats()
    assert_gradient_matches(model, x, _targets(model, x))


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_cell_gradients(cell, return_sequences, go_backwards):
    _check(lambda: [CELLS[cell](U, return_sequences=return_sequences, go_backwards=go_backwards)])


@pytest.mark.parametrize("cell", sorted(CELLS))
@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize("go_backwards", [False, True])
def test_masked_cell_gradients_through_the_embedding(cell, return_sequences, go_backwards):
    _check(lambda: [CELLS[cell](U, return_sequences=return_sequences, go_backwards=go_backwards)], tokens=True)


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_cell_without_bias_and_other_activations(cell):
    kwargs = {"activation": "sigmoid"} if cell == "SimpleRNN" else {"activation": "sigmoid",
                                                                     "recurrent_activation": "tanh"}
    _check(lambda: [CELLS[cell](U, use_bias=False, return_sequences=True, **kwargs)])


def test_stacked_layers_with_a_mask():
    _check(lambda: [L.LSTM(U, return_sequences=True), L.GRU(U, return_sequences=True), L.SimpleRNN(U)],
           tokens=True)


@pytest.mark.parametrize("merge_mode", ["concat", "sum", "mul", "ave"])
@pytest.mark.parametrize("return_sequences", [False, True])
def test_bidirectional_gradients(merge_mode, return_sequences):
    _check(lambda: [L.Bidirectional(L.LSTM(U, return_sequences=return_sequences), merge_mode=merge_mode)])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_masked_bidirectional_sequences(cell):
    _check(lambda: [L.Bidirectional(CELLS[cell](U, return_sequences=True)), L.LSTM(U)], tokens=True)


def test_embedding_gradient_sums_repeated_tokens():
    # token 3 appears three times, 0 (not masked here) twice: their rows get the sum of the occurrences
    _check(lambda: [L.Dense(U, activation="tanh")], tokens=True, mask_zero=False)


@pytest.mark.parametrize("masked", [False, True])
def test_global_average_pooling_gradients(masked):
    _check(lambda: [L.Dense(U, activation="tanh"), L.GlobalAveragePooling1D()], tokens=True, mask_zero=masked)


def test_global_max_pooling_gradients():
    """The maximum is kept at least 0.9 above the other steps (a kink otherwise): positive weights,
    and one step per sample 3 larger in every feature."""
    keras.utils.set_random_seed(0)
    inp = L.Input(shape=(T, F))
    t = L.Dense(U, kernel_initializer=keras.initializers.RandomUniform(0.1, 0.5))(inp)
    model = keras.Model(inp, L.Dense(2)(L.GlobalMaxPooling1D()(t)))
    model.compile(loss="mse", optimizer="sgd")
    x = _floats()
    x[np.arange(len(x)), np.arange(len(x)) % T] += 3
    assert_gradient_matches(model, x, _targets(model, x))


def test_time_distributed_dense_on_recurrent_sequences():
    _check(lambda: [L.GRU(U, return_sequences=True), L.TimeDistributed(L.Dense(3, activation="tanh"))])


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_dropout_gradient_with_the_same_masks(cell):
    """In training mode the dropout masks come from the generator set_random_seed seeds, so seeding
    before each loss evaluation gives every evaluation the same masks."""
    model = _model(lambda: [CELLS[cell](U, dropout=0.4, return_sequences=True)])
    x = _floats()
    y = _targets(model, x)

    def loss_grad():
        keras.utils.set_random_seed(7)
        return loss_and_gradients(model, x, y, training=True)

    loss, grad = loss_grad()
    _, inference_grad = loss_and_gradients(model, x, y)
    assert not np.allclose(grad, inference_grad), "dropout changed nothing"
    params = model._params
    fd = np.zeros(model._n_trainable)
    for i in range(model._n_trainable):
        original = params[i]
        params[i] = original + np.float32(STEP)
        up, loss_up = float(params[i]), loss_grad()[0]
        params[i] = original - np.float32(STEP)
        down, loss_down = float(params[i]), loss_grad()[0]
        params[i] = original
        fd[i] = (loss_up - loss_down) / (up - down)
    scale = np.abs(fd).max()
    assert np.abs(grad[:model._n_trainable] - fd).max() <= 1e-3 * scale


def test_frozen_recurrent_layer_passes_gradients_through():
    """The frozen LSTM's weights are out of the trainable buffer; the embedding below it still trains."""
    model = _model(lambda: [L.LSTM(U, return_sequences=True, trainable=False), L.GRU(U)], tokens=True)
    lstm = model.layers[2]
    assert model._n_trainable == model.count_params() - lstm.count_params()
    assert_gradient_matches(model, TOKENS, _targets(model, TOKENS))


def test_masked_steps_leave_the_state_unchanged():
    """Keras's masking: a masked step carries the state, so pre-padding gives what the unpadded
    sequence gives, and a return_sequences output repeats the carried state (zeros before any input)."""
    model = _model(lambda: [L.GRU(U, return_sequences=True)], tokens=True)
    gru_out = keras.Model(model.inputs, model.layers[2].output)
    padded = gru_out.predict(np.array([[0, 0, 3, 7, 2]], dtype=np.float32), verbose=0)[0]
    assert np.all(padded[:2] == 0)
    short = keras.Model(*_short_gru(model)).predict(np.array([[3, 7, 2]], dtype=np.float32), verbose=0)[0]
    np.testing.assert_allclose(padded[2:], short, rtol=1e-6, atol=1e-7)
    inner = gru_out.predict(np.array([[3, 0, 7, 0, 2]], dtype=np.float32), verbose=0)[0]
    np.testing.assert_array_equal(inner[1], inner[0])
    np.testing.assert_array_equal(inner[3], inner[2])
    np.testing.assert_allclose(inner[4], short[2], rtol=1e-6, atol=1e-7)


def _short_gru(model):
    """The trained layers of ``model`` on sequences of 3 tokens."""
    inp = L.Input(shape=(3,))
    emb = L.Embedding(10, F, mask_zero=True)
    gru = L.GRU(U, return_sequences=True)
    out = gru(emb(inp))
    emb.set_weights(model.layers[1].get_weights())
    gru.set_weights(model.layers[2].get_weights())
    return inp, out


@pytest.mark.parametrize("bad", [-1.0, 10.0, 2.5, np.nan])
def test_token_ids_are_checked_before_the_kernels_run(bad):
    model = _model(lambda: [L.LSTM(U)], tokens=True)
    x = TOKENS.copy()
    x[1, 3] = bad
    y = _targets(model, x)
    with pytest.raises(ValueError, match="NaN|token id"):
        model.fit(x, y, verbose=0)
    with pytest.raises(ValueError, match="NaN|token id"):
        model.predict(x, verbose=0)
