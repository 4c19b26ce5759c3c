"""fit / evaluate / predict: Python at the edges, compiled loops in the middle.

The Python side reads the data through a source (``sources``: in-memory
arrays checked once, memory-mapped arrays and Python producers checked a
chunk at a time), shuffles, and calls the compiled loop for a chunk of
steps at a time (sized to about a tenth of a second), then draws the
progress bar and runs callbacks. While compiled code runs, BLAS is pinned
to one thread: Numba's pool owns the cores.

Faults: a NaN/inf loss stops the compiled loop before that batch's update
and fit raises ``NonFiniteLossError``; Ctrl-C is held until the chunk in
flight is done and counted, then raised as ``KeyboardInterrupt`` (``_HoldInterrupt``).
"""
import collections.abc
import math
import numbers
import signal
import threading
import time
import warnings

import numba
import numpy as np

from .. import callbacks as callbacks_module
from ..errors import NonFiniteLossError
from ..kernels import program as P
from ..kernels.cpu import engine
from ..utils.progbar import Progbar
from . import data, sources

_CHUNK_SECONDS = 0.1
_blas_controller = None


def blas_single_thread():
    """Context manager pinning every loaded BLAS to one thread."""
    global _blas_controller
    if _blas_controller is None:
        from threadpoolctl import ThreadpoolController
        _blas_controller = ThreadpoolController()
    return _blas_controller.limit(limits=1, user_api="blas")


def resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return verbose


class Workspace:
    """Per-(program, batch size) buffers, allocated once and reused."""

    def __init__(self, program, batch):
        self.batch = batch
        self.ws = np.zeros(batch * program.slots, dtype=np.float32)
        self.gs = np.zeros_like(self.ws)
        self.yb = np.zeros(batch * program.out_width, dtype=np.float32)
        self.yl = np.zeros(batch, dtype=np.int64)
        self.ab = np.array([1.0, 0.0], dtype=np.float32)


def _logs(sums, metrics, prefix=""):
    n = max(sums[1], 1.0)
    logs = {prefix + "loss": float(sums[0] / n)}
    for k, m in enumerate(metrics):
        logs[prefix + m.name] = float(m.finish(sums[2 + k] / n))
    return logs


