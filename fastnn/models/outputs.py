"""Models of several inputs or outputs: matching data to them, and their metrics.

The compiled loops read one feature array (every input's columns side by
side: ``Program.ins`` says where each goes) and one target array per kind
(dense float32 columns of every output whose targets are dense, int64
label columns of those with integer labels), so ``ModelIO`` packs the
user's structures (lists in input/output order, or dicts keyed by name)
into those arrays once, checking each part as a one-input model would.
``OutputMetrics`` turns the loops' sums into Keras 3's log names.
"""
import math

import numpy as np

from ..kernels import program as P
from . import data, sample_weights, sources


class ModelIO:
    """Names and per-sample shapes of a model's inputs and outputs, and the
    outputs' losses (None before compile)."""

    def __init__(self, input_names, input_shapes, output_names, output_shapes, losses):
        self.input_names, self.input_shapes = input_names, input_shapes
        self.output_names, self.output_shapes = output_names, output_shapes
        self.losses = losses

    def sparse(self):
        """Per output: whether its targets are integer labels."""
        return [loss is not None and loss.code == P.SCCE for loss in self.losses]

    def _parts(self, value, names, what, kind):
        """``value`` as a list in ``names`` order: a list/tuple or a dict by name
        (one name: the value itself too)."""
        if isinstance(value, dict):
            missing = [k for k in names if k not in value]
            extra = sorted(set(value) - set(names))
            if missing or extra:
                raise ValueError(f"{what} is a dict with keys {sorted(value)}, but the model's {kind}s are "
                                 f"named {names}")
            return [value[k] for k in names]
        if len(names) == 1:
            one = isinstance(value, (list, tuple)) and len(value) == 1 and isinstance(value[0], np.ndarray)
            return [value[0] if one else value]
        if isinstance(value, (list, tuple)):
            if len(value) != len(names):
                raise ValueError(f"{what} must hold {len(names)} arrays, one per model {kind} ({names}), "
                                 f"got {len(value)}")
            return list(value)
        raise ValueError(f"The model has {len(names)} {kind}s ({names}): pass {what} as a list of arrays in that "
                         "order or a dict keyed by those names")

    def features(self, x, what="x"):
        """float32 (n, all inputs' features), the inputs side by side, checked."""
        parts = self._parts(x, self.input_names, what, "input")
        arrays = [data.features(p, shape, f"{what}[{name!r}]" if len(parts) > 1 else what)
                  for p, shape, name in zip(parts, self.input_shapes, self.input_names)]
        n = {a.shape[0] for a in arrays}
        if len(n) > 1:
            raise ValueError(f"{what}: the inputs have different numbers of samples {[a.shape[0] for a in arrays]}")
        return arrays[0] if len(arrays) == 1 else np.ascontiguousarray(np.concatenate(arrays, axis=1))

    def targets(self, y, n, what="y"):
        """(Yf, Yi): dense target columns of every output with dense targets
        (float32 (n, columns)), label columns of the others (int64 (n, labels))."""
        if y is None:
            raise ValueError(f"{what} is required: training and evaluation need targets")
        parts = self._parts(y, self.output_names, what, "output")
        if len(parts) == 1:     # one output: the arrays a one-output model's loop reads, (n, width) or (n,)
            return data.targets(parts[0], n, self.losses[0], self.output_shapes[0], what)
        dense, labels = [], []
        for p, shape, name, loss in zip(parts, self.output_shapes, self.output_names, self.losses):
            Yf, Yi = data.targets(p, n, loss, shape, f"{what}[{name!r}]")
            (labels if loss.code == P.SCCE else dense).append(Yi if loss.code == P.SCCE else Yf)
        Yf = np.ascontiguousarray(np.concatenate(dense, axis=1)) if dense else np.zeros((0, 0), np.float32)
        Yi = np.ascontiguousarray(np.stack(labels, axis=1)) if labels else np.zeros((0, 0), np.int64)
        return Yf, Yi

    def source(self, x, y, with_targets, steps, what, y_what, steps_what, sample_weight=None, class_weight=None,
               sw_what="sample_weight"):
        """A bound data source for a model of several inputs or outputs."""
        if class_weight is not None:
            raise ValueError("class_weight is not supported for models with several outputs or inputs (as in "
                             "Keras); pass sample_weight instead")
        if sources.is_producer(x):
            raise NotImplementedError(f"{what}: generators and PyDatasets are not supported yet for models with "
                                      "several inputs or outputs; pass arrays")
        X = self.features(x, what)
        n = X.shape[0]
        if with_targets:
            Yf, Yi = self.targets(y, n, y_what)
        else:
            Yf, Yi = np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
        sw = np.zeros(0, np.float32) if sample_weight is None else \
            sample_weights.sample_weights(sample_weight, n, sw_what)
        src = sources.ArraySource._of(X, Yf, Yi, sw)
        src._weights = (sample_weight, None, sw_what)
        src.what = what
        return src


class OutputMetrics:
    """The metrics of a model with several outputs (or a loss weight), in
    Keras 3's names: ``loss`` (the weighted total), ``<output>_loss`` and
    ``<output>_<metric>`` per output. ``per_output``: a
    ``metrics.ModelMetrics`` per output; the loops' sums are [total,
    samples] then each output's [loss, samples, metrics...]."""

    def __init__(self, names, per_output, loss_weights):
        self.names, self.per_output, self.loss_weights = names, per_output, loss_weights
        self.codes_per_output = [m.codes for m in per_output]
        self.codes = np.concatenate(self.codes_per_output) if per_output else np.zeros(0, np.int64)
        self.needs_predictions = any(m.needs_predictions for m in per_output)

    def reset(self):
        for m in self.per_output:
            m.reset()

    def update(self, y_true, y_pred, sample_weight=None, layout=None):
        """Feeds one chunk to the NumPy metrics of each output: ``layout`` is
        ``(outputs table, Yf, Yi)`` slicing of the packed targets and predictions."""
        outs, Yf, Yi = layout
        for o, m in enumerate(self.per_output):
            if not m.needs_predictions:
                continue
            row = outs[o]
            n, col = int(row[P.O_N]), int(row[P.O_COL])
            if row[P.O_SPARSE]:
                yt = Yi[:, int(row[P.O_Y_OFF])]
            else:
                yt = Yf[:, int(row[P.O_Y_OFF]):int(row[P.O_Y_OFF]) + n]
            m.update(yt, y_pred[:, col:col + n], sample_weight)

    def logs(self, sums, prefix=""):
        """{key: value} in sorted key order, as Keras 3 logs them (its compiled
        step returns the logs as a dict, whose keys TensorFlow sorts)."""
        n = max(sums[1], 1.0)
        logs = {"loss": float(sums[0] / n)}
        at = 2
        for name, m in zip(self.names, self.per_output):
            block = sums[at:at + 2 + len(m.codes)]
            for key, value in m.logs(block).items():
                logs[f"{name}_{key}"] = value
            at += 2 + len(m.codes)
        return {prefix + k: logs[k] for k in sorted(logs)}

    def list_order(self):
        """Keys in the order of ``evaluate``'s list: the total loss, each
        output's loss, then each output's metrics (Keras 3)."""
        metric_keys = [f"{name}_{entry[0]}" for name, m in zip(self.names, self.per_output) for entry in m.entries]
        return ["loss"] + [f"{name}_loss" for name in self.names] + metric_keys
