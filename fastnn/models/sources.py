"""Where fit, evaluate and predict read their samples from.

Three kinds of source behind one small interface:

* ``ArraySource``: in-memory arrays, checked and converted once. A float32,
  C-contiguous, writeable ``x`` is used as it is (no copy): the compiled loop
  gathers each batch from it through the shuffled row order.
* ``MappedSource``: memory-mapped arrays (``np.load(path, mmap_mode="r")``,
  ``np.memmap``) and in-memory arrays whose float32 copy would exceed
  ``COPY_LIMIT_BYTES``. Nothing is read up front. Each chunk's rows are read
  (ids sorted, for locality) into a reused float32 buffer and checked there
  (NaN/inf, labels); the compiled loop then follows the chunk-local order,
  so the batches are exactly those an ``ArraySource`` would make from the
  same shuffle. A memmap's rows are read from its file with pread(2), not
  through the mapping, so resident memory stays near one chunk (about
  ``CHUNK_BYTES``) whatever the file's size.
* ``BatchSource``: a Python generator/iterator, or a ``PyDataset``/``Sequence``
  (``__len__``, ``__getitem__``), yielding ``(x, y)`` or ``(x, y,
  sample_weight)`` batches (for a model of several inputs or outputs ``x``
  and ``y`` are tuples or dicts: ``bind_io``); each batch is checked as it arrives, and
  consecutive batches of one size are packed into one chunk for the
  compiled loop.

Sample weights (``sample_weight``, one per row, kept in memory) and class
weights (``class_weight``, applied to each chunk's targets) travel with the
rows, as float32 ``sw``.

Use: ``src = make(x, y, ...)``; build the model from ``src.sample_shape``;
``src.bind(input_shape, loss, output_shape)`` runs the checks that need the
model (all of them for arrays, shape checks for the others). Then training
reads ``src.train_epoch(batch, shuffle)`` chunk by chunk and inference reads
``src.in_order(batch, per_batch)`` (one batch per chunk when callbacks want
every batch; a producer's chunks always are). Every chunk is a ``Chunk``.
"""
import collections.abc
import math
import mmap
import os
import weakref
from typing import NamedTuple, Optional

import numpy as np

from ..utils import seeding
from ..utils.py_dataset import PyDataset
from . import data, sample_weights

# An in-memory array whose float32 copy would be larger than this is read a
# chunk at a time instead of being converted once (memmaps always are).
COPY_LIMIT_BYTES = 1 << 30
# A chunk read from a MappedSource holds at most about this many bytes of features.
CHUNK_BYTES = 32 << 20


class Chunk(NamedTuple):
    """What one call of a compiled loop reads.

    ``X`` float32 (rows, features); ``Yf`` float32 (rows, outputs) dense
    targets and ``Yi`` int64 (rows,) labels, the unused one (or both, for
    predict) empty; ``sw`` float32 (rows,) sample weights or empty;
    ``batch`` rows per step. Training runs rows
    ``ids[start:stop]`` of ``X``; inference runs rows ``start:stop`` of
    ``X`` in order, whose outputs are rows ``offset + (start:stop)`` of the
    result (``offset`` is None when the total is unknown: outputs are
    collected per chunk)."""
    X: np.ndarray
    Yf: np.ndarray
    Yi: np.ndarray
    sw: np.ndarray
    ids: Optional[np.ndarray]
    start: int
    stop: int
    batch: int
    offset: Optional[int]


_NO_WEIGHTS = np.zeros(0, dtype=np.float32)


