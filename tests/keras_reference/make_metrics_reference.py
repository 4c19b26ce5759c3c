"""Writes metrics_reference.{npz,json}: Keras 3's AUC, Precision, Recall,
TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy and
MeanAbsolutePercentageError (issue 21).

Run with a Python that has Keras 3 (TensorFlow backend); the committed files
were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_metrics_reference.py      # ~15 s

``cases``: each metric (class and constructor arguments) fed the batches of
one data set by ``update_state``, with and without sample weights; the json
holds ``result()`` after every batch and ``get_config()``. Data sets
(``data/<set>/<what>/<batch>`` in the npz): predictions quantised to
multiples of 0.05, so some sit exactly on thresholds (0.5, k/199 never, k/4)
and some tie; targets with every class, all ones and all zeros. ``functions``:
the per-sample values of the function forms. ``models``: four small models
compiled with these metrics by name and as objects, trained 3 epochs (batch
16, shuffle=False, validation_data) from stored weights: History's keys and
values, and evaluate's dict.
"""
import numpy as np

from _common import history_dict, keras_module, write

keras, tf = keras_module()
L = keras.layers
M = keras.metrics
BATCHES = (8, 8, 5)


def split(a):
    out, at = [], 0
    for n in BATCHES:
        out.append(a[at:at + n])
        at += n
    return out


def data_sets(rng):
    n = sum(BATCHES)
    q = lambda a: (np.round(a * 20) / 20).astype(np.float32)      # multiples of 0.05
    weights = rng.uniform(0, 2, n).astype(np.float32)
    weights[[2, 11]] = 0.0
    sets = {
        # 3 binary labels per sample (multi-label, or 3 columns of one binary task)
        "binary": (rng.integers(0, 2, (n, 3)).astype(np.float32), q(rng.uniform(0, 1, (n, 3)))),
        "binary_one_column": (rng.integers(0, 2, (n, 1)).astype(np.float32), q(rng.uniform(0, 1, (n, 1)))),
        "all_ones": (np.ones((n, 1), np.float32), q(rng.uniform(0, 1, (n, 1)))),
        "all_zeros": (np.zeros((n, 1), np.float32), q(rng.uniform(0, 1, (n, 1)))),
        "logits": (rng.integers(0, 2, (n, 3)).astype(np.float32), rng.normal(0, 2, (n, 3)).astype(np.float32)),
        # 7 classes: one-hot targets, softmax-like scores with ties at the top-k boundary
        "onehot": (np.eye(7, dtype=np.float32)[rng.integers(0, 7, n)], q(rng.uniform(0, 1, (n, 7)))),
        "sparse": (rng.integers(0, 7, n).astype(np.int64), q(rng.uniform(0, 1, (n, 7)))),
        "sorted_ids": (rng.integers(0, 7, n).astype(np.int64),
                       np.argsort(-rng.uniform(0, 1, (n, 7)), axis=1).astype(np.float32)),
        "regression": (rng.normal(0, 2, (n, 2)).astype(np.float32), rng.normal(0, 2, (n, 2)).astype(np.float32)),
    }
    sets["onehot"][1][3] = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5]               # all tied
    sets["onehot"][1][4, :3] = sets["onehot"][1][4, np.argmax(sets["onehot"][0][4])]   # ties with the target
    sets["regression"][0][[1, 5]] = 0.0                                          # MAPE's epsilon
    return sets, weights


CASES = {
    "auc": ("AUC", {}, "binary"),
    "auc_pr": ("AUC", {"curve": "PR"}, "binary"),
    "auc_prgain": ("AUC", {"curve": "PRGAIN"}, "binary"),
    "auc_minoring": ("AUC", {"summation_method": "minoring"}, "binary"),
    "auc_majoring": ("AUC", {"summation_method": "majoring"}, "binary"),
    "auc_pr_minoring": ("AUC", {"curve": "PR", "summation_method": "minoring"}, "binary"),
    "auc_pr_majoring": ("AUC", {"curve": "PR", "summation_method": "majoring"}, "binary"),
    "auc_num_thresholds": ("AUC", {"num_thresholds": 7}, "binary"),
    "auc_thresholds": ("AUC", {"thresholds": [0.9, 0.1, 0.35, 0.5]}, "binary"),
    "auc_even_thresholds": ("AUC", {"thresholds": [0.25, 0.5, 0.75]}, "binary"),
    "auc_multi_label": ("AUC", {"multi_label": True}, "binary"),
    "auc_multi_label_pr": ("AUC", {"multi_label": True, "curve": "PR", "label_weights": [0.2, 0.8, 1.0]}, "binary"),
    "auc_label_weights": ("AUC", {"label_weights": [0.2, 0.8, 1.0]}, "binary"),
    "auc_from_logits": ("AUC", {"from_logits": True}, "logits"),
    "auc_one_column": ("AUC", {}, "binary_one_column"),
    "auc_all_ones": ("AUC", {}, "all_ones"),
    "auc_all_zeros": ("AUC", {}, "all_zeros"),
    "auc_pr_all_ones": ("AUC", {"curve": "PR"}, "all_ones"),
    "auc_pr_all_zeros": ("AUC", {"curve": "PR"}, "all_zeros"),
    "precision": ("Precision", {}, "binary"),
    "precision_threshold": ("Precision", {"thresholds": 0.35}, "binary"),
    "precision_thresholds": ("Precision", {"thresholds": [0.2, 0.5, 0.8]}, "binary"),
    "precision_even_thresholds": ("Precision", {"thresholds": [0.0, 0.5, 1.0]}, "binary"),
    "precision_top_k": ("Precision", {"top_k": 2}, "onehot"),
    "precision_class_id": ("Precision", {"class_id": 1}, "binary"),
    "precision_top_k_class_id": ("Precision", {"top_k": 2, "class_id": 3}, "onehot"),
    "precision_all_zeros": ("Precision", {}, "all_zeros"),
    "recall": ("Recall", {}, "binary"),
    "recall_threshold": ("Recall", {"thresholds": 0.35}, "binary"),
    "recall_thresholds": ("Recall", {"thresholds": [0.2, 0.5, 0.8]}, "binary"),
    "recall_even_thresholds": ("Recall", {"thresholds": [0.0, 0.5, 1.0]}, "binary"),
    "recall_top_k": ("Recall", {"top_k": 2}, "onehot"),
    "recall_class_id": ("Recall", {"class_id": 1}, "binary"),
    "recall_all_ones": ("Recall", {}, "all_ones"),
    "recall_all_zeros": ("Recall", {}, "all_zeros"),
    "top_k": ("TopKCategoricalAccuracy", {}, "onehot"),
    "top_k_2": ("TopKCategoricalAccuracy", {"k": 2}, "onehot"),
    "top_k_1": ("TopKCategoricalAccuracy", {"k": 1}, "onehot"),
    "sparse_top_k": ("SparseTopKCategoricalAccuracy", {}, "sparse"),
    "sparse_top_k_2": ("SparseTopKCategoricalAccuracy", {"k": 2}, "sparse"),
    "sparse_top_k_sorted_ids": ("SparseTopKCategoricalAccuracy", {"k": 3, "from_sorted_ids": True}, "sorted_ids"),
    "mape": ("MeanAbsolutePercentageError", {}, "regression"),
}


