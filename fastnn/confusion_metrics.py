"""Metrics over confusion counts at thresholds: ``AUC``, ``Precision``, ``Recall``.

Keras 3's definitions (``keras/src/metrics/confusion_metrics.py`` and
``metrics_utils.py``), state and all, computed in NumPy float32 on the
predictions the training loop hands back, one batch at a time. A prediction
``p`` counts as positive at threshold ``t`` when ``p > t``; a target counts
as positive when it is not 0. Each metric keeps, per threshold, weighted
counts of true/false positives/negatives (Variables named as Keras names
them) and reports from them:

- ``Precision = TP / (TP + FP)``, ``Recall = TP / (TP + FN)`` (0 when the
  denominator is 0), at ``thresholds`` (default 0.5);
- ``AUC``: the area under the ROC curve (x = FP / (FP + TN), y = recall) or
  the precision-recall curve, by a Riemann sum over ``num_thresholds``
  thresholds: Keras's ``[0 - 1e-7, 1/(T-1), ..., (T-2)/(T-1), 1 + 1e-7]``.

Like Keras, when the thresholds are evenly spaced over [0, 1] (AUC's default)
a prediction is counted by its bucket ``ceil(p * (T - 1)) - 1`` (clipped to
[0, 1] first), which agrees with ``p > t`` except where float32 rounding of
``p * (T - 1)`` decides; other thresholds are compared directly.
"""
import numpy as np

from .metrics import Metric, squeeze_or_expand

_EPSILON = 1e-7      # keras.backend.epsilon(): AUC's outer thresholds sit this far outside [0, 1]
_NEG_INF = -1e10     # metrics_utils.NEG_INF: the default threshold of a top_k Precision/Recall
F32 = np.float32


def _is_real(value):
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


def _parse_thresholds(thresholds, default):
    """metrics_utils.parse_init_thresholds: a list of floats in [0, 1] (``default`` for None)."""
    if thresholds is None:
        return [default]
    values = list(thresholds) if isinstance(thresholds, (list, tuple, np.ndarray)) else [thresholds]
    bad = [t for t in values if not _is_real(t) or not 0 <= t <= 1]
    if bad or not values:
        raise ValueError(f"Threshold values must be in [0, 1]. Received: {bad or thresholds!r}")
    return [float(t) for t in values]


def _evenly_spaced(thresholds):
    """metrics_utils.is_evenly_distributed_thresholds: [0, 1/(n-1), ..., 1] within 1e-7, n >= 3."""
    n = len(thresholds)
    return n >= 3 and bool(np.allclose(thresholds, np.arange(n, dtype=F32) / (n - 1), atol=_EPSILON))


def _optional_int(value, what, minimum):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{what} must be an integer >= {minimum} or None, got {value!r}")
    return int(value)


def _weights(sample_weight, y_pred):
    """The per-entry weights Keras derives from ``sample_weight`` (one per
    sample, or shaped like the targets): a trailing axis added, matched to
    the targets' rank, broadcast over ``y_pred``."""
    if sample_weight is None:
        return None
    w = np.asarray(sample_weight, dtype=F32)
    _, w = squeeze_or_expand(y_pred, w[..., None], expand_rank_1=False)
    try:
        return np.broadcast_to(w, y_pred.shape)
    except ValueError:
        raise ValueError(f"sample_weight of shape {np.shape(sample_weight)} does not match predictions of "
                         f"shape {y_pred.shape}") from None


def _filter_top_k(x, k):
    """metrics_utils._filter_top_k: the k largest entries of the last axis kept
    (ties: the lower index first, as ``top_k``), the rest set to -1e10."""
    if k > x.shape[-1]:
        raise ValueError(f"top_k={k} is larger than the number of classes ({x.shape[-1]})")
    top = np.argsort(-x, axis=-1, kind="stable")[..., :k]
    mask = np.zeros_like(x)
    np.put_along_axis(mask, top, F32(1), axis=-1)
    return x * mask + F32(_NEG_INF) * (F32(1) - mask)