def make(x, y=None, *, targets=True, steps=None, what="x", y_what="y", steps_what="steps",
         sample_weight=None, class_weight=None, sw_what="sample_weight"):
    """A source for features ``x`` and, when ``targets``, targets ``y``.

    ``steps`` (named ``steps_what`` in messages) limits the batches read from
    a generator or PyDataset; arrays are split by ``batch_size`` instead.
    ``sample_weight`` (one per row; named ``sw_what``) or ``class_weight``
    ({class: weight}) weigh the rows (not both)."""
    if sample_weight is not None and class_weight is not None:
        raise ValueError("You cannot use class_weight and sample_weight at the same time")
    weights = (sample_weight, class_weight, sw_what)
    if is_producer(x):
        if y is not None:
            raise ValueError(f"y must not be given when {what} is a generator or PyDataset: "
                             "it yields the (x, y) batches itself")
        if sample_weight is not None:
            raise ValueError(f"{sw_what} must not be given when {what} is a generator or PyDataset: "
                             "it yields (x, y, sample_weight) batches itself")
        if steps is not None:
            steps = data.positive_int(steps, steps_what)
        return BatchSource(x, steps, what, steps_what, class_weight)
    if steps is not None:
        raise ValueError(f"{steps_what} applies only when {what} is a generator or PyDataset; "
                         f"arrays are split into batches of batch_size, got {steps_what}={steps!r}")
    xa = data.real_array(x, what)
    ya = None
    if targets:
        if y is None:
            raise ValueError(f"{y_what} is required: training and evaluation need targets "
                             "(or pass a generator or PyDataset yielding (x, y) batches)")
        ya = data.real_array(y, y_what)
    if _out_of_core(xa) or (ya is not None and _out_of_core(ya)):
        return MappedSource(xa, ya, what, y_what, weights)
    return ArraySource(xa, ya, what, y_what, weights)


def is_producer(x):
    """True for a generator/iterator or a PyDataset/Sequence (Keras's included)."""
    if isinstance(x, (np.ndarray, list, tuple, dict, str, bytes)):
        return False
    if isinstance(x, (PyDataset, collections.abc.Iterator)):
        return True
    return any(c.__name__ in ("PyDataset", "Sequence") and c.__module__.split(".")[0] in ("keras", "tensorflow")
               for c in type(x).__mro__)


def _out_of_core(arr):
    if isinstance(arr, np.memmap):
        return True
    converts = not (arr.dtype == np.float32 and data.kernel_ready(arr))
    return converts and arr.size * 4 > COPY_LIMIT_BYTES


def _order(n, shuffle):
    """The epoch's row order: a permutation from fastnn's generator, or 0..n-1."""
    ids = seeding.rng().permutation(n) if shuffle else np.arange(n)
    return ids.astype(np.int64, copy=False)


def _split_point(n, fraction):
    """Where Keras's ``validation_split`` (checked by fit to be in [0, 1)) cuts
    ``n`` rows: it trains on the first floor(n * (1 - split)) and validates on the rest."""
    cut = math.floor(n * (1.0 - fraction))
    if cut == 0 or cut == n:
        raise ValueError(f"validation_split={fraction} leaves {n - cut} validation samples of {n}")
    return cut


class _IndexEpoch:
    """One epoch over an indexable source: chunks of ``ids`` of at most
    ``cap`` rows, each a whole number of batches (but the last)."""

    def __init__(self, source, ids, batch, cap):
        self.source, self.ids, self.batch, self.cap, self.pos = source, ids, batch, cap, 0

    def next(self, max_steps):
        """The next chunk of at most ``max_steps`` batches, or None at the end."""
        if self.pos >= self.ids.shape[0]:
            return None
        stop = min(self.ids.shape[0], self.pos + min(max_steps * self.batch, self.cap))
        chunk = self.source._train_chunk(self.ids, self.pos, stop, self.batch)
        self.pos = stop
        return chunk

    def close(self):
        pass


def _row_weights(weights, n):
    """The checked (n,) float32 ``sample_weight`` of ``weights``, or None."""
    sample_weight, _, what = weights
    return None if sample_weight is None else sample_weights.sample_weights(sample_weight, n, what)


