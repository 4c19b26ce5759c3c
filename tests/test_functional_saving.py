"""Saving graph models in Keras 3's formats, both ways.

Files Keras 3.15.1 wrote (``keras_reference/models/functional_*.keras``)
must load and predict as Keras did, with their compile settings and
optimizer state; files fastnn writes must have the same config document and
HDF5 layout as Keras's (checked everywhere against the committed files), and
Keras itself must load them (checked by running a Keras interpreter when one
is installed: ``$KERAS_PYTHON``, else ``/tmp/kvenv/bin/python``).
Subclassed models save and load their weights; whole-model saving of a
subclassed model is refused with a clear error.
"""
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import fastnn as keras

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_functional_keras import (HERE, INFO, PRED_ATOL, RTOL, WideAndDeepModel, init_weights, ref,  # noqa: E402
                                   shared_model, two_io_data, two_io_model, wide_deep_data, wide_deep_model)

MODELS = HERE / "models"
L = keras.layers


def zip_json(path, name):
    with zipfile.ZipFile(path) as zf:
        return json.loads(zf.read(name))


def h5_layout(path):
    """{path: (kind, shape, dtype, attrs)} of the weights inside a .keras or .weights.h5 file."""
    if str(path).endswith(".keras"):
        import io
        data = io.BytesIO(zipfile.ZipFile(path).read("model.weights.h5"))
    else:
        data = path
    out = {}
    with h5py.File(data, "r") as h5:
        h5.visititems(lambda name, obj: out.__setitem__(name, (
            "dataset" if isinstance(obj, h5py.Dataset) else "group", getattr(obj, "shape", None),
            str(getattr(obj, "dtype", "")), dict(obj.attrs))))
    return out


def without_object_ids(obj):
    """``obj`` without the ``shared_object_id`` keys Keras adds when one object
    (a layer's dtype policy) appears twice in a saved file."""
    if isinstance(obj, dict):
        return {k: without_object_ids(v) for k, v in obj.items() if k != "shared_object_id"}
    if isinstance(obj, list):
        return [without_object_ids(v) for v in obj]
    return obj


def trained_wide_deep():
    model = wide_deep_model()
    model.set_weights(init_weights("wide_deep"))
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=keras.optimizers.Adam(learning_rate=1e-3),
                  metrics=[["RootMeanSquaredError"], ["RootMeanSquaredError"]])
    model.fit(*wide_deep_data("train"), epochs=3, batch_size=16, shuffle=False, verbose=0,
              validation_data=wide_deep_data("valid"))
    return model


def trained_two_io():
    model = two_io_model()
    model.set_weights(init_weights("two_io"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                  loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], ["mae"]])
    model.fit(*two_io_data("train", True), epochs=3, batch_size=16, shuffle=False, verbose=0,
              validation_data=two_io_data("valid", True))
    return model


