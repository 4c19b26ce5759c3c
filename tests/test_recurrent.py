"""Sequence kernels (Embedding, SimpleRNN, LSTM, GRU, Bidirectional, 1-D global pooling): back-propagated
gradients against central finite differences (``_util.assert_gradient_matches``; step and tolerance
argued in test_gradients' docstring), for every option: return_sequences, go_backwards, masks from
Embedding(mask_zero=True) with pre- and post-padding, stacked layers, Bidirectional merge modes, input
and recurrent dropout (masks redrawn identically for every loss evaluation), return_state and
initial_state (encoder-decoder models), GRU(reset_after=False), frozen layers, and the token-id checks.
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


def _check_with_fixed_masks(model, what):
    """Training-mode gradient against central differences, seeding before each loss evaluation so
    every evaluation draws the same dropout masks; ``what`` must change the gradient."""
    x = _floats()
    y = _targets(model, x)

    def loss_grad():
        keras.utils.set_random_seed(7)
        return loss_and_gradients(model, x, y, training=True)

    grad = loss_grad()[1]
    _, inference_grad = loss_and_gradients(model, x, y)
    assert not np.allclose(grad, inference_grad), f"{what} changed nothing"
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


@pytest.mark.parametrize("cell", sorted(CELLS))
def test_input_dropout_gradient_with_the_same_masks(cell):
    """In training mode the dropout masks come from the generator set_random_seed seeds, so seeding
    before each loss evaluation gives every evaluation the same masks."""
    model = _model(lambda: [CELLS[cell](U, dropout=0.4, return_sequences=True)])
    _check_with_fixed_masks(model, "dropout")


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


# -- return_state, initial_state, recurrent_dropout, GRU(reset_after=False) ---------------------------
# The cells with every formulation: GRU's reset_after=False runs its own step (the reset gate before the
# recurrent product).
FORMULATIONS = {"SimpleRNN": L.SimpleRNN, "LSTM": L.LSTM, "GRU": L.GRU,
                "GRU_reset_before": lambda *a, **k: L.GRU(*a, reset_after=False, **k)}
T_DEC = 4


def _encoder_decoder(cell, tokens=False, go_backwards=False, return_sequences=True, seed=0, **options):
    """Keras's encoder-decoder pattern: the encoder's final states start the decoder
    (``decoder(dec_in, initial_state=states)``); both inputs floats, or the encoder's masked token ids."""
    keras.utils.set_random_seed(seed)
    make = FORMULATIONS[cell]
    enc_in = L.Input(shape=(T,) if tokens else (T, F))
    dec_in = L.Input(shape=(T_DEC, F))
    seq = L.Embedding(10, F, mask_zero=True, embeddings_initializer="glorot_uniform")(enc_in) if tokens else enc_in
    _, *states = make(U, return_state=True, go_backwards=go_backwards, **options)(seq)
    out = make(U, return_sequences=return_sequences, **options)(dec_in, initial_state=states)
    model = keras.Model([enc_in, dec_in], L.Dense(2)(out))
    model.compile(loss="mse", optimizer="sgd")
    return model


def _pair(tokens=False, rows=4):
    enc = TOKENS[:rows] if tokens else _floats(rows)
    return [enc, _floats(rows, seed=3)[:, :T_DEC]]


@pytest.mark.parametrize("cell", sorted(FORMULATIONS))
@pytest.mark.parametrize("tokens", [False, True])
def test_encoder_states_start_the_decoder_and_get_its_gradients(cell, tokens):
    """Every weight, the encoder's included (its only path to the loss is through the initial
    states), against finite differences; with the encoder's masked sequences too."""
    model = _encoder_decoder(cell, tokens, go_backwards=tokens)
    x = _pair(tokens)
    assert_gradient_matches(model, x, _targets(model, x[0]))


