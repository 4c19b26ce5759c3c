"""Writes functional_reference.{npz,json} and models/functional_*.keras: Keras 3's functional API.

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_functional_reference.py

Cases (each model built after keras.backend.clear_session(), so layer names are
Keras's defaults from zero; inputs and Dense initial weights drawn here with
NumPy from fixed seeds and stored, then set into the Keras model):

- ``wide_deep``: Hands-On ML's wide & deep model (two unnamed inputs of 5 and 6
  features, Normalization layers adapted on the stored training data,
  concatenate, main Dense(1) and aux Dense(1) on hidden2), compiled with
  ``loss=("mse", "mse"), loss_weights=(0.9, 0.1), Adam(1e-3),
  metrics=["RootMeanSquaredError"]``; 3 epochs, batch 16, shuffle=False,
  validation_data.
- ``two_io``: named inputs ``num_a`` (4) / ``num_b`` (3) and named outputs
  ``class_output`` (softmax over 3, sparse_categorical_crossentropy, accuracy)
  and ``reg_output`` (Dense(1), mse, mae); trained with tuple data, and again
  from the same start with dict-keyed data.
- ``keys/*``: History / evaluate(return_dict=True) keys for other ways of
  writing loss and metrics on the two_io model (1 epoch each, with validation).
- ``shared``: one Dense called on two inputs, outputs added, then Dense(1).
- ``subclassed``: the book's WideAndDeepModel subclass (two outputs), same data
  and initial weights as ``wide_deep``, same compile: its History keys differ.
- ``submodel``: keras.Model(model.inputs, model.layers[i].output) of the trained
  wide & deep model and of a Sequential MLP, and their predictions.

For every trained model: initial and final weights in ``model.weights`` order
(json ``<case>.weights`` lists their paths, names, shapes), the exact
``history.history``, ``evaluate`` (list and return_dict), predictions, the
summary text, ``get_config()`` and a ``.keras`` file saved by Keras.
"""
import traceback

import numpy as np

from _common import HERE, history_dict, keras_module, summary_text, weight_records, write
from wide_and_deep import wide_and_deep_model_class

keras, tf = keras_module()
L = keras.layers
MODELS = HERE / "models"
EPOCHS, BATCH = 3, 16


def glorot(rng, shape):
    lim = np.sqrt(6.0 / (shape[0] + shape[1]))
    return rng.uniform(-lim, lim, shape).astype(np.float32)


def set_dense_init(model, rng):
    """Every Dense layer gets NumPy-drawn kernel and small non-zero bias."""
    for layer in model.layers:
        if isinstance(layer, L.Dense):
            k, b = layer.get_weights()
            layer.set_weights([glorot(rng, k.shape), rng.uniform(-0.1, 0.1, b.shape).astype(np.float32)])


def record_model(name, model, arrays, info, stage):
    info.setdefault(name, {})[f"weights_{stage}"] = weight_records(model, f"{name}/{stage}", arrays)
    if stage == "init":   # before compile/fit: no "Optimizer params" line yet
        info[name]["summary_untrained"] = summary_text(model)


def record_static(name, model, info):
    d = info.setdefault(name, {})
    d["layer_names"] = [layer.name for layer in model.layers]
    d["layer_classes"] = [type(layer).__name__ for layer in model.layers]
    d["input_names"] = [t._keras_history[0].name for t in model.inputs]   # model.inputs order
    d["output_layer_names"] = [t._keras_history[0].name for t in model.outputs]
    d["output_names"] = list(model.output_names)
    d["summary_trained"] = summary_text(model)
    d["config"] = model.get_config()


def outputs_list(pred):
    if isinstance(pred, dict):
        return {k: np.asarray(v) for k, v in pred.items()}
    if isinstance(pred, (list, tuple)):
        return [np.asarray(p) for p in pred]
    return np.asarray(pred)


def store_pred(arrays, key, pred):
    if isinstance(pred, dict):
        for k, v in pred.items():
            arrays[f"{key}/{k}"] = v
        return {"type": "dict", "keys": list(pred)}
    if isinstance(pred, list):
        for i, v in enumerate(pred):
            arrays[f"{key}/{i}"] = v
        return {"type": "list", "len": len(pred)}
    arrays[key] = pred
    return {"type": "array"}


