"""Helpers shared by the make_*_reference.py scripts (run under real Keras 3, never by fastnn).

Each script stores arrays in an ``.npz`` and everything else (names, History
dicts, summaries, configs) in a ``.json`` beside it, so fastnn's tests read
plain NumPy/JSON and need no Keras.
"""
import json
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

HERE = Path(__file__).resolve().parent


def keras_module():
    import keras
    import tensorflow as tf
    tf.config.experimental.enable_op_determinism()
    tf.get_logger().setLevel("ERROR")
    return keras, tf


def summary_text(model):
    """model.summary() exactly as print_fn receives it (one string, rich box layout)."""
    parts = []
    model.summary(print_fn=lambda text, line_break=True: parts.append(text))
    return "".join(parts)


def weight_records(model, prefix, out):
    """Stores every model.weights variable as out[f"{prefix}/{i}"]; returns their descriptions."""
    recs = []
    for i, v in enumerate(model.weights):
        out[f"{prefix}/{i}"] = np.asarray(v.numpy())
        recs.append({"index": i, "path": v.path, "name": v.name, "shape": list(v.shape),
                     "dtype": str(v.dtype), "trainable": bool(v.trainable)})
    return recs


def to_jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if hasattr(obj, "numpy"):
        return to_jsonable(np.asarray(obj.numpy()))
    return obj


def history_dict(hist):
    return {k: [float(x) for x in v] for k, v in hist.history.items()}


def write(name, arrays, info, keras):
    info = dict(info)
    info["keras_version"] = keras.__version__
    info["backend"] = keras.backend.backend()
    arrays = dict(arrays)
    arrays["keras_version"] = np.array(keras.__version__)
    npz = HERE / f"{name}.npz"
    np.savez_compressed(npz, **arrays)
    js = HERE / f"{name}.json"
    js.write_text(json.dumps(to_jsonable(info), indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {npz.name} ({len(arrays)} arrays, {npz.stat().st_size} B), {js.name} ({js.stat().st_size} B)")