@pytest.mark.parametrize("cell", ["LSTM", "GRU"])
def test_a_layer_given_initial_states_runs_every_step_as_keras(cell):
    """Keras 3 passes a layer its input's mask only in a call of one tensor, so a decoder given
    initial_state= runs the masked steps too: the same numbers as without mask_zero, and gradients
    that match finite differences."""
    models = []
    for mask_zero in (True, False):
        keras.utils.set_random_seed(0)
        enc_in, dec_in = L.Input(shape=(T, F)), L.Input(shape=(T,))
        _, *states = CELLS[cell](U, return_state=True)(enc_in)
        seq = L.Embedding(10, F, mask_zero=mask_zero, embeddings_initializer="glorot_uniform")(dec_in)
        out = CELLS[cell](U, return_sequences=True)(seq, initial_state=states)
        model = keras.Model([enc_in, dec_in], L.Dense(2)(L.Flatten()(out)))
        model.compile(loss="mse", optimizer="sgd")
        models.append(model)
    x = [_floats(), TOKENS]
    np.testing.assert_array_equal(models[0].predict(x, verbose=0), models[1].predict(x, verbose=0))
    assert_gradient_matches(models[0], x, _targets(models[0], x[0]))


@pytest.mark.parametrize("cell", sorted(FORMULATIONS))
@pytest.mark.parametrize("return_sequences", [False, True])
def test_every_output_of_return_state_gets_its_gradient(cell, return_sequences):
    """The output and each state feed the loss through their own Dense layers."""
    keras.utils.set_random_seed(0)
    inp = L.Input(shape=(T, F))
    out, *states = FORMULATIONS[cell](U, return_state=True, return_sequences=return_sequences)(inp)
    heads = [L.Dense(2)(L.Flatten()(out))] + [L.Dense(2)(s) for s in states]
    model = keras.Model(inp, L.Add()(heads))
    model.compile(loss="mse", optimizer="sgd")
    x = _floats()
    assert_gradient_matches(model, x, _targets(model, x))


@pytest.mark.parametrize("merge_mode", ["concat", "mul", None])
def test_bidirectional_states_and_separate_outputs(merge_mode):
    """Bidirectional(return_state=True) gives [output(s), forward h, c, backward h, c] as Keras does;
    merge_mode=None two sequence outputs."""
    keras.utils.set_random_seed(0)
    inp = L.Input(shape=(T,))
    seq = L.Embedding(10, F, mask_zero=True, embeddings_initializer="glorot_uniform")(inp)
    outs = L.Bidirectional(L.LSTM(U, return_sequences=True, return_state=True), merge_mode=merge_mode)(seq)
    assert [tuple(o.shape) for o in outs] == [(None, T, 2 * U if merge_mode == "concat" else U)] * (
        2 if merge_mode is None else 1) + [(None, U)] * 4
    n_seq = 2 if merge_mode is None else 1
    heads = [L.Dense(2)(L.GlobalAveragePooling1D()(o)) for o in outs[:n_seq]] + [L.Dense(2)(s) for s in outs[n_seq:]]
    model = keras.Model(inp, L.Add()(heads))
    model.compile(loss="mse", optimizer="sgd")
    assert_gradient_matches(model, TOKENS, _targets(model, TOKENS))


@pytest.mark.parametrize("cell, return_sequences, bidirectional", [("LSTM", False, False), ("GRU", True, False),
                                                                  ("LSTM", True, True), ("GRU", False, True)])
def test_a_mask_given_with_initial_states_gradients(cell, return_sequences, bidirectional):
    """``decoder(seq, initial_state=states, mask=m)`` reads the mask it is given: masked steps keep the
    states, outputs before a row's first unmasked step (all of a fully masked row's) are zeros, as
    Keras's; every gradient, the initial states' included, against finite differences."""
    keras.utils.set_random_seed(0)
    enc_in, dec_in = L.Input(shape=(T, F)), L.Input(shape=(T,))
    make = (lambda *a, **k: L.Bidirectional(CELLS[cell](*a, **k))) if bidirectional else CELLS[cell]
    _, *states = make(U, return_state=True)(enc_in)
    seq = L.Embedding(10, F, embeddings_initializer="glorot_uniform")(dec_in)
    out = make(U, return_sequences=return_sequences)(seq, initial_state=states, mask=keras.ops.not_equal(dec_in, 0))
    model = keras.Model([enc_in, dec_in], L.Dense(2)(L.Flatten()(out) if return_sequences else out))
    model.compile(loss="mse", optimizer="sgd")
    tokens = np.concatenate([TOKENS, np.zeros((1, T), np.float32)])      # and a fully masked row
    x = [_floats(5), tokens]
    assert_gradient_matches(model, x, _targets(model, x[0]))


