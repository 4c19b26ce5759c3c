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
        if sources.is_producer(x):     # batches ((x1, x2), (y1, y2)) or dicts, packed one by one
            src = sources.make(x, y, targets=with_targets, steps=steps, what=what, y_what=y_what,
                               steps_what=steps_what, sample_weight=sample_weight, sw_what=sw_what)
            return src.bind_io(self, with_targets)
        if with_targets and y is None:
            raise ValueError(f"{y_what} is required: training and evaluation need targets")
        x_parts = [data.real_array(p, f"{what}[{k!r}]") for p, k in
                   zip(self._parts(x, self.input_names, what, "input"), self.input_names)]
        y_parts = [data.real_array(p, f"{y_what}[{k!r}]") for p, k in
                   zip(self._parts(y, self.output_names, y_what, "output"), self.output_names)] \
            if with_targets else None
        if any(sources._out_of_core(p) for p in x_parts + (y_parts or [])):
            return MappedIOSource(self, x_parts, y_parts, what, y_what, (sample_weight, None, sw_what))
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


class MappedIOSource:
    """``sources.MappedSource`` for a model of several inputs or outputs:
    memory-mapped (or too large to convert) parts are read a chunk of rows
    at a time, each part's rows read from its own array and packed by
    ``ModelIO`` as whole arrays would be, so the batches are those an
    in-memory source makes from the same shuffle."""

    def __init__(self, io, x_parts, y_parts, what, y_what, weights):
        self.io, self.what, self.y_what, self._weights = io, what, y_what, weights
        self._x_parts, self._y_parts = x_parts, y_parts
        counts = {p.shape[0] if p.ndim else 0 for p in x_parts + (y_parts or [])}
        if len(counts) > 1:
            raise ValueError(f"{what} and {y_what}: the arrays have different numbers of samples "
                             f"{[p.shape[0] for p in x_parts + (y_parts or [])]}")
        self.n = counts.pop()
        for p, shape, name in zip(x_parts, io.input_shapes, io.input_names):
            data.feature_layout(p, shape, f"{what}[{name!r}]")
        self._width = sum(math.prod(shape) for shape in io.input_shapes)
        self._readers = [sources._rows_reader(p) for p in x_parts + (y_parts or [])]
        self._sw = None if weights[0] is None else sample_weights.sample_weights(weights[0], self.n, weights[2])
        self.weighted = self._sw is not None

    def split(self, fraction):
        """``(first rows, last fraction of rows)`` without reading them, as Keras's validation_split."""
        cut = sources._split_point(self.n, fraction)
        halves = []
        for part in (slice(None, cut), slice(cut, None)):
            sw = None if self._sw is None else self._sw[part]
            halves.append(MappedIOSource(self.io, [p[part] for p in self._x_parts],
                                         None if self._y_parts is None else [p[part] for p in self._y_parts],
                                         self.what, self.y_what, (sw, None, self._weights[2])))
        return tuple(halves)

    def steps(self, batch):
        return -(-self.n // batch)

    def _cap(self, batch):
        return max(batch, sources.CHUNK_BYTES // (4 * self._width) // batch * batch)

    def train_epoch(self, batch, shuffle):
        return sources._IndexEpoch(self, sources._order(self.n, shuffle), batch, self._cap(batch))

    def _train_chunk(self, ids, start, stop, batch):
        chosen = ids[start:stop]
        order = np.argsort(chosen, kind="stable")
        X, Yf, Yi, sw = self._read(chosen[order])
        local = np.empty(order.shape[0], dtype=np.int64)
        local[order] = np.arange(order.shape[0])   # buffer row of each id, in the epoch's order
        return sources.Chunk(X, Yf, Yi, sw, local, 0, local.shape[0], batch, None)

    def in_order(self, batch, per_batch=False):
        cap = batch if per_batch else self._cap(batch)
        for pos in range(0, self.n, cap):
            stop = min(self.n, pos + cap)
            X, Yf, Yi, sw = self._read(np.arange(pos, stop))
            yield sources.Chunk(X, Yf, Yi, sw, None, 0, stop - pos, batch, pos)

    def _read(self, rows):
        """Rows ``rows`` (sorted) of every part, packed and checked: ``(X, Yf, Yi, sw)``."""
        parts = [reader.read(rows) for reader in self._readers]
        k = len(self._x_parts)
        X = np.empty((rows.shape[0], self._width), dtype=np.float32)
        col = 0
        for part, shape, name in zip(parts[:k], self.io.input_shapes, self.io.input_names):
            width = math.prod(shape)
            what = f"{self.what}[{name!r}]" if k > 1 else self.what
            data.features_into(part, X[:, col:col + width], what, rows)    # errors name the file's rows
            col += width
        if self._y_parts is None:
            Yf, Yi = np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64)
        else:
            Yf, Yi = self.io.targets(parts[k:], rows.shape[0], self.y_what)
        sw = sources._NO_WEIGHTS if self._sw is None else self._sw[rows]
        return X, Yf, Yi, sw


class OutputMetrics:
    """The metrics of a model with several outputs (or a loss weight), in
    Keras 3's names: ``loss`` (the weighted total), ``<output>_loss`` and
    ``<output>_<metric>`` per output. ``per_output``: a
    ``metrics.ModelMetrics`` per output; the loops' sums are [total,
    samples] then each output's [loss, samples, metrics...].

    ``names`` None: the outputs are unnamed (a subclassed model), and Keras
    3 logs each output's loss as ``<loss name>_loss`` (``loss_names``) and
    its metrics unprefixed, numbered ``_1``, ``_2`` when a name repeats. Two
    outputs with the same loss share one key, which holds the last output's
    loss: Keras's logs lose the others, and so do these."""

    def __init__(self, names, per_output, loss_weights, loss_names=None):
        self.names, self.per_output, self.loss_weights = names, per_output, loss_weights
        if names is None:
            taken, self._metric_keys = set(), []
            for m in per_output:
                keys = []
                for entry in m.entries:
                    key, i = entry[0], 0
                    while key in taken:
                        i += 1
                        key = f"{entry[0]}_{i}"
                    taken.add(key)
                    keys.append(key)
                self._metric_keys.append(keys)
            self._loss_keys = [f"{n}_loss" for n in loss_names]
        else:
            self._metric_keys = [[f"{name}_{entry[0]}" for entry in m.entries] for name, m in zip(names, per_output)]
            self._loss_keys = [f"{name}_loss" for name in names]
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
        for m, loss_key, metric_keys in zip(self.per_output, self._loss_keys, self._metric_keys):
            block = sums[at:at + 2 + len(m.codes)]
            values = list(m.logs(block).values())     # the output's loss, then its metrics in order
            logs[loss_key] = values[0]
            logs.update(zip(metric_keys, values[1:]))
            at += 2 + len(m.codes)
        return {prefix + k: logs[k] for k in sorted(logs)}

    def list_order(self):
        """Keys in the order of ``evaluate``'s list (Keras 3): the total loss,
        each output's loss, then each output's metrics; for unnamed outputs
        Keras lists the metrics (by their names before numbering) before the
        losses, then the keys not listed yet, sorted."""
        metrics = [k for keys in self._metric_keys for k in keys]
        if self.names is not None:
            return ["loss"] + self._loss_keys + metrics
        first = ["loss"] + [entry[0] for m in self.per_output for entry in m.entries] + self._loss_keys
        keys = set(["loss"] + self._loss_keys + metrics)
        return [k for k in first if k in keys] + sorted(keys - set(first))
