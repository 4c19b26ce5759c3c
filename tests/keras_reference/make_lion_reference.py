"""Writes lion_reference.{npz,json} and models/lion.keras: Keras 3's Lion optimizer
(issue 21) training a small MLP, its state in a .keras file, and training resumed
from that file.

Run with a Python that has Keras 3 (TensorFlow backend); the committed files were
written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_lion_reference.py      # ~5 s

``Sequential([Input((3,)), Dense(4, relu), Dense(2)])``, mse, ``Lion(learning_rate=0.01,
beta_1=0.8, beta_2=0.95)``, weights drawn with NumPy (``init/<i>``); one epoch of 3 steps
(batch 8, shuffle=False) gives ``epoch1/<i>``, then the model is saved (``models/lion.keras``)
and a second epoch gives ``epoch2/<i>``. The json lists the optimizer's variables (path,
shape) in the order Keras saves them, and History.
"""
import numpy as np

from _common import HERE, history_dict, keras_module, weight_records, write

keras, tf = keras_module()


def main():
    rng = np.random.default_rng(2102)
    x = rng.random((24, 3)).astype(np.float32)
    y = rng.random((24, 2)).astype(np.float32)
    arrays, info = {"x": x, "y": y}, {}
    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="relu"), keras.layers.Dense(2)])
    init = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
    model.set_weights(init)
    for i, w in enumerate(init):
        arrays[f"init/{i}"] = w
    model.compile(optimizer=keras.optimizers.Lion(learning_rate=0.01, beta_1=0.8, beta_2=0.95), loss="mse")
    first = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    info["epoch1_weights"] = weight_records(model, "epoch1", arrays)
    info["optimizer_variables"] = [{"path": v.path, "shape": list(v.shape)} for v in model.optimizer.variables]
    for i, v in enumerate(model.optimizer.variables):
        arrays[f"optimizer_epoch1/{i}"] = np.asarray(v.numpy())
    model.save(HERE / "models" / "lion.keras")
    second = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    weight_records(model, "epoch2", arrays)
    info["history"] = {"epoch1": history_dict(first), "epoch2": history_dict(second)}
    reloaded = keras.models.load_model(HERE / "models" / "lion.keras")
    info["reload_optimizer_config"] = reloaded.optimizer.get_config()
    write("lion_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