def metric_cases(arrays, info, sets, weights):
    for name, (y_true, y_pred) in sets.items():
        for b, (t, p, w) in enumerate(zip(split(y_true), split(y_pred), split(weights))):
            arrays[f"data/{name}/y_true/{b}"], arrays[f"data/{name}/y_pred/{b}"] = t, p
            arrays[f"data/{name}/sample_weight/{b}"] = w
    info["batches"] = list(BATCHES)
    info["cases"] = {}
    for case, (cls, config, data) in CASES.items():
        record = {"class": cls, "config": config, "data": data}
        for weighted in (False, True):
            keras.backend.clear_session()       # the metric's default name, not one numbered across the run
            metric = getattr(M, cls)(**config)
            results = []
            for t, p, w in zip(*(split(a) for a in (*sets[data], weights))):
                metric.update_state(t, p, sample_weight=w if weighted else None)
                results.append(np.asarray(metric.result()).tolist())
            record["weighted" if weighted else "unweighted"] = results
        record["get_config"] = metric.get_config()
        info["cases"][case] = record


def function_forms(arrays, info, sets):
    info["functions"] = {}
    for fn, data, kwargs in (("top_k_categorical_accuracy", "onehot", {"k": 2}),
                             ("sparse_top_k_categorical_accuracy", "sparse", {"k": 2}),
                             ("mean_absolute_percentage_error", "regression", {})):
        arrays[f"functions/{fn}"] = np.asarray(getattr(M, fn)(*sets[data], **kwargs))
        info["functions"][fn] = {"data": data, "kwargs": kwargs}


def models(arrays, info):
    rng = np.random.default_rng(21)
    x = rng.normal(0, 1, (64, 4)).astype(np.float32)
    arrays["models/x"] = x
    labels = (x @ np.array([1.0, -1.0, 0.5, 0.0]) + rng.normal(0, 0.5, 64) > 0).astype(np.float32)[:, None]
    classes = np.argmax(x @ rng.normal(0, 1, (4, 5)) + rng.normal(0, 1, (64, 5)), axis=1).astype(np.int64)
    target = (x @ np.array([[1.0], [0.5], [-1.0], [2.0]]) + 3.0).astype(np.float32)
    specs = {
        "binary": (lambda: [L.Dense(3, activation="relu"), L.Dense(1, activation="sigmoid")], "binary_crossentropy",
                   lambda: ["auc", "precision", "recall", M.AUC(curve="PR", name="pr_auc"),
                            M.Precision(thresholds=0.3, name="precision_at_03")], labels),
        "sparse": (lambda: [L.Dense(5, activation="softmax")], "sparse_categorical_crossentropy",
                   lambda: ["sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy(k=2, name="top2")],
                   classes),
        "categorical": (lambda: [L.Dense(5, activation="softmax")], "categorical_crossentropy",
                        lambda: ["top_k_categorical_accuracy", M.TopKCategoricalAccuracy(k=2, name="top2"),
                                 M.Recall(top_k=2)], np.eye(5, dtype=np.float32)[classes]),
        "regression": (lambda: [L.Dense(1)], "mse", lambda: ["mape", "mean_absolute_percentage_error",
                                                            M.MeanAbsolutePercentageError()], target),
    }
    info["models"] = {}
    for name, (layers, loss, metrics, y) in specs.items():
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((4,)), *layers()])
        init = [rng.normal(0, 0.5, w.shape).astype(np.float32) for w in model.get_weights()]
        model.set_weights(init)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss=loss, metrics=metrics())
        hist = model.fit(x[:48], y[:48], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(x[48:], y[48:]))
        for i, w in enumerate(init):
            arrays[f"models/{name}/init/{i}"] = w
        arrays[f"models/{name}/y"] = y
        info["models"][name] = {"history": history_dict(hist), "history_keys": list(hist.history),
                                "evaluate": model.evaluate(x[48:], y[48:], verbose=0, return_dict=True)}


def main():
    rng = np.random.default_rng(2101)
    arrays, info = {}, {}
    sets, weights = data_sets(rng)
    metric_cases(arrays, info, sets, weights)
    function_forms(arrays, info, sets)
    models(arrays, info)
    write("metrics_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