# ---------------------------------------------------------------- wide & deep
def wide_deep_model():
    input_wide = L.Input(shape=[5])
    input_deep = L.Input(shape=[6])
    norm_wide = L.Normalization()
    norm_deep = L.Normalization()
    norm_w = norm_wide(input_wide)
    norm_d = norm_deep(input_deep)
    hidden1 = L.Dense(30, activation="relu")(norm_d)
    hidden2 = L.Dense(30, activation="relu")(hidden1)
    concat = L.concatenate([norm_w, hidden2])
    output = L.Dense(1)(concat)
    aux_output = L.Dense(1)(hidden2)
    model = keras.Model(inputs=[input_wide, input_deep], outputs=[output, aux_output])
    return model, norm_wide, norm_deep


def wide_deep(arrays, info):
    rng = np.random.default_rng(16)
    x = rng.standard_normal((96 + 8, 8)).astype(np.float32) * np.array([1, 2, 0.5, 3, 1, 1, 4, 0.2], np.float32) + 1.0
    y = (x[:, :1] * 0.5 - x[:, 3:4] * 0.3 + np.sin(x[:, 6:7]) + 0.1 * rng.standard_normal((len(x), 1))).astype(np.float32)
    xw, xd = x[:, :5], x[:, 2:]
    tr, va, new = slice(0, 64), slice(64, 96), slice(96, 104)
    for part, s in (("train", tr), ("valid", va), ("new", new)):
        arrays[f"wide_deep/x_wide_{part}"] = xw[s]
        arrays[f"wide_deep/x_deep_{part}"] = xd[s]
        arrays[f"wide_deep/y_{part}"] = y[s]
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model, norm_wide, norm_deep = wide_deep_model()
    norm_wide.adapt(xw[tr])
    norm_deep.adapt(xd[tr])
    set_dense_init(model, rng)
    record_model("wide_deep", model, arrays, info, "init")
    init = model.get_weights()
    d = info["wide_deep"]
    # The book's compile line: Keras 3.15 refuses a one-element metrics list for two outputs (at fit).
    try:
        model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1),
                      optimizer=keras.optimizers.Adam(learning_rate=1e-3), metrics=["RootMeanSquaredError"])
        model.fit((xw[tr], xd[tr]), (y[tr], y[tr]), epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
        d["book_metrics_error"] = None
    except Exception as e:  # noqa: BLE001
        d["book_metrics_error"] = f"{type(e).__name__}: {e}"
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model, norm_wide, norm_deep = wide_deep_model()
    norm_wide.adapt(xw[tr])
    norm_deep.adapt(xd[tr])
    model.set_weights(init)
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1),
                  optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[["RootMeanSquaredError"], ["RootMeanSquaredError"]])
    hist = model.fit((xw[tr], xd[tr]), (y[tr], y[tr]), epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0,
                     validation_data=((xw[va], xd[va]), (y[va], y[va])))
    d["compile"] = ('loss=("mse","mse"), loss_weights=(0.9,0.1), optimizer=Adam(1e-3), '
                    'metrics=[["RootMeanSquaredError"],["RootMeanSquaredError"]]')
    d["history"] = history_dict(hist)
    d["evaluate_list"] = [float(v) for v in model.evaluate((xw[va], xd[va]), (y[va], y[va]), verbose=0)]
    d["evaluate_dict"] = {k: float(v) for k, v in model.evaluate((xw[va], xd[va]), (y[va], y[va]), verbose=0,
                                                                  return_dict=True).items()}
    d["metrics_names"] = list(model.metrics_names)
    record_model("wide_deep", model, arrays, info, "final")
    pred = outputs_list(model.predict((xw[new], xd[new]), verbose=0))
    d["predict"] = store_pred(arrays, "wide_deep/predict_new", pred)
    record_static("wide_deep", model, info)
    model.save(MODELS / "functional_wide_deep.keras")
    d["keras_file"] = "models/functional_wide_deep.keras (predictions: wide_deep/predict_new/*)"
    # loss given once for two outputs, and metrics as one list: keys only.
    keys = {}
    for label, kwargs in {
        "loss='mse' (single, two outputs)": dict(loss="mse"),
        "loss=('mse','mse'), metrics=['RootMeanSquaredError'] (the book)": dict(loss=("mse", "mse"), metrics=["RootMeanSquaredError"]),
        "loss=('mse','mse'), metrics=['RootMeanSquaredError','RootMeanSquaredError']": dict(loss=("mse", "mse"), metrics=["RootMeanSquaredError", "RootMeanSquaredError"]),
        "loss=('mse','mse'), loss_weights=(0.9,0.1), no metrics": dict(loss=("mse", "mse"), loss_weights=(0.9, 0.1)),
        "loss='mse', loss_weights=[0.9,0.1] (single loss, two weights)": dict(loss="mse", loss_weights=[0.9, 0.1]),
        "loss=['mse','mse'], metrics=['mae','RootMeanSquaredError']": dict(loss=["mse", "mse"], metrics=["mae", "RootMeanSquaredError"]),
        "loss=['mse','mse'], metrics=[['mae'],['RootMeanSquaredError']]": dict(loss=["mse", "mse"], metrics=[["mae"], ["RootMeanSquaredError"]]),
        "loss=['mse','mse'], metrics=['mae', None]": dict(loss=["mse", "mse"], metrics=["mae", None]),
    }.items():
        keys[label] = fit_keys(lambda: wide_deep_model()[0], kwargs, (xw[tr], xd[tr]), (y[tr], y[tr]),
                               ((xw[va], xd[va]), (y[va], y[va])))
    d["key_variants"] = keys
    return model


