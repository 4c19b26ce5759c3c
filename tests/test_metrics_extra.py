"""AUC, Precision, Recall, TopKCategoricalAccuracy, SparseTopKCategoricalAccuracy and
MeanAbsolutePercentageError (issue 21): against written-out formulas, against the values
Keras 3.15.1 gave for the same batches (keras_reference/make_metrics_reference.py), and
through compile/fit/evaluate with Keras's History keys.

Tolerance against Keras: counts of unweighted samples are exact in float32, weighted
counts and the sums over thresholds are float32 sums whose order differs from
TensorFlow's (a few ulp each over at most 200 terms): rtol 1e-5, atol 1e-6.
"""
import json
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras

REF = Path(__file__).parent / "keras_reference"
ARRAYS = np.load(REF / "metrics_reference.npz")
INFO = json.loads((REF / "metrics_reference.json").read_text())
M = keras.metrics
RTOL, ATOL = 1e-5, 1e-6


def batches(data):
    n = len(INFO["batches"])
    return [tuple(ARRAYS[f"data/{data}/{what}/{b}"] for what in ("y_true", "y_pred", "sample_weight"))
            for b in range(n)]


# -- against Keras -------------------------------------------------------------------------------
@pytest.mark.parametrize("case", sorted(INFO["cases"]))
def test_results_after_every_batch_equal_keras(case):
    ref = INFO["cases"][case]
    for weighted in (False, True):
        metric = getattr(M, ref["class"])(**ref["config"])
        for b, (t, p, w) in enumerate(batches(ref["data"])):
            metric.update_state(t, p, sample_weight=w if weighted else None)
            want = ref["weighted" if weighted else "unweighted"][b]
            np.testing.assert_allclose(metric.result(), want, rtol=RTOL, atol=ATOL,
                                       err_msg=f"{case} weighted={weighted} batch {b}")
        metric.reset_state()
        assert np.all(np.asarray(metric.result()) == 0)


@pytest.mark.parametrize("case", sorted(INFO["cases"]))
def test_config_is_keras_and_round_trips(case):
    ref = INFO["cases"][case]
    metric = getattr(M, ref["class"])(**ref["config"])
    config = metric.get_config()
    want = ref["get_config"]
    assert config.keys() == want.keys()
    for key, value in want.items():
        if isinstance(value, list):
            np.testing.assert_allclose(config[key], value, rtol=1e-7, err_msg=key)
        else:
            assert config[key] == value, key
    again = M.deserialize(M.serialize(metric))
    assert type(again) is type(metric) and again.get_config() == config
    t, p, w = batches(ref["data"])[0]
    metric.update_state(t, p, sample_weight=w)
    again.update_state(t, p, sample_weight=w)
    np.testing.assert_array_equal(again.result(), metric.result())


@pytest.mark.parametrize("fn", sorted(INFO["functions"]))
def test_function_forms_equal_keras(fn):
    ref = INFO["functions"][fn]
    y_true = np.concatenate([b[0] for b in batches(ref["data"])])
    y_pred = np.concatenate([b[1] for b in batches(ref["data"])])
    got = getattr(M, fn)(y_true, y_pred, **ref["kwargs"])
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, ARRAYS[f"functions/{fn}"], rtol=1e-6)


# -- against the written-out formulas ------------------------------------------------------------
def _counts(y_true, y_pred, thresholds, w):
    """TP, FP, TN, FN at each threshold t: a prediction is positive when p > t."""
    pos, neg = (y_true != 0), (y_true == 0)
    out = []
    for t in thresholds:
        above = y_pred > np.float32(t)
        out.append([np.sum(w * (pos & above)), np.sum(w * (neg & above)), np.sum(w * (neg & ~above)),
                    np.sum(w * (pos & ~above))])
    return np.array(out, dtype=np.float64).T


