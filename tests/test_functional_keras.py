"""Graph models against real Keras 3: the numbers, names and orders of
``tests/keras_reference/functional_reference.*`` (written by Keras 3.15.1 /
TF 2.21 through ``make_functional_reference.py``).

The models are built here exactly as the script builds them, after the
session's layer names are reset (Keras's ``clear_session``), set to the
script's initial weights and trained 3 epochs with ``shuffle=False`` and
batch 16. Losses, metrics and weights must agree within float32 round-off
accumulated over 12 steps; names, key lists and orders exactly.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn.layers.base import reset_names
from keras_reference.wide_and_deep import wide_and_deep_model_class

HERE = Path(__file__).resolve().parent / "keras_reference"
REF = np.load(HERE / "functional_reference.npz")
INFO = json.loads((HERE / "functional_reference.json").read_text())
L = keras.layers
# float32 round-off after 12 optimizer steps: the observed gaps are below 1e-6 on weights of size ~1
# and 2e-6 relative on losses and metrics.
RTOL, ATOL = 1e-5, 1e-6
# Predictions sum ~30 products of such weights with inputs of size ~3: a gap of 1e-6 per weight
# gives up to ~1e-5 at the output (observed: 5.5e-6 on the two-output regressor).
PRED_ATOL = 1e-5


def ref(case, key):
    return REF[f"{case}/{key}"]


def init_weights(case, which="init"):
    return [ref(case, f"{which}/{r['index']}") for r in INFO[case]["weights_init"]]


def wide_deep_model():
    """Hands-On ML's wide & deep model, as the reference script builds it."""
    reset_names()
    input_wide, input_deep = L.Input(shape=[5]), L.Input(shape=[6])
    norm_wide, norm_deep = L.Normalization(), L.Normalization()
    norm_w, norm_d = norm_wide(input_wide), norm_deep(input_deep)
    hidden1 = L.Dense(30, activation="relu")(norm_d)
    hidden2 = L.Dense(30, activation="relu")(hidden1)
    concat = L.concatenate([norm_w, hidden2])
    output = L.Dense(1)(concat)
    aux_output = L.Dense(1)(hidden2)
    return keras.Model(inputs=[input_wide, input_deep], outputs=[output, aux_output])


def two_io_model(dict_outputs=False):
    reset_names()
    a, b = L.Input(shape=(4,), name="num_a"), L.Input(shape=(3,), name="num_b")
    h = L.Dense(16, activation="relu")(L.concatenate([a, b]))
    hb = L.Dense(8, activation="tanh")(b)
    cls = L.Dense(3, activation="softmax", name="class_output")(h)
    reg = L.Dense(1, name="reg_output")(L.concatenate([h, hb]))
    outputs = {"class_output": cls, "reg_output": reg} if dict_outputs else [cls, reg]
    return keras.Model(inputs=[a, b], outputs=outputs, name="two_io")


def shared_model():
    reset_names()
    a, b = L.Input(shape=(4,), name="left"), L.Input(shape=(4,), name="right")
    dense = L.Dense(5, activation="tanh", name="shared_dense")
    out = L.Dense(1)(L.Add()([dense(a), dense(b)]))
    return keras.Model([a, b], out, name="shared")


def wide_deep_data(part):
    return (ref("wide_deep", f"x_wide_{part}"), ref("wide_deep", f"x_deep_{part}")), \
        (ref("wide_deep", f"y_{part}"), ref("wide_deep", f"y_{part}"))


def two_io_data(part, as_dict=False):
    x = (ref("two_io", f"x_a_{part}"), ref("two_io", f"x_b_{part}"))
    y = (ref("two_io", f"y_class_{part}"), ref("two_io", f"y_reg_{part}"))
    if as_dict:
        return dict(zip(("num_a", "num_b"), x)), dict(zip(("class_output", "reg_output"), y))
    return x, y