def confusion_counts(y_true, y_pred, thresholds, evenly, sample_weight=None, multi_label=False,
                     label_weights=None, top_k=None, class_id=None):
    """metrics_utils.update_confusion_matrix_variables for one batch: (TP, FP,
    TN, FN), float32 arrays of shape (len(thresholds),), or (len(thresholds),
    labels) with ``multi_label`` (``y_pred`` of shape (samples, labels))."""
    y_true = np.asarray(y_true, dtype=F32)
    y_pred = np.asarray(y_pred, dtype=F32)
    y_pred, y_true = squeeze_or_expand(y_pred, y_true)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"targets of shape {y_true.shape} do not match predictions of shape {y_pred.shape}; "
                         "these metrics compare each prediction with a target of the same shape")
    weights = _weights(sample_weight, y_pred)
    if top_k is not None:
        y_pred = _filter_top_k(y_pred, top_k)
    if class_id is not None:
        if y_pred.ndim < 2 or not 0 <= class_id < y_pred.shape[-1]:
            raise ValueError(f"class_id={class_id} must index the last axis of predictions of shape {y_pred.shape}")
        y_true, y_pred = y_true[..., class_id, None], y_pred[..., class_id, None]
        weights = None if weights is None else weights[..., class_id, None]
    if multi_label:
        if y_pred.ndim != 2:
            raise ValueError(f"multi_label=True needs predictions of rank 2 (samples, labels), got {y_pred.shape}")
    else:       # one curve over every entry, each weighted by its sample's and its column's weight
        if label_weights is not None:
            try:
                lw = np.broadcast_to(np.asarray(label_weights, F32), y_pred.shape)
            except ValueError:
                raise ValueError(f"label_weights of length {len(label_weights)} do not match predictions of "
                                 f"shape {y_pred.shape} (one weight per column)") from None
            weights = lw if weights is None else weights * lw
        y_true, y_pred = y_true.reshape(-1, 1), y_pred.reshape(-1, 1)
        weights = None if weights is None else np.asarray(weights, F32).reshape(-1, 1)
    w = np.ones_like(y_pred) if weights is None else weights
    positive = (y_true != 0).astype(F32)
    pos_w, neg_w = positive * w, (F32(1) - positive) * w
    n_thresh = len(thresholds)
    if evenly:
        # _update_confusion_matrix_variables_optimized: bucket i holds the predictions
        # counted at thresholds 0..i; a reversed cumulative sum gives the counts.
        with_epsilon = thresholds[0] < 0 or thresholds[-1] > 1
        bucket = np.ceil(np.clip(y_pred, F32(0), F32(1)) * (F32(n_thresh) - F32(1))) - F32(1)
        if with_epsilon:
            bucket = np.maximum(bucket, F32(0))
        bucket = bucket.astype(np.int64)
        tp, fp = np.zeros((n_thresh, y_pred.shape[1])), np.zeros((n_thresh, y_pred.shape[1]))
        for j in range(y_pred.shape[1]):
            kept = bucket[:, j] >= 0          # a bucket of -1 (p = 0, no epsilon) counts nowhere
            tp[:, j] = np.bincount(bucket[kept, j], pos_w[kept, j], minlength=n_thresh)
            fp[:, j] = np.bincount(bucket[kept, j], neg_w[kept, j], minlength=n_thresh)
        tp, fp = np.cumsum(tp[::-1], axis=0)[::-1], np.cumsum(fp[::-1], axis=0)[::-1]
    else:
        above = y_pred[None] > np.asarray(thresholds, F32)[:, None, None]      # (thresholds, samples, labels)
        tp = np.sum(above * pos_w[None], axis=1, dtype=np.float64)
        fp = np.sum(above * neg_w[None], axis=1, dtype=np.float64)
    tn = np.sum(neg_w, axis=0, dtype=np.float64) - fp
    fn = np.sum(pos_w, axis=0, dtype=np.float64) - tp
    counts = [c.astype(F32) for c in (tp, fp, tn, fn)]
    return counts if multi_label else [c[:, 0] for c in counts]


def _divide_no_nan(x, y):
    """x / y, and 0 where y is 0 (ops.divide_no_nan)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(y == 0, F32(0), x / np.where(y == 0, F32(1), y)).astype(F32)


class _ConfusionMetric(Metric):
    """Counts at thresholds, kept in Keras's Variables; ``_counts`` names which."""
    _direction = "up"
    _counts = ()
    needs_dense_targets = True     # compile refuses them with a loss that takes integer labels

    def _make_variables(self, shape):
        for name in self._counts:
            setattr(self, name, self.add_variable(shape, "zeros", name=name))

    def _accumulate(self, counts):
        for name, value in zip(("true_positives", "false_positives", "true_negatives", "false_negatives"), counts):
            if name in self._counts:
                getattr(self, name).value[...] += value

    def __call__(self, y_true, y_pred, sample_weight=None):
        """As Keras 3's ``Metric.__call__``: ``update_state``, then ``result``."""
        self.update_state(y_true, y_pred, sample_weight=sample_weight)
        return self.result()