def trained_shared():
    model = shared_model()
    model.set_weights(init_weights("shared"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    model.fit((ref("shared", "x_a"), ref("shared", "x_b")), ref("shared", "y"), epochs=3, batch_size=16,
              shuffle=False, verbose=0)
    return model


CASES = {  # file stem: (fastnn model trained as Keras's, new inputs, Keras's stored predictions)
    "wide_deep": (trained_wide_deep, lambda: wide_deep_data("new")[0],
                  lambda: [ref("wide_deep", f"predict_new/{i}") for i in range(2)]),
    "two_io": (trained_two_io, lambda: two_io_data("new", True)[0],
               lambda: [ref("two_io", f"predict_new_dict/{i}") for i in range(2)]),
    "shared": (trained_shared, lambda: (ref("shared", "x_a_new"), ref("shared", "x_b_new")),
               lambda: [ref("shared", "predict_new")]),
}


def as_list(pred):
    return pred if isinstance(pred, list) else [pred]


# -- Keras's files in fastnn -------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_functional_file_loads_and_predicts_as_keras(case):
    _, x_new, want = CASES[case]
    model = keras.models.load_model(MODELS / f"functional_{case}.keras")
    assert isinstance(model, keras.models.Functional)
    assert [layer.name for layer in model.layers] == INFO[case]["layer_names"]
    assert model.output_names == INFO[case]["output_names"]
    # Keras reloaded its own file and predicted exactly what it stored; fastnn's float32 maths agree to round-off
    assert INFO["reload_max_abs_diff"][f"functional_{case}.keras"] == 0.0
    for got, expected in zip(as_list(model.predict(x_new(), verbose=0)), want()):
        np.testing.assert_allclose(got, expected, rtol=RTOL, atol=PRED_ATOL)
    # compiled from the file, with the optimizer's state: 3 epochs of 4 steps
    assert model.compiled and model.optimizer.iterations == 12


def test_keras_wide_deep_file_restores_its_per_output_compile_settings():
    model = keras.models.load_model(MODELS / "functional_wide_deep.keras")
    config = zip_json(MODELS / "functional_wide_deep.keras", "config.json")["compile_config"]
    assert model.get_compile_config() == config
    # evaluating with the loaded settings gives Keras's numbers and keys (the weights are Keras's final ones)
    logs = model.evaluate(*wide_deep_data("valid"), verbose=0, return_dict=True)
    want = INFO["wide_deep"]["evaluate_dict"]
    assert list(logs) == list(want)
    np.testing.assert_allclose(list(logs.values()), list(want.values()), rtol=RTOL)


def test_keras_file_continues_training_from_its_optimizer_state():
    # Keras's file after 3 epochs, trained one more epoch here, equals fastnn's own 4 epochs from the start
    loaded = keras.models.load_model(MODELS / "functional_two_io.keras")
    loaded.fit(*two_io_data("train", True), epochs=1, batch_size=16, shuffle=False, verbose=0)
    model = trained_two_io()
    model.fit(*two_io_data("train", True), epochs=1, batch_size=16, shuffle=False, verbose=0)
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_allclose(a, b, rtol=RTOL, atol=2e-6)


def test_keras_weights_of_a_functional_model_load_into_the_same_graph(tmp_path):
    with zipfile.ZipFile(MODELS / "functional_shared.keras") as zf:
        (tmp_path / "shared.weights.h5").write_bytes(zf.read("model.weights.h5"))
    model = shared_model()
    model.load_weights(tmp_path / "shared.weights.h5")
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_array_equal(w, ref("shared", f"final/{i}"))


# -- fastnn's files have Keras's structure ------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_written_functional_file_is_keras_document_and_layout(case, tmp_path):
    model = CASES[case][0]()
    model.save(tmp_path / "m.keras")
    theirs = MODELS / f"functional_{case}.keras"
    with zipfile.ZipFile(tmp_path / "m.keras") as zo, zipfile.ZipFile(theirs) as zt:
        assert [i.filename for i in zo.infolist()] == [i.filename for i in zt.infolist()]
    # config.json: the same document, key by key and value by value (configs, nodes, input/output layers)
    ours, keras_record = zip_json(tmp_path / "m.keras", "config.json"), zip_json(theirs, "config.json")
    keras_record = without_object_ids(keras_record)
    assert ours == keras_record
    assert json.dumps(ours["config"]) == json.dumps(keras_record["config"])      # key order too
    assert h5_layout(tmp_path / "m.keras") == h5_layout(theirs)


def test_functional_get_config_is_keras_for_one_tensor_a_list_and_a_dict():
    # a model built from one output tensor stores output_layers flat, as Keras did
    assert INFO["shared"]["config"]["output_layers"] == ["dense", 0, 0]
    assert shared_model().get_config()["output_layers"] == ["dense", 0, 0]
    a, b = L.Input((3,), name="b_in"), L.Input((2,), name="a_in")
    o1 = L.Dense(1, name="zz")(L.concatenate([a, b]))
    o2 = L.Dense(2, name="yy")(b)
    config = keras.Model({"b_in": a, "a_in": b}, {"zz": o1, "yy": o2}).get_config()
    # Keras 3.15.1 writes dicts in the order given (seen by calling get_config on this model in Keras)
    assert config["input_layers"] == {"b_in": ["b_in", 0, 0], "a_in": ["a_in", 0, 0]}
    assert list(config["output_layers"].items()) == [("zz", ["zz", 0, 0]), ("yy", ["yy", 0, 0])]
    assert keras.Model([a], L.Dense(1)(a)).get_config()["input_layers"] == [["b_in", 0, 0]]


def test_node_indices_count_only_the_models_own_calls():
    # A layer called by another graph first: this model's call is its node 0, as Keras renumbers them
    dense = L.Dense(2, name="reused")
    dense(L.Input((3,)))
    x = L.Input((3,), name="x")
    model = keras.Model(x, L.Dense(1, name="head")(dense(x)))
    config = model.get_config()
    head = next(r for r in config["layers"] if r["name"] == "head")
    assert head["inbound_nodes"][0]["args"][0]["config"]["keras_history"] == ["reused", 0, 0]
    again = keras.Model.from_config(json.loads(json.dumps(config)))
    assert [l.name for l in again.layers] == ["x", "reused", "head"]


# -- round trips --------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(CASES))
def test_functional_round_trip_is_bit_identical_and_keeps_training_the_same(case, tmp_path):
    model = CASES[case][0]()
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert [l.name for l in loaded.layers] == [l.name for l in model.layers]
    for a, b in zip(loaded.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert loaded.get_compile_config() == model.get_compile_config()
    x_new = CASES[case][1]()
    for a, b in zip(as_list(loaded.predict(x_new, verbose=0)), as_list(model.predict(x_new, verbose=0))):
        np.testing.assert_array_equal(a, b)


def test_shared_layer_round_trips_with_its_two_calls(tmp_path):
    model = trained_shared()
    model.save_weights(tmp_path / "m.weights.h5")
    other = shared_model()
    other.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05), loss="mse")
    other.load_weights(tmp_path / "m.weights.h5")
    assert other.get_layer("add").input[0]._keras_history[0] is other.get_layer("shared_dense")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert other.optimizer.iterations == 12


def trained_subclassed():
    keras.utils.set_random_seed(0)
    model = WideAndDeepModel(name="my_cool_model")
    (xw, xd), y = wide_deep_data("train")
    model.norm_layer_wide.adapt(xw)
    model.norm_layer_deep.adapt(xd)
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer="adam")
    model.fit((xw, xd), y, epochs=2, batch_size=16, verbose=0)
    return model