def test_roc_auc_is_the_trapezoid_rule_over_its_thresholds():
    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 2, 300).astype(np.float32)
    # away from every threshold k/9, where float32 rounding of p * 9 cannot decide
    y_pred = ((rng.integers(0, 9, 300) + rng.uniform(0.05, 0.95, 300)) / 9).astype(np.float32)
    w = rng.uniform(0, 1, 300)
    for kwargs, inner in (({"num_thresholds": 10}, [k / 9 for k in range(1, 9)]),
                          ({"thresholds": [0.7, 0.15, 0.4]}, [0.15, 0.4, 0.7])):
        thresholds = [-1e-7] + inner + [1 + 1e-7]
        tp, fp, tn, fn = _counts(y_true, y_pred, thresholds, w)
        tpr, fpr = tp / (tp + fn), fp / (fp + tn)
        want = np.sum((fpr[:-1] - fpr[1:]) * (tpr[:-1] + tpr[1:]) / 2)
        minoring = np.sum((fpr[:-1] - fpr[1:]) * np.minimum(tpr[:-1], tpr[1:]))
        precision = np.where(tp + fp > 0, tp / np.maximum(tp + fp, 1e-300), 0.0)
        pr_majoring = np.sum((tpr[:-1] - tpr[1:]) * np.maximum(precision[:-1], precision[1:]))
        for extra, value in (({}, want), ({"summation_method": "minoring"}, minoring),
                             ({"curve": "PR", "summation_method": "majoring"}, pr_majoring)):
            auc = M.AUC(**kwargs, **extra)
            auc.update_state(y_true[:100], y_pred[:100], sample_weight=w[:100])
            auc.update_state(y_true[100:], y_pred[100:], sample_weight=w[100:])
            assert auc.result() == pytest.approx(value, rel=1e-5), (kwargs, extra)
    assert 0.4 < want < 0.6    # random scores: about one half


def test_a_perfect_ranking_scores_one_and_a_reversed_one_zero():
    y_true = np.array([0, 0, 0, 1, 1, 1], np.float32)
    scores = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9], np.float32)
    for curve in ("ROC", "PR"):
        assert M.AUC(curve=curve)(y_true, scores) == pytest.approx(1.0, abs=1e-6)
    assert M.AUC()(y_true, 1 - scores) == pytest.approx(0.0, abs=1e-6)


def test_precision_and_recall_count_predictions_above_the_threshold():
    rng = np.random.default_rng(1)
    y_true = rng.integers(0, 2, (50, 3)).astype(np.float32)
    y_pred = rng.uniform(0, 1, (50, 3)).astype(np.float32)
    y_pred[0] = 0.5                                   # exactly on the threshold: negative
    for t in (0.5, 0.25):
        above, pos = y_pred > t, y_true == 1
        kwargs = {} if t == 0.5 else {"thresholds": t}
        assert M.Precision(**kwargs)(y_true, y_pred) == pytest.approx(np.sum(above & pos) / np.sum(above), rel=1e-6)
        assert M.Recall(**kwargs)(y_true, y_pred) == pytest.approx(np.sum(above & pos) / np.sum(pos), rel=1e-6)
    # top_k=1: only each row's largest prediction can be positive; class_id: one column
    top = np.argmax(y_pred, axis=1)
    hits = y_true[np.arange(50), top] == 1
    assert M.Precision(top_k=1)(y_true, y_pred) == pytest.approx(hits.mean(), rel=1e-6)
    col = y_pred[:, 2] > 0.5
    assert M.Recall(class_id=2)(y_true, y_pred) == pytest.approx(np.sum(col & (y_true[:, 2] == 1)) /
                                                                 np.sum(y_true[:, 2] == 1), rel=1e-6)


def test_nothing_counted_gives_zero_not_nan():
    ones, zeros = np.ones((4, 1), np.float32), np.zeros((4, 1), np.float32)
    assert M.Precision()(ones, zeros) == 0.0          # no predicted positives
    assert M.Recall()(zeros, ones) == 0.0             # no actual positives
    assert M.AUC()(ones, np.full((4, 1), 0.7, np.float32)) == 0.0       # one class only: no false-positive axis
    assert M.Precision().result() == 0.0 and M.AUC().result() == 0.0     # nothing seen yet


def test_top_k_counts_ties_at_the_boundary_as_in_the_top_k():
    scores = np.array([[0.1, 0.5, 0.5, 0.2],      # label 2 ties with 1 for the top: in the top 1
                       [0.4, 0.3, 0.3, 0.3],      # label 3: one score above it: in the top 2, not the top 1
                       [0.1, 0.2, 0.3, 0.4],      # label 0: three above it
                       [0.1, np.nan, 0.3, 0.4]],  # a non-finite score: never counted
                      np.float32)
    labels = np.array([2, 3, 0, 3])
    np.testing.assert_array_equal(M.sparse_top_k_categorical_accuracy(labels, scores, k=1), [1, 0, 0, 0])
    np.testing.assert_array_equal(M.sparse_top_k_categorical_accuracy(labels, scores, k=2), [1, 1, 0, 0])
    np.testing.assert_array_equal(M.top_k_categorical_accuracy(np.eye(4)[labels], scores, k=2), [1, 1, 0, 0])
    m = M.SparseTopKCategoricalAccuracy(k=2)
    m.update_state(labels[:2], scores[:2])
    m.update_state(labels[2:], scores[2:], sample_weight=[3.0, 1.0])
    assert m.result() == pytest.approx(2 / 6)