class _PrecisionRecall(_ConfusionMetric):
    def __init__(self, thresholds=None, top_k=None, class_id=None, name=None, dtype=None):
        super().__init__(name, dtype)
        self.init_thresholds = thresholds
        self.top_k = _optional_int(top_k, "top_k", 1)
        self.class_id = _optional_int(class_id, "class_id", 0)
        self.thresholds = _parse_thresholds(thresholds, 0.5 if top_k is None else _NEG_INF)
        self._evenly = _evenly_spaced(self.thresholds)
        self._make_variables((len(self.thresholds),))

    @property
    def reports_one_value(self):
        """False with several thresholds: the result is one value per threshold."""
        return len(self.thresholds) == 1

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._accumulate(confusion_counts(y_true, y_pred, self.thresholds, self._evenly, sample_weight,
                                          top_k=self.top_k, class_id=self.class_id))

    def _finish(self, value):
        return value[0] if len(self.thresholds) == 1 else value

    def get_config(self):
        return {**super().get_config(), "thresholds": self.init_thresholds, "top_k": self.top_k,
                "class_id": self.class_id}


class Precision(_PrecisionRecall):
    """TP / (TP + FP) of predictions ``> thresholds`` (default 0.5; a list gives
    one value per threshold). ``top_k``: only each sample's k largest
    predictions can be positive; ``class_id``: only that column counts."""
    default_name = "precision"
    _counts = ("true_positives", "false_positives")

    def result(self):
        return self._finish(_divide_no_nan(self.true_positives.value,
                                           self.true_positives.value + self.false_positives.value))


class Recall(_PrecisionRecall):
    """TP / (TP + FN) of predictions ``> thresholds`` (default 0.5; a list gives
    one value per threshold). ``top_k`` and ``class_id`` as ``Precision``."""
    default_name = "recall"
    _counts = ("true_positives", "false_negatives")

    def result(self):
        return self._finish(_divide_no_nan(self.true_positives.value,
                                           self.true_positives.value + self.false_negatives.value))


_CURVES = {"roc": "ROC", "pr": "PR", "prgain": "PRGAIN"}
_SUMMATIONS = ("interpolation", "minoring", "majoring")