class ArraySource:
    """In-memory ``x`` and ``y``, checked and converted once in ``bind``."""

    def __init__(self, x, y, what="x", y_what="y", weights=(None, None, "sample_weight")):
        self._x, self._y, self.what, self.y_what = x, y, what, y_what
        self.n = x.shape[0] if x.ndim else 0
        self._weights = weights
        self.weighted = weights[0] is not None or weights[1] is not None

    @property
    def sample_shape(self):
        return tuple(self._x.shape[1:]) if self._x.ndim >= 2 else None

    def bind(self, input_shape, loss, out_shape):
        self.X = data.features(self._x, input_shape, self.what)
        if loss is None:
            self.Yf, self.Yi = data.empty_targets(math.prod(out_shape))
        else:
            self.Yf, self.Yi = data.targets(self._y, self.n, loss, out_shape, self.y_what)
        sw = _row_weights(self._weights, self.n)
        if sw is None and self._weights[1] is not None:
            sw = sample_weights.class_weights(self._weights[1], self.Yf, self.Yi, math.prod(out_shape))
        self.sw = _NO_WEIGHTS if sw is None else sw
        self._x = self._y = None   # the converted arrays are all we need
        return self

    @classmethod
    def _of(cls, X, Yf, Yi, sw):
        src = cls.__new__(cls)
        src.X, src.Yf, src.Yi, src.sw, src.n = X, Yf, Yi, sw, X.shape[0]
        src.weighted = sw.shape[0] > 0
        return src

    def split(self, fraction):
        """``(first rows, last fraction of rows)``, as Keras's validation_split.
        Sample weights are split with the rows; class weights apply to the first part only."""
        cut = _split_point(self.n, fraction)
        part = (lambda a, s: a[s] if a.shape[0] else a)
        val_sw = part(self.sw, slice(cut, None)) if self._weights[0] is not None else _NO_WEIGHTS
        return (ArraySource._of(self.X[:cut], part(self.Yf, slice(None, cut)), part(self.Yi, slice(None, cut)),
                                part(self.sw, slice(None, cut))),
                ArraySource._of(self.X[cut:], part(self.Yf, slice(cut, None)), part(self.Yi, slice(cut, None)),
                                val_sw))

    def steps(self, batch):
        return -(-self.n // batch)

    def train_epoch(self, batch, shuffle):
        return _IndexEpoch(self, _order(self.n, shuffle), batch, self.n)

    def _train_chunk(self, ids, start, stop, batch):
        return Chunk(self.X, self.Yf, self.Yi, self.sw, ids, start, stop, batch, None)

    def in_order(self, batch, per_batch=False):
        rows = batch if per_batch else max(1, 64 // max(1, batch // 32)) * batch
        for pos in range(0, self.n, rows):
            yield Chunk(self.X, self.Yf, self.Yi, self.sw, None, pos, min(self.n, pos + rows), batch, 0)


def _mapping_root(arr):
    """The memmap that owns the mapping ``arr`` views (its ``offset`` is a file offset), or None."""
    root = arr
    while isinstance(root, np.ndarray) and not isinstance(root.base, mmap.mmap):
        root = root.base
    return root if isinstance(root, np.memmap) else None


def _file_rows_usable(arr):
    """True when rows of ``arr`` can be read from its file with pread(2): a
    shared memmap (a copy-on-write one, mode "c", may differ from its file)
    whose rows are contiguous runs of bytes at a positive stride."""
    if not (isinstance(arr, np.memmap) and arr.mode in ("r", "r+", "w+") and hasattr(os, "preadv")
            and getattr(arr, "filename", None) and arr.ndim >= 1 and arr.shape[0] > 0 and arr.strides[0] > 0
            and _mapping_root(arr) is not None):
        return False
    return arr.ndim == 1 or arr[0].flags.c_contiguous


class _FileRows:
    """Rows of a memory-mapped array read with pread(2) into reused buffers.

    Reading through the mapping would leave every page read mapped in this
    process (the kernel even maps up to 64 KiB around each page touched), so
    resident memory would grow to the whole file over an epoch; pread copies
    from the page cache without mapping anything. Sorted rows less than
    ``_GAP_BYTES`` apart are read in one call, the bytes between discarded,
    so narrow rows (labels) cost few calls."""

    _GAP_BYTES = 4096
    _SPAN_BYTES = 4 << 20

    def __init__(self, arr):
        root = _mapping_root(arr)
        self.offset = root.offset + (arr.ctypes.data - root.ctypes.data)   # file offset of arr's first byte
        self.stride, self.dtype, self.row_shape = arr.strides[0], arr.dtype, arr.shape[1:]
        self.row_bytes = arr.itemsize * math.prod(arr.shape[1:])
        self.gap_rows = 1 + self._GAP_BYTES // self.stride
        self.fd = os.open(arr.filename, os.O_RDONLY)
        weakref.finalize(self, os.close, self.fd)
        self._raw = self._scratch = np.empty(0, dtype=np.uint8)

    def _pread(self, view, offset):
        """Fills the bytes of ``view`` from the file at ``offset``."""
        done = os.preadv(self.fd, [view], offset)
        while done < view.nbytes:   # a short read: go on from where it stopped
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got == 0:
                raise ValueError(f"the file behind the memory-mapped array ends before byte {offset + done}; "
                                 "was it truncated?")
            done += got

    def _span(self, rows, a, b, dest):
        """Rows ``rows[a:b]``, close together, read as spans of at most
        ``_SPAN_BYTES`` into the scratch buffer and picked out."""
        max_rows = max(1, self._SPAN_BYTES // self.stride)
        while a < b:
            first = int(rows[a])
            stop = a + int(np.searchsorted(rows[a:b], first + max_rows))
            span = int(rows[stop - 1]) - first + 1
            nbytes = (span - 1) * self.stride + self.row_bytes
            if self._scratch.nbytes < nbytes:
                self._scratch = np.empty(nbytes, dtype=np.uint8)
            self._pread(memoryview(self._scratch)[:nbytes], self.offset + first * self.stride)
            picked = np.lib.stride_tricks.as_strided(self._scratch, (span, self.row_bytes), (self.stride, 1))
            dest[a:stop] = picked[rows[a:stop] - first]
            a = stop

    def read(self, rows, out=None):
        """Rows ``rows`` (sorted, unique) as an array (m, *row shape) of the
        file's dtype, in a reused buffer; or their raw bytes written into
        ``out`` when given (an array of the same bytes per row)."""
        m, rb = rows.shape[0], self.row_bytes
        if out is None:
            if self._raw.nbytes < m * rb:
                self._raw = np.empty(m * rb, dtype=np.uint8)
            dest = self._raw[:m * rb]
        else:
            dest = out.reshape(-1).view(np.uint8)
        dest = dest.reshape(m, rb)
        bytes_of = memoryview(dest).cast("B")
        breaks = np.flatnonzero(np.diff(rows) > self.gap_rows) + 1
        starts, ends = np.r_[0, breaks], np.r_[breaks, m]
        for a, b, first, last in zip(starts.tolist(), ends.tolist(), rows[starts].tolist(), rows[ends - 1].tolist()):
            if b - a == 1:                                   # a lone row: the common case when shuffled
                self._pread(bytes_of[a * rb:b * rb], self.offset + first * self.stride)
            elif last - first == b - a - 1 and self.stride == rb:   # adjacent rows: straight into place
                self._pread(bytes_of[a * rb:b * rb], self.offset + first * rb)
            else:
                self._span(rows, a, b, dest)
        if out is not None:
            return out
        return dest.reshape(-1).view(self.dtype).reshape(m, *self.row_shape)


class _IndexedRows:
    """Rows read by NumPy indexing: in-memory arrays, copy-on-write memmaps,
    memmap views whose rows are not contiguous bytes.

    Touching a mapped page past the end of its file is SIGBUS, which kills
    the process: for an array backed by a file mapping, the file's size is
    checked before every read (a truncation during the read itself, a window
    of one chunk's copy, is not caught)."""

    def __init__(self, arr):
        self.arr = arr
        self.fd, root = None, _mapping_root(arr)
        if root is not None and getattr(root, "filename", None):
            self.end = root.offset + root.nbytes      # the file's bytes the mapping covers
            self.fd = os.open(root.filename, os.O_RDONLY)
            weakref.finalize(self, os.close, self.fd)

    def read(self, rows, out=None):
        if self.fd is not None and os.fstat(self.fd).st_size < self.end:
            raise ValueError(f"the file behind the memory-mapped array ends before byte {self.end}; "
                             "was it truncated?")
        contiguous = rows.shape[0] > 0 and rows[-1] - rows[0] == rows.shape[0] - 1
        return self.arr[int(rows[0]):int(rows[-1]) + 1] if contiguous else self.arr[rows]


def _rows_reader(arr):
    return _FileRows(arr) if _file_rows_usable(arr) else _IndexedRows(arr)


class MappedSource:
    """Arrays read a chunk at a time (memmaps, or too large to convert whole)."""

    def __init__(self, x, y, what="x", y_what="y", weights=(None, None, "sample_weight")):
        self._x, self._y, self.what, self.y_what = x, y, what, y_what
        self.n = x.shape[0] if x.ndim else 0
        self._weights = weights
        self.weighted = weights[0] is not None or weights[1] is not None
        self._buffers = {}

    @property
    def sample_shape(self):
        return tuple(self._x.shape[1:]) if self._x.ndim >= 2 else None

    def bind(self, input_shape, loss, out_shape):
        _, self._width = data.feature_layout(self._x, input_shape, self.what)
        self._spec = (input_shape, loss, tuple(out_shape))
        self._loss, self._n_out = loss, math.prod(out_shape)
        self._kind = None if loss is None else data.target_layout(self._y, self.n, loss, out_shape, self.y_what)
        self._readers = (_rows_reader(self._x), None if self._kind is None else _rows_reader(self._y))
        self._sw = _row_weights(self._weights, self.n)    # in memory: 4 bytes a row
        return self

    def split(self, fraction):
        """As ``ArraySource.split``, without reading the rows."""
        cut = _split_point(self.n, fraction)
        sample_weight, class_weight, what = self._weights
        halves = []
        for s, cw in ((slice(None, cut), class_weight), (slice(cut, None), None)):
            sw = None if sample_weight is None else sample_weights.sample_weights(sample_weight, self.n, what)[s]
            part = MappedSource(self._x[s], None if self._y is None else self._y[s], self.what, self.y_what,
                                (sw, cw, what))
            halves.append(part.bind(*self._spec))
        return tuple(halves)

    def steps(self, batch):
        return -(-self.n // batch)

    def _cap(self, batch):
        """Rows per chunk: whole batches within CHUNK_BYTES, at least one batch."""
        return max(batch, CHUNK_BYTES // (4 * self._width) // batch * batch)

    def train_epoch(self, batch, shuffle):
        return _IndexEpoch(self, _order(self.n, shuffle), batch, self._cap(batch))

    def _train_chunk(self, ids, start, stop, batch):
        chosen = ids[start:stop]
        order = np.argsort(chosen, kind="stable")
        X, Yf, Yi, sw = self._read(chosen[order])
        local = np.empty(order.shape[0], dtype=np.int64)
        local[order] = np.arange(order.shape[0])   # buffer row of each id, in the epoch's order
        return Chunk(X, Yf, Yi, sw, local, 0, local.shape[0], batch, None)

    def in_order(self, batch, per_batch=False):
        cap = batch if per_batch else self._cap(batch)
        for pos in range(0, self.n, cap):
            stop = min(self.n, pos + cap)
            X, Yf, Yi, sw = self._read(np.arange(pos, stop))
            yield Chunk(X, Yf, Yi, sw, None, 0, stop - pos, batch, pos)

    def _buffer(self, name, shape, dtype):
        buf = self._buffers.get(name)
        if buf is None or buf.shape[0] < shape[0]:
            buf = self._buffers[name] = np.empty(shape, dtype=dtype)
        return buf[:shape[0]]

    def _read(self, rows):
        """Rows ``rows`` (sorted) of x and y, converted into the reused buffers and
        checked, and their weights: ``(X, Yf, Yi, sw)``."""
        m = rows.shape[0]
        X = self._buffer("x", (m, self._width), np.float32)
        x_reader, y_reader = self._readers
        if isinstance(x_reader, _FileRows) and x_reader.dtype == np.float32:
            data.check_finite(x_reader.read(rows, out=X), self.what, rows)   # no conversion: read in place
        else:
            data.features_into(x_reader.read(rows), X, self.what, rows)
        Yf, Yi = data.empty_targets(self._n_out)
        if self._kind is not None:
            if self._kind == "sparse":
                Yi = out = self._buffer("yi", (m,), np.int64)
            else:
                Yf = out = self._buffer("yf", (m, self._n_out), np.float32)
            data.targets_into(y_reader.read(rows), self._kind, self._loss, self._n_out, out, self.y_what, rows)
        sw = _NO_WEIGHTS
        if self._sw is not None:
            sw = self._sw[rows]
        elif self._weights[1] is not None and self._kind is not None:
            sw = sample_weights.class_weights(self._weights[1], Yf, Yi, self._n_out)
        return X, Yf, Yi, sw


def _unpack(batch, where):
    """``(x, y, sample_weight)`` from a producer's batch: ``(x, y, sample_weight)``,
    ``(x, y)``, ``(x,)`` or ``x`` (the missing ones None)."""
    if isinstance(batch, list):
        batch = tuple(batch)
    if not isinstance(batch, tuple):
        if isinstance(batch, dict):
            raise ValueError(f"{where} is a dict; fastnn takes batches as (x, y) tuples")
        return batch, None, None
    if not 1 <= len(batch) <= 3:
        raise ValueError(f"{where} must be a tuple (x, y), (x, y, sample_weight) or (x,), "
                         f"got a tuple of {len(batch)} items")
    return (*batch, None, None)[:3]


class _BatchEpoch:
    """One pass over a producer: up to ``limit`` batches (None: until it ends).
    With ``hooks`` (training), calls a PyDataset's on_epoch_begin/on_epoch_end."""

    def __init__(self, source, order, limit, hooks):
        self.source, self.order, self.limit, self.hooks = source, order, limit, hooks
        self.taken = 0
        self.held = None   # a checked batch of another size, for the next chunk
        ds = source._ds
        if hooks and ds is not None and hasattr(ds, "on_epoch_begin"):
            ds.on_epoch_begin()

    def _fetch(self):
        if self.limit is not None and self.taken >= self.limit:
            return None
        got = self.source._get(self.order[self.taken] if self.order is not None else None)
        if got is not None:
            self.taken += 1
        return got

    def next(self, max_steps):
        first, self.held = self.held or self._fetch(), None
        if first is None:
            return None
        parts = [first]
        b = first[0].shape[0]
        while len(parts) < max_steps:
            nxt = self._fetch()
            if nxt is None:
                break
            if nxt[0].shape[0] != b:
                self.held = nxt
                break
            parts.append(nxt)
        if len(parts) == 1:
            X, Yf, Yi, sw = first
        else:
            X, Yf, Yi, sw = (np.concatenate([p[i] for p in parts]) if first[i].shape[0] else first[i]
                             for i in range(4))
        m = X.shape[0]
        return Chunk(X, Yf, Yi, sw, np.arange(m, dtype=np.int64), 0, m, b, None)

    def close(self):
        ds = self.source._ds
        if self.hooks and ds is not None and hasattr(ds, "on_epoch_end"):
            ds.on_epoch_end()


class BatchSource:
    """Batches from a generator/iterator or a PyDataset/Sequence, checked one by one."""

    def __init__(self, producer, steps, what="x", steps_what="steps", class_weight=None):
        self.what, self.n, self._limit = what, None, steps
        self._class_weight, self._weighted = class_weight, None
        self._ds_first = None   # batch 0 of a PyDataset, once peeked
        iterator = isinstance(producer, collections.abc.Iterator) and not isinstance(producer, PyDataset)
        self._ds, self._it = (None, producer) if iterator else (producer, None)
        self._peeked = None
        self._count = None
        if self._ds is not None:
            count = getattr(producer, "num_batches", None) if not hasattr(producer, "__len__") else len(producer)
            if count is None and steps is None:
                raise ValueError(f"{what} is a PyDataset without __len__ (endless): pass {steps_what}")
            if count is not None:
                count = data.positive_int(count, f"len({what}) (the number of batches)", minimum=1)
            self._count = count

    @property
    def sample_shape(self):
        raw = self._first()
        x = data.real_array(_unpack(raw, f"the first batch of {self.what}")[0], f"x of the first batch of {self.what}")
        return tuple(x.shape[1:]) if x.ndim >= 2 else None

    @property
    def weighted(self):
        """Whether batches carry weights: class weights, or a first batch (x, y, sample_weight)."""
        if self._class_weight is not None:
            return True
        if self._weighted is None:
            self._weighted = _unpack(self._first(), f"the first batch of {self.what}")[2] is not None
        return self._weighted

    def _first(self):
        """The first batch, unchecked, kept until it is read for training."""
        if self._ds is not None:
            if self._ds_first is None:
                self._ds_first = self._ds[0]
            return self._ds_first
        if self._peeked is None:
            self._peeked = self._next_raw()
            if self._peeked is None:
                raise ValueError(f"{self.what} is an empty generator: it yielded no batch")
        return self._peeked

    def bind(self, input_shape, loss, out_shape):
        self._spec = (input_shape, loss, tuple(out_shape))
        return self

    def bind_io(self, io, with_targets):
        """Binds to a model of several inputs or outputs: each batch's ``x``
        and ``y`` (tuples/lists in input/output order, or dicts by name) are
        packed by ``io`` (an ``outputs.ModelIO``) as arrays would be."""
        self._io = (io, with_targets)
        return self

    _io = None

    def steps(self, batch=None):
        """Batches per epoch, or None when unknown (a generator without steps)."""
        if self._count is None:
            return self._limit
        return self._count if self._limit is None else min(self._count, self._limit)

    def _next_raw(self):
        try:
            return next(self._it)
        except StopIteration:
            return None

    def _get(self, index):
        """Batch ``index`` of a PyDataset (or the generator's next), checked and converted; None at the end."""
        if self._ds is not None:
            index = int(index)
            raw = self._ds_first if index == 0 and self._ds_first is not None else self._ds[index]
            if index == 0:
                self._ds_first = None
            where = f"batch {index} of {self.what}"
        else:
            raw = self._peeked if self._peeked is not None else self._next_raw()
            self._peeked = None
            if raw is None:
                return None
            where = f"a batch of the generator {self.what}"
        x, y, sw = _unpack(raw, where)
        if self._io is not None:
            io, with_targets = self._io
            X = io.features(x, f"x of {where}")
            if not with_targets:
                return X, np.zeros((0, 0), np.float32), np.zeros((0, 0), np.int64), _NO_WEIGHTS
        else:
            input_shape, loss, out_shape = self._spec
            X = data.features(x, input_shape, f"x of {where}")
            if loss is None:
                return (X, *data.empty_targets(math.prod(out_shape)), _NO_WEIGHTS)
        if y is None:
            raise ValueError(f"{where} has no targets: fit and evaluate need (x, y) batches")
        Yf, Yi = io.targets(y, X.shape[0], f"y of {where}") if self._io is not None else \
            data.targets(y, X.shape[0], loss, out_shape, f"y of {where}")
        if sw is not None and self._class_weight is not None:
            raise ValueError(f"You cannot use class_weight and sample_weight at the same time ({where} holds "
                             "sample weights)")
        if self._class_weight is None and (sw is not None) != self.weighted:
            raise ValueError(f"{where} {'has' if sw is not None else 'lacks'} sample weights, unlike the first "
                             "batch: yield (x, y) or (x, y, sample_weight) throughout")
        if sw is not None:
            sw = sample_weights.sample_weights(sw, X.shape[0], f"sample_weight of {where}")
        elif self._class_weight is not None:
            sw = sample_weights.class_weights(self._class_weight, Yf, Yi, math.prod(out_shape))
        return X, Yf, Yi, _NO_WEIGHTS if sw is None else sw

    def _indices(self, shuffle):
        if self._ds is None:
            return None
        if self._count is None:   # endless: 0, 1, ... steps-1 every epoch, as Keras
            return np.arange(self._limit)
        return _order(self._count, shuffle) if shuffle else np.arange(self._count)

    def train_epoch(self, batch, shuffle):
        return _BatchEpoch(self, self._indices(shuffle), self.steps(), hooks=True)

    def in_order(self, batch, per_batch=True):
        epoch = _BatchEpoch(self, self._indices(False), self.steps(), hooks=False)
        while True:
            got = epoch._fetch()
            if got is None:
                return
            X, Yf, Yi, sw = got
            yield Chunk(X, Yf, Yi, sw, None, 0, X.shape[0], X.shape[0], None)