def test_bidirectional_initial_state_gradients():
    keras.utils.set_random_seed(0)
    enc_in, dec_in = L.Input(shape=(T, F)), L.Input(shape=(T_DEC, F))
    _, *states = L.Bidirectional(L.GRU(U, return_state=True))(enc_in)
    out = L.Bidirectional(L.GRU(U))(dec_in, initial_state=states)
    model = keras.Model([enc_in, dec_in], L.Dense(2)(out))
    model.compile(loss="mse", optimizer="sgd")
    x = _pair()
    assert_gradient_matches(model, x, _targets(model, x[0]))


def test_unread_outputs_train_as_if_absent():
    """``_, h = GRU(return_state=True)(x)`` trains exactly as ``h = GRU()(x)``: the output nothing
    reads contributes no gradient, in every batch of an uneven split too."""
    x = _floats(11)
    y = np.random.default_rng(5).uniform(-1, 1, (11, 2)).astype(np.float32)
    weights = []
    for return_state in (False, True):
        keras.utils.set_random_seed(0)
        inp = L.Input(shape=(T, F))
        h = L.GRU(U, return_state=return_state)(inp)
        model = keras.Model(inp, L.Dense(2)(h[1] if return_state else h))
        model.compile(loss="mse", optimizer=keras.optimizers.SGD(0.1))
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)


def test_return_state_shapes_values_and_config():
    """Keras's list [output, h, c]: without return_sequences the output is h itself; the config
    round-trips and a Sequential model refuses a layer of several outputs."""
    keras.utils.set_random_seed(0)
    inp = L.Input(shape=(T, F))
    lstm = L.LSTM(U, return_sequences=True, return_state=True)
    seq, h, c = lstm(inp)
    assert [tuple(t.shape) for t in (seq, h, c)] == [(None, T, U), (None, U), (None, U)]
    model = keras.Model(inp, [seq, h, c])
    got_seq, got_h, got_c = model.predict(_floats(), verbose=0)
    np.testing.assert_array_equal(got_seq[:, -1], got_h)
    again = keras.Model.from_config(model.get_config())
    again.set_weights(model.get_weights())
    for a, b in zip(again.predict(_floats(), verbose=0), (got_seq, got_h, got_c)):
        np.testing.assert_array_equal(a, b)
    last, h_only = L.GRU(U, return_state=True)(inp)
    out = keras.Model(inp, [last, h_only]).predict(_floats(), verbose=0)
    np.testing.assert_array_equal(out[0], out[1])
    with pytest.raises(ValueError, match="several outputs"):
        keras.Sequential([L.Input(shape=(T, F)), L.LSTM(U, return_state=True), L.Dense(1)]).build()


def test_initial_state_is_checked():
    inp, h = L.Input(shape=(T, F)), L.Input(shape=(U,))
    with pytest.raises(ValueError, match=r"takes 2 initial state tensors \(h, c\), got 1"):
        L.LSTM(U)(inp, initial_state=[h])
    with pytest.raises(ValueError, match=r"shape \(None, 4\)"):
        L.GRU(U)(inp, initial_state=[L.Input(shape=(U + 1,))])
    with pytest.raises(ValueError, match="symbolic"):
        L.GRU(U)(_floats(), initial_state=[np.zeros((4, U), np.float32)])
    with pytest.raises(ValueError, match=r"stateful=True\) is not supported.*initial_state"):
        L.LSTM(U, stateful=True)


@pytest.mark.parametrize("cell", sorted(FORMULATIONS))
@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_recurrent_dropout_gradient_with_the_same_masks(cell, dropout):
    """Training mode, masks fixed by seeding before each loss evaluation: the input masks (one per
    gate block with recurrent dropout, as Keras 3's implementation 1) and the recurrent ones."""
    model = _model(lambda: [FORMULATIONS[cell](U, dropout=dropout, recurrent_dropout=0.4, return_sequences=True)])
    _check_with_fixed_masks(model, "recurrent dropout")


def _same_weights_without(cell, **options):
    """(a model with ``options``, the same model and weights without them)."""
    plain = _model(lambda: [FORMULATIONS[cell](U, return_sequences=True)])
    model = _model(lambda: [FORMULATIONS[cell](U, return_sequences=True, **options)])
    model.set_weights(plain.get_weights())
    return model, plain