class AUC(_ConfusionMetric):
    """Area under the ROC (``curve="ROC"``, default), precision-recall
    (``"PR"``) or precision-recall-gain (``"PRGAIN"``) curve.

    ``num_thresholds`` 200 (> 1), or ``thresholds`` (values in [0, 1]; the
    two outer thresholds are added). ``summation_method``: "interpolation"
    (default; trapezoids, and for PR Davis & Goadrich's interpolation of the
    counts, as Keras), "minoring" (the lower of the two heights of each
    interval) or "majoring" (the higher). ``multi_label``: counts per column
    of (samples, labels) predictions and the mean of the per-label areas
    (weighted by ``label_weights``); otherwise all entries form one curve
    (each weighted by ``label_weights`` of its column). ``from_logits``:
    predictions pass through a sigmoid first. Result: float32 in [0, 1].
    """
    default_name = "auc"
    _counts = ("true_positives", "false_positives", "true_negatives", "false_negatives")

    def __init__(self, num_thresholds=200, curve="ROC", summation_method="interpolation", name=None, dtype=None,
                 thresholds=None, multi_label=False, num_labels=None, label_weights=None, from_logits=False):
        super().__init__(name, dtype)
        curve_key = str(getattr(curve, "value", curve))
        if curve_key.lower() not in _CURVES or curve_key not in (curve_key.lower(), _CURVES[curve_key.lower()]):
            raise ValueError(f'Invalid AUC curve value: "{curve}". Expected values are ["PR", "ROC", "PRGAIN"]')
        method = str(getattr(summation_method, "value", summation_method))
        if method.lower() not in _SUMMATIONS or method not in (method.lower(), method.capitalize()):
            raise ValueError(f'Invalid AUC summation method value: "{summation_method}". '
                             'Expected values are ["interpolation", "majoring", "minoring"]')
        self.curve, self.summation_method = _CURVES[curve_key.lower()], method.lower()
        self._init_from_thresholds = thresholds is not None
        if thresholds is not None:
            inner = sorted(_parse_thresholds(thresholds, None))
            self.num_thresholds = len(inner) + 2
            self._evenly = _evenly_spaced([0.0] + inner + [1.0])
        else:
            if isinstance(num_thresholds, bool) or not isinstance(num_thresholds, (int, np.integer)) \
                    or num_thresholds <= 1:
                raise ValueError(f"Argument `num_thresholds` must be an integer > 1. "
                                 f"Received: num_thresholds={num_thresholds!r}")
            self.num_thresholds = int(num_thresholds)
            inner = [(i + 1) * 1.0 / (self.num_thresholds - 1) for i in range(self.num_thresholds - 2)]
            self._evenly = True
        self._thresholds = [0.0 - _EPSILON] + inner + [1.0 + _EPSILON]
        self.multi_label = bool(multi_label)
        if num_labels is not None and not self.multi_label:
            raise ValueError("`num_labels` is needed only when `multi_label` is True.")
        self.num_labels = _optional_int(num_labels, "num_labels", 1)
        if label_weights is not None:
            label_weights = np.asarray(label_weights, dtype=F32)
            if label_weights.ndim != 1 or not np.all(np.isfinite(label_weights)) or np.any(label_weights < 0):
                raise ValueError(f"label_weights must be a list of non-negative finite numbers, got {label_weights!r}")
        self.label_weights = label_weights
        self._from_logits = bool(from_logits)
        self._num_labels = None
        if not self.multi_label:
            self._make_variables((self.num_thresholds,))
        elif self.num_labels:
            self._build_labels(self.num_labels)

    @property
    def thresholds(self):
        """The thresholds the counts are taken at, the two outer ones included."""
        return list(self._thresholds)

    def _build_labels(self, labels):
        self._num_labels = labels
        self._make_variables((self.num_thresholds, labels))

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = np.asarray(y_pred, dtype=F32)
        if self.multi_label:
            if y_pred.ndim != 2:
                raise ValueError(f"`y_pred` must have rank 2 when `multi_label=True`. Found shape {y_pred.shape}")
            if self._num_labels is None:
                self._build_labels(y_pred.shape[1])
            elif y_pred.shape[1] != self._num_labels:
                raise ValueError(f"AUC(multi_label=True) counts {self._num_labels} labels; got predictions of "
                                 f"shape {y_pred.shape}")
        if self._from_logits:
            with np.errstate(over="ignore"):
                y_pred = (F32(1) / (F32(1) + np.exp(-y_pred))).astype(F32)
        self._accumulate(confusion_counts(y_true, y_pred, self._thresholds, self._evenly, sample_weight,
                                          multi_label=self.multi_label,
                                          label_weights=None if self.multi_label else self.label_weights))

    def _by_label(self, terms):
        """The area: summed over thresholds; with multi_label, averaged over labels."""
        if not self.multi_label:
            return F32(np.sum(terms, dtype=F32))
        by_label = np.sum(terms, axis=0, dtype=F32)
        if self.label_weights is None:
            return F32(np.mean(by_label, dtype=F32))
        return F32(_divide_no_nan(np.sum(by_label * self.label_weights, dtype=F32),
                                  np.sum(self.label_weights, dtype=F32)))

    def _interpolate_pr_auc(self, tp, fp, fn):
        """Keras's closed form of Davis & Goadrich's interpolation: precision
        varies as TP / P with TP and P = TP + FP linear in each interval."""
        dtp = tp[:-1] - tp[1:]
        p = tp + fp
        dp = p[:-1] - p[1:]
        slope = _divide_no_nan(dtp, np.maximum(dp, F32(0)))
        intercept = tp[1:] - slope * p[1:]
        both = (p[:-1] > 0) & (p[1:] > 0)
        ratio = np.where(both, _divide_no_nan(p[:-1], np.maximum(p[1:], F32(0))), F32(1))
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.log(ratio).astype(F32)
        terms = _divide_no_nan(slope * (dtp + intercept * log_ratio), np.maximum(tp[1:] + fn[1:], F32(0)))
        return self._by_label(terms)

    def result(self):
        if self._num_labels is None and self.multi_label:
            return F32(0)
        tp, fp = self.true_positives.value, self.false_positives.value
        tn, fn = self.true_negatives.value, self.false_negatives.value
        if self.curve == "PR" and self.summation_method == "interpolation":
            return self._interpolate_pr_auc(tp, fp, fn)
        recall = _divide_no_nan(tp, tp + fn)
        if self.curve == "ROC":
            x, y = _divide_no_nan(fp, fp + tn), recall
        elif self.curve == "PR":
            x, y = recall, _divide_no_nan(tp, tp + fp)
        else:
            scale = _divide_no_nan(tp + fn, tn + fp)
            recall_gain = np.where(tp == 0, F32(0), F32(1) - scale * _divide_no_nan(fn, tp))
            x = np.maximum(recall_gain, F32(0)).astype(F32)
            y = np.where(tp == 0, F32(1), F32(1) - scale * _divide_no_nan(fp, tp)).astype(F32)
        if self.summation_method == "interpolation":
            heights = (y[:-1] + y[1:]) / F32(2)
        elif self.summation_method == "minoring":
            heights = np.minimum(y[:-1], y[1:])
        else:
            heights = np.maximum(y[:-1], y[1:])
        return self._by_label((x[:-1] - x[1:]) * heights)

    def get_config(self):
        config = {**super().get_config(), "num_thresholds": self.num_thresholds, "curve": self.curve,
                  "summation_method": self.summation_method, "multi_label": self.multi_label,
                  "num_labels": self.num_labels,
                  "label_weights": None if self.label_weights is None else self.label_weights.tolist(),
                  "from_logits": self._from_logits}
        if self._init_from_thresholds:
            config["thresholds"] = self._thresholds[1:-1]
        return config