def test_mape_is_the_mean_absolute_relative_error_in_percent():
    y_true = np.array([[2.0, -4.0], [0.0, 1.0]], np.float32)
    y_pred = np.array([[1.0, -5.0], [1e-8, 3.0]], np.float32)
    per_sample = 100 * np.array([(0.5 + 0.25) / 2, (1e-8 / 1e-7 + 2.0) / 2])
    np.testing.assert_allclose(M.mean_absolute_percentage_error(y_true, y_pred), per_sample, rtol=1e-6)
    assert M.mape is M.mean_absolute_percentage_error
    m = M.MeanAbsolutePercentageError()
    m.update_state(y_true, y_pred, sample_weight=[1.0, 3.0])
    assert m.result() == pytest.approx((per_sample[0] + 3 * per_sample[1]) / 4, rel=1e-6)


def test_bad_arguments_are_refused_with_their_names():
    with pytest.raises(ValueError, match="num_thresholds"):
        M.AUC(num_thresholds=1)
    with pytest.raises(ValueError, match="curve"):
        M.AUC(curve="roc_curve")
    with pytest.raises(ValueError, match="summation method"):
        M.AUC(summation_method="trapezoid")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        M.Precision(thresholds=[0.5, 1.5])
    with pytest.raises(ValueError, match="num_labels"):
        M.AUC(num_labels=3)
    with pytest.raises(ValueError, match="k must be"):
        M.TopKCategoricalAccuracy(k=0)
    with pytest.raises(ValueError, match="class_id"):
        M.Precision(class_id=5).update_state(np.zeros((2, 3)), np.zeros((2, 3)))
    with pytest.raises(ValueError, match="do not match"):
        M.Recall().update_state(np.zeros((2, 3)), np.zeros((2, 4)))


# -- through compile, fit and evaluate -----------------------------------------------------------
def _model(name, metrics=None):
    """The reference script's model ``name`` with its initial weights, compiled as there
    (or with ``metrics``)."""
    L = keras.layers
    layers = {"binary": lambda: [L.Dense(3, activation="relu"), L.Dense(1, activation="sigmoid")],
              "sparse": lambda: [L.Dense(5, activation="softmax")],
              "categorical": lambda: [L.Dense(5, activation="softmax")],
              "regression": lambda: [L.Dense(1)]}[name]
    loss = {"binary": "binary_crossentropy", "sparse": "sparse_categorical_crossentropy",
            "categorical": "categorical_crossentropy", "regression": "mse"}[name]
    compiled = {"binary": lambda: ["auc", "precision", "recall", M.AUC(curve="PR", name="pr_auc"),
                                  M.Precision(thresholds=0.3, name="precision_at_03")],
               "sparse": lambda: ["sparse_top_k_categorical_accuracy", M.SparseTopKCategoricalAccuracy(k=2,
                                                                                                         name="top2")],
               "categorical": lambda: ["top_k_categorical_accuracy", M.TopKCategoricalAccuracy(k=2, name="top2"),
                                       M.Recall(top_k=2)],
               "regression": lambda: ["mape", "mean_absolute_percentage_error", M.MeanAbsolutePercentageError()]}
    model = keras.Sequential([keras.Input((4,)), *layers()])
    model.set_weights([ARRAYS[f"models/{name}/init/{i}"] for i in range(len(model.get_weights()))])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.05), loss=loss,
                  metrics=metrics if metrics is not None else compiled[name]())
    return model


@pytest.mark.parametrize("name", sorted(INFO["models"]))
def test_fit_and_evaluate_report_the_metrics_as_keras(name):
    ref = INFO["models"][name]
    x, y = ARRAYS["models/x"], ARRAYS[f"models/{name}/y"]
    model = _model(name)
    hist = model.fit(x[:48], y[:48], epochs=3, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[48:], y[48:]))
    assert sorted(hist.history) == sorted(ref["history_keys"])
    for key, values in ref["history"].items():
        np.testing.assert_allclose(hist.history[key], values, rtol=RTOL, atol=ATOL, err_msg=key)
    got = model.evaluate(x[48:], y[48:], verbose=0, return_dict=True)
    assert got.keys() == ref["evaluate"].keys()
    for key, value in ref["evaluate"].items():
        assert got[key] == pytest.approx(value, rel=RTOL, abs=ATOL), key