def assert_history(history, want):
    assert list(history) == list(want)      # Keras's keys in Keras's (sorted) order
    for key, values in want.items():
        np.testing.assert_allclose(history[key], values, rtol=RTOL, atol=ATOL, err_msg=key)


def assert_weights(model, case, which):
    got = model.get_weights()
    assert len(got) == len(INFO[case]["weights_init"])
    for i, value in enumerate(got):
        np.testing.assert_allclose(value, ref(case, f"{which}/{i}"), rtol=RTOL, atol=ATOL,
                                   err_msg=INFO[case]["weights_init"][i]["path"])


# -- structure -----------------------------------------------------------------
@pytest.mark.parametrize("case,build", [("wide_deep", wide_deep_model), ("two_io", two_io_model),
                                        ("shared", shared_model)])
def test_layers_weights_and_names_are_in_keras_order(case, build):
    model = build()
    info = INFO[case]
    assert [layer.name for layer in model.layers] == info["layer_names"]
    assert [type(layer).__name__ for layer in model.layers] == info["layer_classes"]
    assert [i._keras_history[0].name for i in model.inputs] == info["input_names"]
    assert model.output_names == info["output_names"]
    # model.weights follows model.layers, non-trainable Normalization statistics in place
    assert [w.name for w in model.weights] == [r["path"] for r in info["weights_init"]]
    assert [list(w.shape) for w in model.weights] == [r["shape"] for r in info["weights_init"]]
    assert [w.trainable for w in model.weights] == [r["trainable"] for r in info["weights_init"]]


@pytest.fixture(autouse=True)
def eighty_columns(monkeypatch):
    """Keras sized its tables for 80 columns (output not a terminal); so does fastnn here, whatever
    terminal runs the tests (``shutil.get_terminal_size`` reads COLUMNS first)."""
    monkeypatch.setenv("COLUMNS", "80")


def summary_of(model):
    out = []
    model.summary(print_fn=out.append)
    assert len(out) == 1        # Keras hands print_fn the whole table at once
    return out[0]


@pytest.mark.parametrize("case,build", [("wide_deep", wide_deep_model), ("two_io", two_io_model),
                                        ("shared", shared_model)])
def test_summary_of_a_graph_is_keras_text_with_connected_to(case, build):
    # rich's box layout at 76 columns (80 when not a terminal, less 4), names wrapped, links cut with '…'
    assert summary_of(build()) == INFO[case]["summary_untrained"]


# -- training --------------------------------------------------------------------
def test_wide_and_deep_trains_as_keras():
    model = wide_deep_model()
    model.set_weights(init_weights("wide_deep"))
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[["RootMeanSquaredError"], ["RootMeanSquaredError"]])
    (x, y), valid = wide_deep_data("train"), wide_deep_data("valid")
    history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=valid)
    info = INFO["wide_deep"]
    assert_history(history.history, info["history"])
    assert_weights(model, "wide_deep", "final")
    got = model.evaluate(*valid, verbose=0)
    np.testing.assert_allclose(got, info["evaluate_list"], rtol=RTOL, atol=ATOL)
    logs = model.evaluate(*valid, verbose=0, return_dict=True)
    assert list(logs) == list(info["evaluate_dict"])
    np.testing.assert_allclose(list(logs.values()), list(info["evaluate_dict"].values()), rtol=RTOL, atol=ATOL)
    assert summary_of(model) == info["summary_trained"]     # with Adam's 2,416 optimizer params
    pred = model.predict(wide_deep_data("new")[0], verbose=0)
    assert isinstance(pred, list) and len(pred) == 2
    for i, p in enumerate(pred):
        np.testing.assert_allclose(p, ref("wide_deep", f"predict_new/{i}"), rtol=RTOL, atol=PRED_ATOL)