def fit_keys(build, kwargs, x, y, val):
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    try:
        model = build()
        model.compile(optimizer="adam", **kwargs)
        hist = model.fit(x, y, epochs=1, batch_size=BATCH, shuffle=False, verbose=0, validation_data=val)
        ev = model.evaluate(val[0], val[1], verbose=0, return_dict=True)
        return {"history_keys": list(hist.history), "evaluate_dict_keys": list(ev),
                "evaluate_list_len": len(model.evaluate(val[0], val[1], verbose=0)),
                "metrics_names": list(model.metrics_names)}
    except Exception as e:  # noqa: BLE001 -- what Keras refuses is a fact worth recording
        return {"error": f"{type(e).__name__}: {e}"[:800]}


# ---------------------------------------------------------------- two in, two out
def two_io_model(dict_outputs=False):
    a = L.Input(shape=(4,), name="num_a")
    b = L.Input(shape=(3,), name="num_b")
    h = L.Dense(16, activation="relu")(L.concatenate([a, b]))
    hb = L.Dense(8, activation="tanh")(b)
    cls = L.Dense(3, activation="softmax", name="class_output")(h)
    reg = L.Dense(1, name="reg_output")(L.concatenate([h, hb]))
    outputs = {"class_output": cls, "reg_output": reg} if dict_outputs else [cls, reg]
    return keras.Model(inputs=[a, b], outputs=outputs, name="two_io")