def test_subclassed_weights_file_has_keras_attribute_layout_and_round_trips(tmp_path):
    model = trained_subclassed()
    model.save_weights(tmp_path / "m.weights.h5")
    layout = h5_layout(tmp_path / "m.weights.h5")
    # Keras 3.15 saves a subclassed model's layers under its attribute names in sorted order, the
    # 'layers' list taking its sorted place (numbered by class over all tracked layers, each layer saved
    # once): seen on Keras's own save of this class.
    groups = sorted(k for k, v in layout.items() if k.endswith("/vars") and not k.startswith("optimizer"))
    assert groups == ["aux_output/vars", "hidden1/vars", "hidden2/vars", "layers/dense_2/vars",
                      "layers/normalization/vars", "layers/normalization_1/vars"]
    assert layout["layers/dense_2/vars"][3] == {"name": model.main_output.name}
    assert layout["layers/normalization_1/vars/2"][2] == "int64"
    assert [layout[f"optimizer/vars/{i}"][1] for i in range(2, 6)] == [(6, 30), (6, 30), (30,), (30,)]
    other = WideAndDeepModel(name="my_cool_model")
    other.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer="adam")
    other.build([(None, 5), (None, 6)])
    other.load_weights(tmp_path / "m.weights.h5")
    for a, b in zip(other.get_weights(), model.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert other.optimizer.iterations == model.optimizer.iterations == 8
    x_new = wide_deep_data("new")[0]
    for a, b in zip(other.predict(x_new, verbose=0), model.predict(x_new, verbose=0)):
        np.testing.assert_array_equal(a, b)


def test_subclassed_model_cannot_be_saved_whole_and_says_why(tmp_path):
    model = trained_subclassed()
    with pytest.raises(NotImplementedError, match="save_weights"):
        model.save(tmp_path / "m.keras")
    assert not (tmp_path / "m.keras").exists()


def test_unbuilt_subclassed_model_refuses_weights_until_built(tmp_path):
    trained_subclassed().save_weights(tmp_path / "m.weights.h5")
    with pytest.raises(ValueError, match="not built"):
        WideAndDeepModel().load_weights(tmp_path / "m.weights.h5")


def test_damaged_functional_configs_are_refused_naming_the_problem(tmp_path):
    good = zip_json(MODELS / "functional_shared.keras", "config.json")
    with zipfile.ZipFile(MODELS / "functional_shared.keras") as zf:
        weights = zf.read("model.weights.h5")

    def variant(edit):
        record = json.loads(json.dumps(good))
        edit(record)
        return record

    layers = lambda r: r["config"]["layers"]     # noqa: E731  (left, right, shared_dense, add, dense)
    history = lambda r, i: layers(r)[i]["inbound_nodes"][0]["args"][0]  # noqa: E731
    cases = {
        "unknown_layer_ref": (lambda r: history(r, 4)["config"].update(keras_history=["nowhere", 0, 0]),
                              "'nowhere'"),
        "bad_ref": (lambda r: history(r, 4)["config"].update(keras_history=["add", -1, 0]), "layer name, node"),
        "never_called": (lambda r: history(r, 4)["config"].update(keras_history=["add", 5, 0]), "never happen"),
        "cycle": (lambda r: history(r, 2)["config"].update(keras_history=["dense", 0, 0]), "cycle"),
        "no_outputs": (lambda r: r["config"].pop("output_layers"), "output_layers"),
        "duplicate_name": (lambda r: layers(r)[4].update(name="add"), "unique name"),
        "node_kwargs": (lambda r: layers(r)[4]["inbound_nodes"][0].update(kwargs={"scale": 2.0}), "node"),
        "registered_model": (lambda r: r.update(registered_name="evil>Functional"), "not Keras"),
        "subclassed_model": (lambda r: r.update(class_name="WideAndDeepModel"), "load_weights"),
    }
    for name, (edit, message) in cases.items():
        path = tmp_path / f"{name}.keras"
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
            zf.writestr("config.json", json.dumps(variant(edit)))
            zf.writestr("model.weights.h5", weights)
        with pytest.raises(ValueError, match=f"{name}\\.keras.*{message}"):
            keras.models.load_model(path)


# -- Keras itself reads fastnn's files (where a Keras interpreter is installed) ------------------------
def _keras_python():
    python = os.environ.get("KERAS_PYTHON", "/tmp/kvenv/bin/python")
    if not Path(python).exists():
        pytest.skip(f"no Keras interpreter at {python} (set KERAS_PYTHON to one with keras 3 installed)")
    return python


KERAS_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras
    folder = sys.argv[1]
    data = np.load(folder + "/data.npz")
    xs = [data[f"x{i}"] for i in range(int(data["n_inputs"]))]
    out = {}
    model = keras.models.load_model(folder + "/m.keras")
    pred = model.predict(xs, verbose=0)
    pred = list(pred.values()) if isinstance(pred, dict) else pred if isinstance(pred, list) else [pred]
    out["predict"] = [np.asarray(p).tolist() for p in pred]
    out["layers"] = [layer.name for layer in model.layers]
    out["iterations"] = int(model.optimizer.iterations)
    out["optimizer"] = [np.asarray(v).tolist() for v in model.optimizer.variables]
    clone = keras.models.clone_model(model)
    clone.load_weights(folder + "/m.weights.h5")
    out["weights_file_predict"] = [np.asarray(p).tolist() for p in clone.predict(xs, verbose=0)] \\
        if int(data["n_outputs"]) > 1 else [np.asarray(clone.predict(xs, verbose=0)).tolist()]
    print(json.dumps(out))
""")


@pytest.mark.parametrize("case", sorted(CASES))
def test_keras_loads_what_fastnn_saves(case, tmp_path):
    python = _keras_python()
    model = CASES[case][0]()
    model.save(tmp_path / "m.keras")
    model.save_weights(tmp_path / "m.weights.h5")
    x_new = CASES[case][1]()
    xs = list(x_new.values()) if isinstance(x_new, dict) else list(x_new)
    np.savez(tmp_path / "data.npz", n_inputs=len(xs), n_outputs=len(model.outputs),
             **{f"x{i}": x for i, x in enumerate(xs)})
    (tmp_path / "check.py").write_text(KERAS_CHECK)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([python, str(tmp_path / "check.py"), str(tmp_path)], capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["layers"] == [layer.name for layer in model.layers]
    ours = as_list(model.predict(x_new, verbose=0))
    for theirs in (got["predict"], got["weights_file_predict"]):
        for a, b in zip(theirs, ours):
            np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=RTOL, atol=PRED_ATOL)
    # Keras's optimizer variables are fastnn's state, variable by variable, in Keras's order
    assert got["iterations"] == model.optimizer.iterations
    with h5py.File(tmp_path / "m.weights.h5", "r") as h5:
        stored = [h5[f"optimizer/vars/{i}"][()] for i in range(len(h5["optimizer/vars"]))]
    assert len(got["optimizer"]) == len(stored)
    for a, b in zip(got["optimizer"], stored):
        np.testing.assert_array_equal(np.asarray(a, dtype=b.dtype), b)


KERAS_SUBCLASS_CHECK = textwrap.dedent("""
    import json, sys
    import numpy as np
    import keras

    sys.path.insert(0, sys.argv[2])             # tests/keras_reference: the class fastnn's tests train
    from wide_and_deep import wide_and_deep_model_class
    WideAndDeepModel = wide_and_deep_model_class(keras)

    folder = sys.argv[1]
    data = np.load(folder + "/data.npz")
    model = WideAndDeepModel(name="my_cool_model")
    model.norm_layer_wide.adapt(data["x0"])     # builds the Normalization variables (then overwritten)
    model.norm_layer_deep.adapt(data["x1"])
    model((data["x0"][:1], data["x1"][:1]))
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer="adam")
    model.optimizer.build(model.trainable_variables)
    model.load_weights(folder + "/m.weights.h5")
    pred = model.predict((data["x0"], data["x1"]), verbose=0)
    print(json.dumps({"predict": [np.asarray(p).tolist() for p in pred],
                      "iterations": int(model.optimizer.iterations)}))