@pytest.mark.parametrize("mode", ["tuple", "dict"])
def test_two_input_two_output_classifier_regressor_trains_as_keras(mode):
    model = two_io_model()
    model.set_weights(init_weights("two_io"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                  loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], ["mae"]])
    x, y = two_io_data("train", mode == "dict")
    valid = two_io_data("valid", mode == "dict")
    history = model.fit(x, y, epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=valid)
    info = INFO["two_io"][mode]
    assert_history(history.history, info["history"])
    assert_weights(model, "two_io", f"final_{mode}")
    np.testing.assert_allclose(model.evaluate(*valid, verbose=0), info["evaluate_list"], rtol=RTOL, atol=ATOL)
    logs = model.evaluate(*valid, verbose=0, return_dict=True)
    assert list(logs) == list(info["evaluate_dict"])
    pred = model.predict(two_io_data("new", mode == "dict")[0], verbose=0)
    for i, p in enumerate(pred):
        np.testing.assert_allclose(p, ref("two_io", f"predict_new_{mode}/{i}"), rtol=RTOL, atol=PRED_ATOL)


def test_shared_layer_trains_as_keras():
    model = shared_model()
    model.set_weights(init_weights("shared"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    x = (ref("shared", "x_a"), ref("shared", "x_b"))
    history = model.fit(x, ref("shared", "y"), epochs=3, batch_size=16, shuffle=False, verbose=0)
    assert_history(history.history, INFO["shared"]["history"])
    assert_weights(model, "shared", "final")
    assert summary_of(model) == INFO["shared"]["summary_trained"]      # SGD: iterations and learning rate
    np.testing.assert_allclose(model.predict((ref("shared", "x_a_new"), ref("shared", "x_b_new")), verbose=0),
                               ref("shared", "predict_new"), rtol=RTOL, atol=PRED_ATOL)


# -- History keys for the ways Keras users write loss and metrics ----------------------
SCE = "sparse_categorical_crossentropy"
LOSS_DICT = {"class_output": SCE, "reg_output": "mse"}
TWO_IO_VARIANTS = {
    "loss list, metrics list of lists [['accuracy'],['mae']]":
        (False, dict(loss=[SCE, "mse"], metrics=[["accuracy"], ["mae"]]), False),
    "loss list, metrics list of strings ['accuracy','mae']":
        (False, dict(loss=[SCE, "mse"], metrics=["accuracy", "mae"]), False),
    "loss list, metrics flat list ['mae'] (one for two outputs)":
        (False, dict(loss=[SCE, "mse"], metrics=["mae"]), False),
    "loss dict, metrics dict of lists":
        (False, dict(loss=LOSS_DICT, metrics={"class_output": ["accuracy"], "reg_output": ["mae"]}), True),
    "loss dict, metrics dict of strings":
        (False, dict(loss=LOSS_DICT, metrics={"class_output": "accuracy", "reg_output": "mae"}), True),
    "loss dict, metrics dict with only class_output":
        (False, dict(loss=LOSS_DICT, metrics={"class_output": ["accuracy"]}), True),
    "loss dict, no metrics, tuple targets": (False, dict(loss=LOSS_DICT), False),
    "loss dict + loss_weights dict, metrics list of lists":
        (False, dict(loss=LOSS_DICT, loss_weights={"class_output": 1.0, "reg_output": 0.5},
                     metrics=[["accuracy"], ["mae"]]), True),
    "loss list, metrics objects [[SparseCategoricalAccuracy()],[MeanAbsoluteError()]]":
        (False, dict(loss=[SCE, "mse"], metrics=[[keras.metrics.SparseCategoricalAccuracy()],
                                                  [keras.metrics.MeanAbsoluteError()]]), False),
    "dict outputs model, loss dict, metrics dict":
        (True, dict(loss=LOSS_DICT, metrics={"class_output": ["accuracy"], "reg_output": ["mae"]}), True),
}
WIDE_DEEP_VARIANTS = {
    "loss='mse' (single, two outputs)": dict(loss="mse"),
    "loss=('mse','mse'), metrics=['RootMeanSquaredError'] (the book)":
        dict(loss=("mse", "mse"), metrics=["RootMeanSquaredError"]),
    "loss=('mse','mse'), metrics=['RootMeanSquaredError','RootMeanSquaredError']":
        dict(loss=("mse", "mse"), metrics=["RootMeanSquaredError", "RootMeanSquaredError"]),
    "loss=('mse','mse'), loss_weights=(0.9,0.1), no metrics": dict(loss=("mse", "mse"), loss_weights=(0.9, 0.1)),
    "loss=['mse','mse'], metrics=['mae','RootMeanSquaredError']":
        dict(loss=["mse", "mse"], metrics=["mae", "RootMeanSquaredError"]),
    "loss=['mse','mse'], metrics=[['mae'],['RootMeanSquaredError']]":
        dict(loss=["mse", "mse"], metrics=[["mae"], ["RootMeanSquaredError"]]),
    "loss=['mse','mse'], metrics=['mae', None]": dict(loss=["mse", "mse"], metrics=["mae", None]),
}


def _assert_keys_as_keras(model, compile_kwargs, x, y, valid, want):
    def run():
        model.compile(optimizer="adam", **compile_kwargs)
        history = model.fit(x, y, epochs=1, batch_size=16, shuffle=False, verbose=0, validation_data=valid)
        return history, model.evaluate(*valid, verbose=0, return_dict=True), model.evaluate(*valid, verbose=0)

    if "error" in want:
        # Keras refuses a flat metrics list shorter than the outputs; so does fastnn, naming the outputs
        with pytest.raises(ValueError, match="as many entries as the model has outputs"):
            run()
        return
    history, logs, values = run()
    assert list(history.history) == want["history_keys"]
    assert list(logs) == want["evaluate_dict_keys"]
    assert len(values) == want["evaluate_list_len"]


@pytest.mark.parametrize("label", sorted(TWO_IO_VARIANTS))
def test_two_io_history_keys_are_keras_for_each_way_of_compiling(label):
    dict_outputs, kwargs, dict_targets = TWO_IO_VARIANTS[label]
    model = two_io_model(dict_outputs)
    (x, y), valid = two_io_data("train"), two_io_data("valid", dict_targets)
    if dict_targets:
        y = two_io_data("train", True)[1]
    _assert_keys_as_keras(model, kwargs, x, y, valid, INFO["two_io"]["key_variants"][label])


@pytest.mark.parametrize("label", sorted(WIDE_DEEP_VARIANTS))
def test_wide_deep_history_keys_are_keras_for_each_way_of_compiling(label):
    model = wide_deep_model()
    _assert_keys_as_keras(model, WIDE_DEEP_VARIANTS[label], *wide_deep_data("train"), wide_deep_data("valid"),
                          INFO["wide_deep"]["key_variants"][label])


def test_one_loss_with_per_output_weights_is_refused_as_keras_does():
    # Keras 3.15: "loss_weights must match the number of losses, got 1 losses and 2 weights."
    model = wide_deep_model()
    with pytest.raises(ValueError, match="got 1 losses and 2 weights"):
        model.compile(loss="mse", loss_weights=[0.9, 0.1], optimizer="adam")


def test_dict_outputs_predict_a_dict_keyed_by_output_name():
    model = two_io_model(dict_outputs=True)
    pred = model.predict(two_io_data("new")[0], verbose=0)
    assert INFO["two_io"]["dict_outputs_predict_type"] == "dict keys=['class_output', 'reg_output']"
    assert isinstance(pred, dict) and list(pred) == ["class_output", "reg_output"]
    assert model.output_names == INFO["two_io"]["dict_outputs_output_names"]


# -- models built from a trained model's tensors ----------------------------------------
def test_submodels_of_the_trained_wide_and_deep_predict_as_keras():
    model = wide_deep_model()
    model.set_weights(init_weights("wide_deep", "final"))
    x_new = wide_deep_data("new")[0]
    for i, layer in enumerate(model.layers):
        info = INFO["submodel"][f"wide_deep_layers_{i}"]
        sub = keras.Model(model.inputs, layer.output)
        assert layer.name == info["layer"]
        assert [l.name for l in sub.layers] == info["layer_names"]
        assert len(sub.weights) == info["n_weights"]
        if isinstance(layer, L.InputLayer):
            continue    # a model that only hands back an input computes nothing; fastnn refuses to run it
        np.testing.assert_allclose(sub.predict(x_new, verbose=0), ref("submodel", f"wide_deep_layers_{i}"),
                                   rtol=RTOL, atol=PRED_ATOL, err_msg=layer.name)


def test_submodel_of_a_sequential_shares_its_weights_and_prints_as_keras():
    info = INFO["submodel"]["seq"]
    reset_names()
    seq = keras.Sequential([L.Input(shape=(6,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    seq.layers[0].set_weights([ref("submodel", "seq_weights_0"), ref("submodel", "seq_weights_1")])
    assert [l.name for l in seq.layers] == info["layers"]
    # Keras's Sequential builds a functional model inside, which takes the name "functional" first
    sub = keras.Model(seq.inputs, seq.layers[0].output, name=info["sub_name"])
    assert [l.name for l in sub.layers] == info["sub_layers"]
    assert sub.layers[1] is seq.layers[0] and info["shares_variables"]
    np.testing.assert_allclose(sub.predict(ref("submodel", "seq_x"), verbose=0), ref("submodel", "seq_layers_0"),
                               rtol=RTOL, atol=PRED_ATOL)
    assert summary_of(sub) == info["sub_summary"]       # a chain: three columns, the input's row first
    config = json.loads(json.dumps(sub.get_config()))
    assert config == info["sub_config"]


def test_models_are_named_as_keras_numbers_them():
    reset_names()
    x = L.Input((3,))
    names = [keras.Model(x, L.Dense(1)(x)).name for _ in range(2)]
    assert names == ["functional", "functional_1"]


# the reference script's own class, built on fastnn
WideAndDeepModel = wide_and_deep_model_class(keras)


def test_subclassed_wide_and_deep_trains_and_logs_as_keras():
    info = INFO["subclassed"]
    reset_names()
    model = WideAndDeepModel(30, activation="relu", name="my_cool_model")
    (xw, xd), y = wide_deep_data("train")
    model.norm_layer_wide.adapt(xw)
    model.norm_layer_deep.adapt(xd)
    model((xw[:1], xd[:1]))      # traced on the first call, as the script builds it
    assert [l.name for l in model.layers] == info["layer_names"]
    # model.weights in Keras's order (attribute order); the paths differ only by Keras's model prefix
    assert [w.name for w in model.weights] == [r["path"].removeprefix("my_cool_model/") for r in info["weights_init"]]
    model.set_weights([ref("subclassed", f"init/{i}") for i in range(len(info["weights_init"]))])
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[["RootMeanSquaredError"], ["RootMeanSquaredError"]])
    valid = wide_deep_data("valid")
    history = model.fit((xw, xd), y, epochs=3, batch_size=16, shuffle=False, verbose=0, validation_data=valid)
    # unnamed outputs: 'mse_loss' is both outputs' loss key and holds the aux output's, as in Keras
    assert_history(history.history, info["history"])
    np.testing.assert_allclose(model.evaluate(*valid, verbose=0), info["evaluate_list"], rtol=RTOL, atol=ATOL)
    logs = model.evaluate(*valid, verbose=0, return_dict=True)
    assert list(logs) == list(info["evaluate_dict"])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, ref("subclassed", f"final/{i}"), rtol=RTOL, atol=ATOL)
    for i, p in enumerate(model.predict(wide_deep_data("new")[0], verbose=0)):
        np.testing.assert_allclose(p, ref("subclassed", f"predict_new/{i}"), rtol=RTOL, atol=PRED_ATOL)
