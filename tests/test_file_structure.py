"""The .keras files fastnn writes have the structure of the files Keras 3.15.1 wrote for the
same models (tests/keras_reference/models/: the CNN chapter's models, the recurrent models,
the custom-layer model), checked everywhere, Keras installed or not (issue 21): the same zip
members, the same config.json document (class names, layer configs, build configs, compile
config), the same metadata.json keys, and the same model.weights.h5 groups, datasets, shapes,
dtypes and attributes. Values that depend on training (weights, the optimizer's numbers) are
not compared; the reference scripts build each model after ``keras.backend.clear_session()``,
and so does each test here, so even the automatic names must agree.

(The functional models are checked the same way in test_functional_saving.py, the MLPs in
test_saving.py; Keras loading fastnn's files is checked where Keras is installed, here for a
model compiled with Lion and the metrics of issue 21.)
"""
import io
import json
import os
import subprocess
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import fastnn as keras
from fastnn.saving import registration

from _util import key_structure, without_object_ids
from test_custom_layers import Linear as _GuideLinear
from test_custom_losses import custom_mean_squared_error

REF = Path(__file__).parent / "keras_reference"
L = keras.layers


class Linear(_GuideLinear):
    """The guide's Linear; registered as make_ops_reference.py registered it while a
    file is written (a global registration would let other tests' loads find it)."""


def _cnn_chapter():
    return keras.Sequential([L.Input(shape=(16, 16, 1)), L.Conv2D(8, kernel_size=3, activation="relu", padding="same"),
                             L.MaxPooling2D(2), L.Conv2D(16, kernel_size=(3, 3), activation="relu", padding="same"),
                             L.MaxPooling2D(2), L.Flatten(), L.Dense(32, activation="relu"),
                             L.Dense(10, activation="softmax")], name="chapter")


def _cnn_variant():
    return keras.Sequential([L.Input(shape=(16, 16, 1)), L.Conv2D(8, 3, strides=2, padding="valid", activation="relu"),
                             L.AveragePooling2D(2), L.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
                             L.Flatten(), L.Dense(32, activation="relu"), L.Dense(10, activation="softmax")],
                            name="variant")