@pytest.mark.parametrize("cell", sorted(FORMULATIONS))
def test_recurrent_dropout_leaves_inference_alone(cell):
    """predict, evaluate and inference gradients are those of the layer without dropout."""
    model, plain = _same_weights_without(cell, dropout=0.3, recurrent_dropout=0.5)
    x = _floats()
    y = _targets(model, x)
    np.testing.assert_allclose(model.predict(x, verbose=0), plain.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    loss, grad = loss_and_gradients(model, x, y)
    plain_loss, plain_grad = loss_and_gradients(plain, x, y)
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("cell", sorted(FORMULATIONS))
def test_a_negligible_recurrent_dropout_trains_as_none(cell):
    """A rate of 1e-12 keeps every unit at scale 1 / (1 - 1e-12) == 1 in float32: training mode
    then gives the gradients of the layer without dropout (the per-gate path against the plain one)."""
    model, plain = _same_weights_without(cell, recurrent_dropout=1e-12)
    x = _floats()
    y = _targets(model, x)
    loss, grad = loss_and_gradients(model, x, y, training=True)
    plain_loss, plain_grad = loss_and_gradients(plain, x, y, training=True)
    assert loss == pytest.approx(plain_loss, rel=1e-6)
    np.testing.assert_allclose(grad, plain_grad, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("rate", [0.2, 0.6])
def test_recurrent_dropout_drops_the_expected_fraction_once_per_sequence(rate):
    """A linear SimpleRNN with identity kernels run on [1, 0, 0]: its last state is h1 * m * m, m the
    recurrent mask. One mask per sequence, kept for every step, makes it 0 with probability ``rate``
    and 1 / (1 - rate)^2 otherwise (masks redrawn per step would drop 1 - (1 - rate)^2). The mse
    against 0 is then (kept fraction) / (1 - rate)^4."""
    n, u = 4000, 8
    inp = L.Input(shape=(3, u))
    rnn = L.SimpleRNN(u, activation="linear", use_bias=False, recurrent_dropout=rate)
    model = keras.Model(inp, rnn(inp))
    model.set_weights([np.eye(u, dtype=np.float32)] * 2)
    model.compile(loss="mse", optimizer="sgd")
    x = np.zeros((n, 3, u), np.float32)
    x[:, 0] = 1
    keras.utils.set_random_seed(3)
    loss, _ = loss_and_gradients(model, x, np.zeros((n, u), np.float32), training=True)
    kept = loss * (1 - rate) ** 4
    sigma = np.sqrt(rate * (1 - rate) / (n * u))
    assert abs(kept - (1 - rate)) < 5 * sigma, (kept, 1 - rate)


def test_each_cell_runs_its_own_direction_functions_compiled_once():
    """A layer's op calls its own cell's direction functions (each compiled for that cell alone, a third
    to a half of the compile time of one function for all three), once per signature whatever the
    layer's options (a second call site with a literal argument once compiled each twice), under
    names a compile worker can find them by."""
    from fastnn.kernels import prebuild
    from fastnn.kernels import program as P
    from fastnn.kernels.cpu.pointers import function_pointer
    from fastnn.kernels.kinds import recurrent as R
    x = _floats()
    for cell, name in ((R.LSTM, "lstm"), (R.GRU, "gru")):
        layer = CELLS[name.upper()]
        for body in (lambda: [layer(U, go_backwards=True)], lambda: [L.Bidirectional(layer(U))]):
            model = _model(body)
            loss, grad = loss_and_gradients(model, x, _targets(model, x))
            assert np.isfinite(loss) and np.abs(grad).max() > 0
            program = model._program_for_training()
            rec = next(r for r in program.prog if r[P.KIND] == R.KINDS[cell])
            c = program.ints[rec[P.IAUX]:rec[P.IAUX] + R.N_INTS]
            assert c[R.I_CELL] == cell
            forward, backward = getattr(R, f"direction_forward_{name}"), getattr(R, f"direction_backward_{name}")
            assert c[R.I_FORWARD_FN] == function_pointer(forward, R.DIRECTION_FORWARD_SIG).address
            assert c[R.I_BACKWARD_FN] == function_pointer(backward, R.DIRECTION_BACKWARD_SIG).address
        for fn in (forward, backward, R.recurrent_forward, R.recurrent_backward):
            assert len(fn.overloads) == 1, (fn.py_func.__qualname__, list(fn.overloads))
            assert prebuild._resolve(fn.py_func.__module__, fn.py_func.__qualname__) is fn