def test_evaluate_equals_the_metric_on_predict_batch_by_batch():
    x, y = ARRAYS["models/x"], ARRAYS["models/binary/y"]
    model = _model("binary")
    got = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    pred = model.predict(x, batch_size=16, verbose=0)      # the same batches as evaluate's
    for key, metric in (("auc", M.AUC()), ("pr_auc", M.AUC(curve="PR")), ("precision", M.Precision()),
                        ("recall", M.Recall()), ("precision_at_03", M.Precision(thresholds=0.3))):
        for lo in range(0, len(x), 16):
            metric.update_state(y[lo:lo + 16], pred[lo:lo + 16])
        assert got[key] == pytest.approx(float(metric.result()), rel=1e-6), key


def test_weighted_metrics_use_the_sample_weights():
    x, y = ARRAYS["models/x"], ARRAYS["models/binary/y"]
    sw = np.random.default_rng(4).uniform(0, 2, len(x)).astype(np.float32)
    model = _model("binary")
    model.compile(optimizer="adam", loss="binary_crossentropy", weighted_metrics=[M.AUC()])
    got = model.evaluate(x, y, sample_weight=sw, batch_size=64, verbose=0, return_dict=True)
    want = M.AUC()
    want.update_state(y, model.predict(x, verbose=0), sample_weight=sw)
    assert got["auc"] == pytest.approx(float(want.result()), rel=1e-6)


DIRECTIONS = [   # (model, metrics, monitored key, the better end); each key changes over the epochs
    ("binary", lambda: ["auc"], "val_auc", max),
    ("binary", lambda: [M.AUC(curve="PR", name="pr_auc")], "val_pr_auc", max),
    ("categorical", lambda: [M.Precision(top_k=2)], "val_precision", max),
    ("categorical", lambda: [M.Recall(top_k=2)], "val_recall", max),
    ("sparse", lambda: [M.SparseTopKCategoricalAccuracy(k=2, name="top2")], "val_top2", max),
    ("categorical", lambda: [M.TopKCategoricalAccuracy(k=2)], "val_top_k_categorical_accuracy", max),
    ("regression", lambda: ["mape"], "val_mape", min),
]


@pytest.mark.parametrize("name,metrics,monitor,best", DIRECTIONS, ids=[d[2] for d in DIRECTIONS])
def test_callbacks_in_auto_mode_follow_the_metrics_direction(name, metrics, monitor, best, tmp_path):
    x, y = ARRAYS["models/x"], ARRAYS[f"models/{name}/y"]
    model = _model(name, metrics())
    stop = keras.callbacks.EarlyStopping(monitor=monitor, patience=10)
    checkpoint = keras.callbacks.ModelCheckpoint(tmp_path / "best.keras", monitor=monitor, save_best_only=True)
    hist = model.fit(x[:48], y[:48], epochs=4, batch_size=16, shuffle=False, verbose=0,
                     validation_data=(x[48:], y[48:]), callbacks=[stop, checkpoint])
    values = hist.history[monitor]
    assert max(values) != min(values)
    assert stop.best == best(values) == checkpoint.best


def test_several_thresholds_cannot_be_one_history_entry():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", metrics=[M.Precision(thresholds=[0.3, 0.6])])
    with pytest.raises(ValueError, match="one metric per threshold"):
        model.evaluate(ARRAYS["models/x"], ARRAYS["models/binary/y"], verbose=0)


@pytest.mark.parametrize("metric", ["auc", "precision", "recall", "top_k_categorical_accuracy", "mape"])
def test_metrics_that_need_one_hot_targets_are_refused_with_integer_labels_before_training(metric):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, activation="softmax")])
    weights = model.get_weights()
    model.compile(loss="sparse_categorical_crossentropy", metrics=[metric])
    with pytest.raises(ValueError, match=f"Metric '{metric}' compares each output.*one-hot encode"):
        model.fit(ARRAYS["models/x"], ARRAYS["models/sparse/y"], verbose=0)
    assert all(np.array_equal(a, b) for a, b in zip(model.get_weights(), weights))     # nothing trained


def test_compile_config_with_these_metrics_survives_save_and_load(tmp_path):
    model = _model("binary")
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    x, y = ARRAYS["models/x"], ARRAYS["models/binary/y"]
    assert loaded.evaluate(x, y, verbose=0, return_dict=True) == model.evaluate(x, y, verbose=0, return_dict=True)