""")


def test_keras_loads_the_weights_of_a_subclassed_model_fastnn_saves(tmp_path):
    python = _keras_python()
    model = trained_subclassed()
    model.save_weights(tmp_path / "m.weights.h5")
    x_new = wide_deep_data("new")[0]
    np.savez(tmp_path / "data.npz", x0=x_new[0], x1=x_new[1])
    (tmp_path / "check.py").write_text(KERAS_SUBCLASS_CHECK)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")
    run = subprocess.run([python, str(tmp_path / "check.py"), str(tmp_path), str(HERE)], capture_output=True,
                         text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert got["iterations"] == model.optimizer.iterations == 8
    for a, b in zip(got["predict"], model.predict(x_new, verbose=0)):
        np.testing.assert_allclose(np.asarray(a, np.float32), b, rtol=RTOL, atol=PRED_ATOL)


def test_dict_inputs_and_outputs_round_trip_with_their_keys(tmp_path):
    a, b = L.Input((3,), name="b_in"), L.Input((2,), name="a_in")
    zz = L.Dense(1, name="zz")(L.concatenate([a, b]))
    yy = L.Dense(2, activation="softmax", name="yy")(b)
    model = keras.Model({"b_in": a, "a_in": b}, {"zz": zz, "yy": yy})
    model.compile(loss={"zz": "mse", "yy": "sparse_categorical_crossentropy"}, loss_weights={"zz": 1.0, "yy": 0.5},
                  metrics={"yy": ["accuracy"]}, optimizer="adam")
    rng = np.random.default_rng(0)
    x = {"b_in": rng.normal(size=(20, 3)), "a_in": rng.normal(size=(20, 2))}
    y = {"zz": rng.normal(size=(20, 1)), "yy": rng.integers(0, 2, 20)}
    model.fit(x, y, epochs=1, verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.get_config() == model.get_config()
    assert loaded.get_compile_config() == model.get_compile_config()
    got, want = loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    assert list(got) == list(want) == ["zz", "yy"]
    for k in want:
        np.testing.assert_array_equal(got[k], want[k])
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