def run_inference(model, program, source, batch_size, loss, metrics, want_output, verbose, params):
    """Forward passes over every row of ``source`` (a bound ``sources`` source).

    Returns ``(sums, outputs)``: the running [loss, samples, metrics...] sums
    (with ``loss``) and, when ``want_output``, float32 outputs of shape
    (samples, out_width), else None."""
    ws = Workspace(program, batch_size)
    loss_code = loss.code if loss is not None else -1
    loss_mode = 1 if (loss is not None and loss.from_logits) else 0
    codes = np.array([m.code for m in metrics], dtype=np.int64)
    sums = np.zeros(2 + len(metrics), dtype=np.float64)
    width = program.out_width
    n = source.n
    out = np.empty((n if want_output and n is not None else 0, width), dtype=np.float32)
    parts = []   # outputs of a producer, whose length is unknown up front
    bar = Progbar(source.steps(batch_size), verbose) if verbose else None
    n_parts = numba.get_num_threads()
    done = 0
    with blas_single_thread():
        for chunk in source.in_order(batch_size):
            if chunk.batch > ws.batch:
                ws = Workspace(program, chunk.batch)
            dst = out
            if want_output and chunk.offset is None:
                dst = np.empty((chunk.stop, width), dtype=np.float32)
                parts.append(dst)
            elif want_output:
                dst = out[chunk.offset:]
            engine.infer_steps(program.prog, params, program.consts, chunk.X, chunk.Yf, chunk.Yi, chunk.start,
                               chunk.stop, chunk.batch, ws.ws, ws.yb, ws.yl, loss_code, loss_mode, codes, sums, dst,
                               n_parts, ws.ab)
            done += -(-(chunk.stop - chunk.start) // chunk.batch)
            if bar:
                bar.update(done, _logs(sums, metrics).items() if loss is not None else ())
    if done == 0:
        raise ValueError(f"{source.what} yielded no batches")
    if bar:
        bar.update(done, list(_logs(sums, metrics).items()) if loss is not None else (), finalize=True)
    if want_output and n is None:
        out = np.concatenate(parts)
    return sums, (out if want_output else None)


class _Snapshot:
    """Weights and optimizer state at the start of an epoch: what fit goes
    back to when a non-finite loss finds the weights already non-finite.
    One copy per epoch (the per-batch stop in ``train_steps`` costs nothing)."""

    def __init__(self, params, opt):
        self.params = params.copy()
        self.slots = None if opt.slots is None else opt.slots.copy()
        self.iterations = opt.iterations

    def restore(self, params, opt):
        params[...] = self.params
        if self.slots is not None:
            opt.slots[...] = self.slots
        opt.iterations = self.iterations


def _finite(params):
    """True when every value is finite: a float64 sum of float32 values
    cannot overflow, so it is finite exactly when they all are."""
    with np.errstate(invalid="ignore"):   # inf + -inf: NaN, which is the answer
        return bool(np.isfinite(params.sum(dtype=np.float64)))


def _non_finite(params, opt, saved, epoch, batch, what="the loss became NaN or inf at"):
    """The error for a NaN/inf at ``batch`` of ``epoch``, after making sure
    the model holds finite weights (restoring the epoch's start if not)."""
    restored = not _finite(params)
    if restored:
        saved.restore(params, opt)
    where = "the weights and optimizer state from the start of this epoch were restored" if restored else \
        "the model keeps the weights from before that batch"
    return NonFiniteLossError(
        f"fit stopped: {what} epoch {epoch + 1}, batch {batch + 1}; {where}. Usual causes: a learning rate too "
        "high for the data's scale, unscaled inputs or targets, or a loss that does not fit the output (e.g. "
        "cross-entropy on unbounded outputs)", epoch=epoch, batch=batch, restored=restored)


class _HoldInterrupt:
    """Holds Ctrl-C (SIGINT) while a chunk of training steps runs and is
    accounted for, then raises ``KeyboardInterrupt``: compiled code cannot be
    interrupted anyway (a chunk lasts about 0.1 s), and raising before the
    step count is recorded would leave the optimizer out of step with the
    weights. So the user gets the interrupt after the chunk, with the model
    usable and ``model.history`` holding the finished epochs. Only in the
    main thread, over Python's default handler (a user's own is left alone)."""

    def __enter__(self):
        self.pending, self._previous = False, None
        if threading.current_thread() is threading.main_thread() and \
                signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            self._previous = signal.signal(signal.SIGINT, self._hold)
        return self

    def _hold(self, signum, frame):
        self.pending = True

    def __exit__(self, kind, value, tb):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        if self.pending and kind is None:
            raise KeyboardInterrupt
        return False


def _validation_source(model, validation_data, validation_steps):
    if sources.is_producer(validation_data):
        if isinstance(validation_data, collections.abc.Iterator) and validation_steps is None:
            raise ValueError("validation_data is a generator: pass validation_steps (batches per validation "
                             "pass; a generator cannot be restarted every epoch), or use a PyDataset")
        return model._source(validation_data, None, model.loss, steps=validation_steps, what="validation_data",
                             steps_what="validation_steps")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or a PyDataset, got "
                         f"{type(validation_data).__name__}"
                         + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""))
    if len(validation_data) == 3 and validation_data[2] is not None:
        raise ValueError("validation_data with sample weights (x_val, y_val, sample_weight) is not supported; "
                         "pass (x_val, y_val)")
    return model._source(validation_data[0], validation_data[1], model.loss, what="validation_data[0] (x)",
                         y_what="validation_data[1] (y)")


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, initial_epoch, steps_per_epoch, validation_steps=None):
    batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
    epochs = data.positive_int(epochs, "epochs", minimum=0)
    initial_epoch = data.positive_int(initial_epoch, "initial_epoch", minimum=0)
    verbose = resolve_verbose(verbose)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) or \
            not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")

    train = model._source(x, y, model.loss, steps=steps_per_epoch, steps_what="steps_per_epoch")
    program = model._program_for_training()
    val = None
    if validation_data is not None:   # Keras: validation_data wins over validation_split
        val = _validation_source(model, validation_data, validation_steps)
    elif validation_split:
        if isinstance(train, sources.BatchSource):
            raise ValueError("validation_split needs arrays; with a generator or PyDataset pass validation_data")
        train, val = train.split(validation_split)
    metrics = model._resolve_metrics(model.loss.code == P.SCCE)

    opt = model.optimizer
    opt.build(model._n_trainable)
    params = model._params
    grads = np.zeros_like(params)
    steps = train.steps(batch_size)
    ws = Workspace(program, batch_size)
    codes = np.array([m.code for m in metrics], dtype=np.int64)
    loss_mode = 1 if model.loss.from_logits else 0
    n_parts = numba.get_num_threads()

    history = callbacks_module.History()
    cbs = callbacks_module.CallbackList(list(callbacks or []) + [history], model,
                                        {"epochs": epochs, "steps": steps, "verbose": verbose})
    model.history = history
    model.stop_training = False
    cbs.on_train_begin()
    steps_per_chunk = 1 if cbs.batch_level else 8
    logs = {}
    for epoch in range(initial_epoch, epochs):
        cbs.on_epoch_begin(epoch)
        if verbose:
            print(f"Epoch {epoch + 1}/{epochs}")
        saved = _Snapshot(params, opt)
        reader = train.train_epoch(batch_size, shuffle)
        sums = np.zeros(2 + len(metrics), dtype=np.float64)
        bar = Progbar(steps, verbose) if verbose else None
        step = 0
        ran_out = False
        hp = opt.hyper()
        while True:
            t0 = time.perf_counter()
            chunk = reader.next(steps_per_chunk)
            if chunk is None:
                ran_out = True
                break
            if cbs.batch_level:
                cbs.on_train_batch_begin(step)
            if chunk.batch > ws.batch:
                ws = Workspace(program, chunk.batch)
            with _HoldInterrupt(), blas_single_thread():
                done = engine.train_steps(
                    program.prog, params, program.consts, grads, opt.slots[0], opt.slots[1],
                    model._n_trainable, opt.code, hp, opt.iterations, chunk.X, chunk.Yf, chunk.Yi, chunk.ids,
                    chunk.start, chunk.stop, chunk.batch,
                    ws.ws, ws.gs, ws.yb, ws.yl, model.loss.code, loss_mode, codes, sums, n_parts, ws.ab)
                k = done - opt.iterations
                opt.iterations = done
                step += k
            elapsed = time.perf_counter() - t0
            logs = _logs(sums, metrics)
            if not math.isfinite(sums[0]):
                if cbs.batch_level:
                    cbs.on_train_batch_end(step, logs)
                if model.stop_training:   # a callback (TerminateOnNaN) chose to stop quietly
                    break
                raise _non_finite(params, opt, saved, epoch, step)
            if cbs.batch_level:
                cbs.on_train_batch_end(step - 1, logs)
            elif elapsed > 0:
                steps_per_chunk = int(min(max(1, k * _CHUNK_SECONDS / elapsed), 4 * k + 1))
            if bar:
                bar.update(step, logs.items())
        reader.close()
        if ran_out and step > 0 and not _finite(params):   # the epoch's last update overflowed
            raise _non_finite(params, opt, saved, epoch, step - 1,
                              "the weights became NaN or inf in the update of")
        if ran_out and step == 0:   # only a generator can run dry
            warnings.warn(f"The training data ran out at epoch {epoch + 1}; training stops. Make sure a "
                          "generator can yield steps_per_epoch * epochs batches (or use a PyDataset)",
                          stacklevel=3)
            break
        if ran_out and steps is not None and step < steps:
            warnings.warn(f"The training data ran out after {step} of {steps} batches in epoch {epoch + 1}; "
                          "training stops after this epoch", stacklevel=3)
            model.stop_training = True
        if val is not None:
            vsums, _ = run_inference(model, program, val, batch_size, model.loss, metrics, False, 0, params)
            logs.update(_logs(vsums, metrics, "val_"))
        if bar:
            bar.update(step, list(logs.items()), finalize=True)
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return history


def loss_and_gradients(model, x, y):
    """Mean loss of the compiled model on the batch (x, y) and the gradient
    with respect to the flat parameter buffer (a new float32 array, same
    layout as ``model._params``; trainable weights first). No update."""
    X = model._input_features(x, "x")
    program = model._program_for_training()
    Yf, Yi = data.targets(y, X.shape[0], model.loss, model._layers[-1].output_shape, "y")
    ws = Workspace(program, X.shape[0])
    grads = np.zeros_like(model._params)
    with blas_single_thread():
        loss = engine.loss_gradients(program.prog, model._params, program.consts, grads, X, Yf, Yi,
                                     X.shape[0], ws.ws, ws.gs, ws.yb, ws.yl, model.loss.code,
                                     1 if model.loss.from_logits else 0, numba.get_num_threads(), ws.ab)
    return float(loss), grads