def _cnn_full_chapter():
    model = keras.Sequential()
    model.add(L.Conv2D(32, kernel_size=3, activation="relu", padding="same", input_shape=(28, 28, 1)))
    model.add(L.MaxPooling2D(2))
    model.add(L.Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"))
    model.add(L.MaxPooling2D(2))
    model.add(L.Flatten())
    model.add(L.Dense(100, activation="relu"))
    model.add(L.Dropout(0.4))
    model.add(L.Dense(10, activation="softmax"))
    return model


def _rnn(name, body):
    return lambda: keras.Sequential([L.Input(shape=(12,)), L.Embedding(50, 8), *body(),
                                     L.Dense(1, activation="sigmoid")], name=name)


def _ops_linear():
    return keras.Sequential([L.Input((6,)), Linear(8), L.Activation("tanh"), Linear(2)])


def _data(npz, x_key, y_key):
    arrays = np.load(REF / npz)
    return arrays[x_key][:16], arrays[y_key][:16]


CASES = {   # file stem: (model, compile arguments or None (saved untrained), training data)
    "cnn_chapter": (_cnn_chapter, lambda: dict(optimizer="adam", loss="sparse_categorical_crossentropy",
                                               metrics=["accuracy"]),
                    lambda: _data("cnn_reference.npz", "data/x", "data/y")),
    "cnn_variant": (_cnn_variant, lambda: dict(optimizer="adam", loss="sparse_categorical_crossentropy",
                                               metrics=["accuracy"]),
                    lambda: _data("cnn_reference.npz", "data/x", "data/y")),
    "cnn_full_chapter": (_cnn_full_chapter, None, None),
    **{f"rnn_{name}": (_rnn(name, body), lambda: dict(optimizer=keras.optimizers.RMSprop(learning_rate=1e-3),
                                                      loss="binary_crossentropy", metrics=["accuracy"]),
                       lambda: _data("recurrent_reference.npz", "data/x", "data/y"))
       for name, body in (("lstm", lambda: [L.LSTM(8)]), ("gru", lambda: [L.GRU(8)]),
                          ("bidirectional_lstm", lambda: [L.Bidirectional(L.LSTM(8))]))},
    "ops_linear": (_ops_linear, lambda: dict(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                                             loss=custom_mean_squared_error),
                   lambda: _data("ops_reference.npz", "data/x", "data/y")),
}


def written_by_fastnn(case, tmp_path):
    build, compile_args, data = CASES[case]
    path = tmp_path / f"{case}.keras"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(registration, "_REGISTERED", dict(registration._REGISTERED))
        keras.saving.register_keras_serializable(package="fastnn_reference", name="Linear")(Linear)
        keras.backend.clear_session()
        model = build()
        if compile_args is not None:
            model.compile(**compile_args())
            model.fit(*data(), batch_size=16, epochs=1, verbose=0)     # the optimizer's variables exist once it steps
        model.save(path)
    return path


def members(path):
    with zipfile.ZipFile(path) as zf:
        return [i.filename for i in zf.infolist()]


def document(path, name):
    with zipfile.ZipFile(path) as zf:
        return without_object_ids(json.loads(zf.read(name)))


def h5_layout(path):
    """{path: (group or dataset, shape, dtype, attributes)} of the archive's model.weights.h5."""
    out = {}
    with zipfile.ZipFile(path) as zf, h5py.File(io.BytesIO(zf.read("model.weights.h5")), "r") as h5:
        h5.visititems(lambda name, obj: out.__setitem__(name, (
            "dataset" if isinstance(obj, h5py.Dataset) else "group", getattr(obj, "shape", None),
            str(getattr(obj, "dtype", "")), {k: str(v) for k, v in obj.attrs.items()})))
    return out


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Each case written once for the tests below."""
    tmp = tmp_path_factory.mktemp("written")
    cache = {}

    def get(case):
        if case not in cache:
            cache[case] = written_by_fastnn(case, tmp)
        return cache[case]
    return get


@pytest.mark.parametrize("case", sorted(CASES))
def test_zip_members_and_metadata_keys_are_keras(case, written):
    ours, theirs = written(case), REF / "models" / f"{case}.keras"
    assert members(ours) == members(theirs)
    # fastnn adds its own version beside Keras's keys (Keras reads only its own)
    assert key_structure(document(ours, "metadata.json")) == {**key_structure(document(theirs, "metadata.json")),
                                                              "fastnn_version": "str"}


@pytest.mark.parametrize("case", sorted(CASES))
def test_config_document_is_keras(case, written):
    ours, theirs = document(written(case), "config.json"), document(REF / "models" / f"{case}.keras", "config.json")
    assert ours["config"] == theirs["config"]                    # layers, their configs and build configs
    assert json.dumps(ours["config"]) == json.dumps(theirs["config"])      # key order too
    assert {k: v for k, v in ours.items() if k != "compile_config"} == \
        {k: v for k, v in theirs.items() if k != "compile_config"}
    assert key_structure(ours.get("compile_config")) == key_structure(theirs.get("compile_config"))
    if theirs.get("compile_config"):
        ours_opt, theirs_opt = ours["compile_config"].pop("optimizer"), theirs["compile_config"].pop("optimizer")
        assert ours["compile_config"] == theirs["compile_config"]
        # the optimizer's record and settings; its learning rate is what the file was saved with
        assert {**ours_opt, "config": {}} == {**theirs_opt, "config": {}}
        assert ours_opt["config"] == theirs_opt["config"]


@pytest.mark.parametrize("case", sorted(CASES))
def test_weights_file_layout_is_keras(case, written):
    assert h5_layout(written(case)) == h5_layout(REF / "models" / f"{case}.keras")


KERAS_EVALUATE = """
import json, sys
import numpy as np
import keras
folder = sys.argv[1]
data = np.load(folder + "/data.npz")
model = keras.models.load_model(folder + "/m.keras")
print(json.dumps({"optimizer": type(model.optimizer).__name__, "iterations": int(model.optimizer.iterations),
                  "evaluate": model.evaluate(data["x"], data["y"], verbose=0, return_dict=True)}))
"""


def test_keras_loads_lion_and_the_new_metrics_and_evaluates_as_fastnn(tmp_path):
    """Where Keras is installed: a fastnn file compiled with Lion and the metrics of issue 21
    loads in Keras, with its optimizer state, and Keras's evaluate reports fastnn's values."""
    from test_functional_saving import _keras_python
    python = _keras_python()
    M = keras.metrics
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 4)).astype(np.float32)
    y = (x[:, :1] + 0.3 * rng.normal(size=(32, 1)) > 0).astype(np.float32)
    keras.backend.clear_session()
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="relu"), L.Dense(1, activation="sigmoid")])
    model.compile(optimizer=keras.optimizers.Lion(learning_rate=1e-3, beta_2=0.98), loss="binary_crossentropy",
                  metrics=["auc", M.AUC(curve="PR", name="pr_auc"), M.Precision(thresholds=0.3), "recall", "mape"])
    model.fit(x, y, epochs=2, batch_size=8, verbose=0)
    model.save(tmp_path / "m.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    (tmp_path / "check.py").write_text(KERAS_EVALUATE)
    run = subprocess.run([python, str(tmp_path / "check.py"), str(tmp_path)], capture_output=True, text=True,
                         timeout=300, env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES=""))
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert (got["optimizer"], got["iterations"]) == ("Lion", 8)
    ours = model.evaluate(x, y, verbose=0, return_dict=True)
    assert got["evaluate"].keys() == ours.keys()
    for key, value in ours.items():
        assert got["evaluate"][key] == pytest.approx(value, rel=1e-5), key