def two_io(arrays, info):
    rng = np.random.default_rng(1616)
    n = 64 + 32 + 8
    xa = rng.standard_normal((n, 4)).astype(np.float32)
    xb = rng.standard_normal((n, 3)).astype(np.float32)
    ycls = (np.argmax(xa[:, :3] + 0.5 * xb, axis=1)).astype(np.int64)
    yreg = (xa[:, 3:4] * xb[:, :1] + 0.2 * rng.standard_normal((n, 1))).astype(np.float32)
    tr, va, new = slice(0, 64), slice(64, 96), slice(96, 104)
    for part, s in (("train", tr), ("valid", va), ("new", new)):
        arrays[f"two_io/x_a_{part}"] = xa[s]
        arrays[f"two_io/x_b_{part}"] = xb[s]
        arrays[f"two_io/y_class_{part}"] = ycls[s]
        arrays[f"two_io/y_reg_{part}"] = yreg[s]
    compile_kw = dict(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                      loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], ["mae"]])
    d = info.setdefault("two_io", {})
    d["compile"] = ('optimizer=Adam(1e-2), loss=["sparse_categorical_crossentropy","mse"], '
                    'metrics=[["accuracy"],["mae"]]')
    init = None
    for mode in ("tuple", "dict"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = two_io_model()
        if init is None:
            set_dense_init(model, rng)
            init = model.get_weights()
            record_model("two_io", model, arrays, info, "init")
        else:
            model.set_weights(init)
        model.compile(**dict(compile_kw, optimizer=keras.optimizers.Adam(learning_rate=1e-2)))
        if mode == "tuple":
            x = lambda s: (xa[s], xb[s])  # noqa: E731
            y = lambda s: (ycls[s], yreg[s])  # noqa: E731
        else:
            x = lambda s: {"num_a": xa[s], "num_b": xb[s]}  # noqa: E731
            y = lambda s: {"class_output": ycls[s], "reg_output": yreg[s]}  # noqa: E731
        hist = model.fit(x(tr), y(tr), epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0,
                         validation_data=(x(va), y(va)))
        m = d.setdefault(mode, {})
        m["history"] = history_dict(hist)
        m["evaluate_list"] = [float(v) for v in model.evaluate(x(va), y(va), verbose=0)]
        m["evaluate_dict"] = {k: float(v) for k, v in model.evaluate(x(va), y(va), verbose=0, return_dict=True).items()}
        m["metrics_names"] = list(model.metrics_names)
        record_model("two_io", model, arrays, info, f"final_{mode}")
        m["predict"] = store_pred(arrays, f"two_io/predict_new_{mode}", outputs_list(model.predict(x(new), verbose=0)))
    record_static("two_io", model, info)
    model.save(MODELS / "functional_two_io.keras")
    d["keras_file"] = "models/functional_two_io.keras (the dict-trained model; predictions: two_io/predict_new_dict/*)"

    # other ways of writing loss / metrics: the keys Keras produces.
    xt, yt = (xa[tr], xb[tr]), (ycls[tr], yreg[tr])
    val = ((xa[va], xb[va]), (ycls[va], yreg[va]))
    yd = {"class_output": ycls[tr], "reg_output": yreg[tr]}
    vald = ({"num_a": xa[va], "num_b": xb[va]}, {"class_output": ycls[va], "reg_output": yreg[va]})
    sce = "sparse_categorical_crossentropy"
    variants = {
        "loss list, metrics list of lists [['accuracy'],['mae']]":
            (two_io_model, dict(loss=[sce, "mse"], metrics=[["accuracy"], ["mae"]]), xt, yt, val),
        "loss list, metrics list of lists with 2 metrics [['accuracy','sparse_categorical_crossentropy'],['mae','RootMeanSquaredError']]":
            (two_io_model, dict(loss=[sce, "mse"], metrics=[["accuracy", sce], ["mae", "RootMeanSquaredError"]]), xt, yt, val),
        "loss list, metrics list of strings ['accuracy','mae']":
            (two_io_model, dict(loss=[sce, "mse"], metrics=["accuracy", "mae"]), xt, yt, val),
        "loss list, metrics flat list ['mae'] (one for two outputs)":
            (two_io_model, dict(loss=[sce, "mse"], metrics=["mae"]), xt, yt, val),
        "loss dict, metrics dict of lists":
            (two_io_model, dict(loss={"class_output": sce, "reg_output": "mse"},
                                metrics={"class_output": ["accuracy"], "reg_output": ["mae"]}), xt, yd, vald),
        "loss dict, metrics dict of strings":
            (two_io_model, dict(loss={"class_output": sce, "reg_output": "mse"},
                                metrics={"class_output": "accuracy", "reg_output": "mae"}), xt, yd, vald),
        "loss dict, metrics dict with only class_output":
            (two_io_model, dict(loss={"class_output": sce, "reg_output": "mse"},
                                metrics={"class_output": ["accuracy"]}), xt, yd, vald),
        "loss dict, no metrics, tuple targets":
            (two_io_model, dict(loss={"class_output": sce, "reg_output": "mse"}), xt, yt, val),
        "loss dict + loss_weights dict, metrics list of lists":
            (two_io_model, dict(loss={"class_output": sce, "reg_output": "mse"},
                                loss_weights={"class_output": 1.0, "reg_output": 0.5},
                                metrics=[["accuracy"], ["mae"]]), xt, yd, vald),
        "loss list, metrics objects [[SparseCategoricalAccuracy()],[MeanAbsoluteError()]]":
            (two_io_model, dict(loss=[sce, "mse"], metrics=[[keras.metrics.SparseCategoricalAccuracy()],
                                                            [keras.metrics.MeanAbsoluteError()]]), xt, yt, val),
        "dict outputs model, loss dict, metrics dict":
            (lambda: two_io_model(dict_outputs=True), dict(loss={"class_output": sce, "reg_output": "mse"},
                                                          metrics={"class_output": ["accuracy"], "reg_output": ["mae"]}),
             xt, yd, vald),
    }
    d["key_variants"] = {label: fit_keys(b, kw, x_, y_, v_) for label, (b, kw, x_, y_, v_) in variants.items()}
    # what predict returns for a dict-outputs model
    keras.backend.clear_session()
    m2 = two_io_model(dict_outputs=True)
    p = m2.predict((xa[new], xb[new]), verbose=0)
    d["dict_outputs_predict_type"] = f"{type(p).__name__} keys={list(p) if isinstance(p, dict) else None}"
    d["dict_outputs_output_names"] = list(m2.output_names)


# ---------------------------------------------------------------- shared layer
def shared(arrays, info):
    rng = np.random.default_rng(1617)
    xa = rng.standard_normal((64 + 8, 4)).astype(np.float32)
    xb = rng.standard_normal((64 + 8, 4)).astype(np.float32)
    y = (xa[:, :1] - xb[:, 1:2] + 0.1 * rng.standard_normal((len(xa), 1))).astype(np.float32)
    arrays.update({"shared/x_a": xa[:64], "shared/x_b": xb[:64], "shared/y": y[:64],
                   "shared/x_a_new": xa[64:], "shared/x_b_new": xb[64:]})
    keras.backend.clear_session()
    a = L.Input(shape=(4,), name="left")
    b = L.Input(shape=(4,), name="right")
    dense = L.Dense(5, activation="tanh", name="shared_dense")
    added = L.Add()([dense(a), dense(b)])
    out = L.Dense(1)(added)
    model = keras.Model([a, b], out, name="shared")
    set_dense_init(model, rng)
    record_model("shared", model, arrays, info, "init")
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    hist = model.fit((xa[:64], xb[:64]), y[:64], epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0)
    d = info["shared"]
    d["compile"] = "optimizer=SGD(0.05), loss='mse'"
    d["history"] = history_dict(hist)
    record_model("shared", model, arrays, info, "final")
    arrays["shared/predict_new"] = np.asarray(model.predict((xa[64:], xb[64:]), verbose=0))
    record_static("shared", model, info)
    model.save(MODELS / "functional_shared.keras")
    d["keras_file"] = "models/functional_shared.keras (predictions: shared/predict_new)"


# ---------------------------------------------------------------- submodels
def submodels(arrays, info, wd_model):
    d = info.setdefault("submodel", {})
    xw, xd = arrays["wide_deep/x_wide_new"], arrays["wide_deep/x_deep_new"]
    for i in range(len(wd_model.layers)):
        layer = wd_model.layers[i]
        key = f"wide_deep_layers_{i}"
        try:
            sub = keras.Model(wd_model.inputs, layer.output)
            p = np.asarray(sub.predict((xw, xd), verbose=0))
            arrays[f"submodel/{key}"] = p
            d[key] = {"layer": layer.name, "shape": list(p.shape), "n_weights": len(sub.weights),
                      "layer_names": [lyr.name for lyr in sub.layers]}
        except Exception as e:  # noqa: BLE001
            d[key] = {"layer": layer.name, "error": f"{type(e).__name__}: {e}"[:500]}
    d["wide_deep_layers_3_note"] = "keras.Model(model.inputs, model.layers[3].output) == hidden1 (the first Dense)"
    # a Sequential MLP: keras.Model(model.inputs, model.layers[0].output)
    keras.backend.clear_session()
    rng = np.random.default_rng(1618)
    x = rng.standard_normal((32, 6)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    seq = keras.Sequential([L.Input(shape=(6,)), L.Dense(8, activation="relu"), L.Dense(3, activation="softmax")])
    set_dense_init(seq, rng)
    seq.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    seq.fit(x, y, epochs=2, batch_size=16, shuffle=False, verbose=0)
    sub = keras.Model(seq.inputs, seq.layers[0].output)
    arrays["submodel/seq_x"] = x
    arrays["submodel/seq_weights_0"], arrays["submodel/seq_weights_1"] = seq.layers[0].get_weights()
    arrays["submodel/seq_layers_0"] = np.asarray(sub.predict(x, verbose=0))
    d["seq"] = {"layers": [lyr.name for lyr in seq.layers], "sub_layers": [lyr.name for lyr in sub.layers],
                "sub_name": sub.name, "shares_variables": sub.layers[1].kernel is seq.layers[0].kernel,
                "sub_summary": summary_text(sub), "sub_config": sub.get_config()}


# ---------------------------------------------------------------- subclassed wide & deep
WideAndDeepModel = wide_and_deep_model_class(keras)


def subclassed(arrays, info):
    xw, xd, y = (arrays[f"wide_deep/{k}_train"] for k in ("x_wide", "x_deep", "y"))
    vw, vd, vy = (arrays[f"wide_deep/{k}_valid"] for k in ("x_wide", "x_deep", "y"))
    init = {r["path"]: arrays[f"wide_deep/init/{r['index']}"] for r in info["wide_deep"]["weights_init"]}
    d = info.setdefault("subclassed", {})

    def build():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = WideAndDeepModel(30, activation="relu", name="my_cool_model")
        model.norm_layer_wide.adapt(xw)
        model.norm_layer_deep.adapt(xd)
        model((xw[:1], xd[:1]))
        for attr, src in (("hidden1", "dense"), ("hidden2", "dense_1"), ("main_output", "dense_2"),
                          ("aux_output", "dense_3")):
            getattr(model, attr).set_weights([init[f"{src}/kernel"], init[f"{src}/bias"]])
        return model

    # the book's compile line for the subclassed model
    model = build()
    try:
        model.compile(loss="mse", loss_weights=[0.9, 0.1], optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                      metrics=["RootMeanSquaredError"])
        model.fit((xw, xd), (y, y), epochs=1, batch_size=BATCH, shuffle=False, verbose=0)
        d["book_compile_error"] = None
    except Exception as e:  # noqa: BLE001
        d["book_compile_error"] = f"{type(e).__name__}: {e}"[:800]
    model = build()
    d["weights_init"] = weight_records(model, "subclassed/init", arrays)
    d["summary_untrained"] = summary_text(model)
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[["RootMeanSquaredError"], ["RootMeanSquaredError"]])
    hist = model.fit((xw, xd), (y, y), epochs=EPOCHS, batch_size=BATCH, shuffle=False, verbose=0,
                     validation_data=((vw, vd), (vy, vy)))
    d["compile"] = info["wide_deep"]["compile"]
    d["history"] = history_dict(hist)
    d["evaluate_dict"] = {k: float(v) for k, v in model.evaluate((vw, vd), (vy, vy), verbose=0,
                                                                  return_dict=True).items()}
    d["evaluate_list"] = [float(v) for v in model.evaluate((vw, vd), (vy, vy), verbose=0)]
    d["weights_final"] = weight_records(model, "subclassed/final", arrays)
    pred = model.predict((arrays["wide_deep/x_wide_new"], arrays["wide_deep/x_deep_new"]), verbose=0)
    d["predict"] = store_pred(arrays, "subclassed/predict_new", outputs_list(list(pred) if isinstance(pred, tuple) else pred))
    d["predict_return_type"] = type(pred).__name__
    d["layer_names"] = [layer.name for layer in model.layers]
    d["summary_trained"] = summary_text(model)
    try:
        d["get_config"] = model.get_config()
    except Exception as e:  # noqa: BLE001
        d["get_config"] = f"{type(e).__name__}: {e}"[:500]


def main():
    MODELS.mkdir(exist_ok=True)
    arrays, info = {}, {}
    wd = wide_deep(arrays, info)
    submodels(arrays, info, wd)
    two_io(arrays, info)
    shared(arrays, info)
    subclassed(arrays, info)
    # the saved files load back in Keras and predict what was stored
    checks = {}
    for fname, x, key in (("functional_wide_deep.keras", (arrays["wide_deep/x_wide_new"], arrays["wide_deep/x_deep_new"]),
                           "wide_deep/predict_new"),
                          ("functional_two_io.keras", (arrays["two_io/x_a_new"], arrays["two_io/x_b_new"]),
                           "two_io/predict_new_dict"),
                          ("functional_shared.keras", (arrays["shared/x_a_new"], arrays["shared/x_b_new"]), "shared/predict_new")):
        p = outputs_list(keras.saving.load_model(MODELS / fname).predict(x, verbose=0))
        p = p if isinstance(p, list) else [p]
        refs = [arrays[k] for k in sorted(arrays) if k == key or k.startswith(key + "/")]
        checks[fname] = float(max(np.max(np.abs(a - b)) for a, b in zip(p, refs)))
    info["reload_max_abs_diff"] = checks
    write("functional_reference", arrays, info, keras)


if __name__ == "__main__":
    try:
        main()
    except Exception:
        traceback.print_exc()
        raise
