"""fit / evaluate / predict: Python at the edges, compiled loops in the middle.

The Python side validates and converts the data once, shuffles, and calls
the compiled loop for a chunk of steps at a time (sized to about a tenth of
a second), then draws the progress bar and runs callbacks. While compiled
code runs, BLAS is pinned to one thread: Numba's pool owns the cores.
"""
import time

import numba
import numpy as np

from .. import callbacks as callbacks_module
from ..kernels.cpu import engine, regularizers
from ..kernels.cpu.sample_loss import unused_loss
from ..utils import seeding
from ..utils.progbar import Progbar
from . import data, sample_weights

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


def _targets(Yf, Yi, rows):
    """The targets of ``rows`` as own metrics see them: labels or dense rows."""
    return Yi[rows] if Yi.shape[0] > 0 else Yf[rows]


def weight_penalty(program, params):
    """The weight penalties of ``program`` at the current weights (0.0 without regularizers)."""
    if program.regs.shape[0] == 0:
        return 0.0
    return regularizers.penalty(program.regs, program.consts, params, params, False)


def run_inference(model, program, X, Yf, Yi, batch_size, loss, metrics, want_output, verbose, params, sw=None):
    """Forward passes over all of X; returns (sums, outputs or None).

    ``metrics`` is a ``metrics.ModelMetrics`` (or None without a loss); ``sw``
    float32 (n,) sample weights or None. The loss includes the weight
    penalties, as in Keras."""
    n = X.shape[0]
    ws = Workspace(program, batch_size)
    loss_code = loss.code if loss is not None else -1
    loss_mode = 1 if (loss is not None and loss.from_logits) else 0
    value_fn, grad_fn, loss_consts = loss.kernel_functions() if loss is not None else \
        (*unused_loss(), np.zeros(0, dtype=np.float32))
    codes = metrics.codes if metrics is not None else np.zeros(0, dtype=np.int64)
    sums = np.zeros(2 + len(codes), dtype=np.float64)
    keep = want_output or (metrics is not None and metrics.needs_predictions)
    out = np.empty((n, program.out_width) if keep else (0, program.out_width), dtype=np.float32)
    sw_arr = sw if sw is not None else np.zeros(0, dtype=np.float32)
    penalty = weight_penalty(program, params) if loss is not None else 0.0
    if metrics is not None:
        metrics.reset()

    def logs():
        with_penalty = sums.copy()
        with_penalty[0] += penalty * sums[1]
        return metrics.logs(with_penalty)

    steps = -(-n // batch_size)
    bar = Progbar(steps, verbose) if verbose else None
    n_parts = numba.get_num_threads()
    chunk = max(1, 64 // max(1, batch_size // 32)) * batch_size
    pos = 0
    with blas_single_thread():
        while pos < n:
            stop = min(n, pos + chunk)
            engine.infer_steps(program.prog, params, program.consts, X, Yf, Yi, pos, stop, batch_size,
                               ws.ws, ws.yb, ws.yl, loss_code, loss_mode, codes, sums, out, n_parts, ws.ab,
                               sw_arr, value_fn, grad_fn, loss_consts)
            if metrics is not None and metrics.needs_predictions:
                rows = slice(pos, stop)
                metrics.update(_targets(Yf, Yi, rows), out[rows], None if sw is None else sw[rows])
            pos = stop
            if bar:
                bar.update(-(-pos // batch_size), logs().items() if loss is not None else ())
    if bar:
        bar.update(steps, list(logs().items()) if loss is not None else (), finalize=True)
    sums[0] += penalty * sums[1]
    return sums, (out if want_output else None)


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, initial_epoch, steps_per_epoch, class_weight=None, sample_weight=None):
    batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
    epochs = data.positive_int(epochs, "epochs", minimum=0)
    initial_epoch = data.positive_int(initial_epoch, "initial_epoch", minimum=0)
    verbose = resolve_verbose(verbose)
    if not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be in [0, 1), got {validation_split!r}")
    if steps_per_epoch is not None:
        raise ValueError("steps_per_epoch is only meaningful for generators, which fit does not take yet")

    X = model._input_features(x, "x")
    program = model._program_for_training()
    Yf, Yi = data.targets(y, X.shape[0], model.loss, program.out_width, "y")
    if class_weight is not None and sample_weight is not None:
        raise ValueError("You cannot use class_weight and sample_weight at the same time")
    if sample_weight is not None:
        sw = sample_weights.sample_weights(sample_weight, X.shape[0])
    elif class_weight is not None:
        sw = sample_weights.class_weights(class_weight, Yf, Yi, program.out_width)
    else:
        sw = None
    if validation_data is not None and validation_split:
        validation_split = 0.0   # Keras: validation_data wins
    if validation_split:
        n_val = int(X.shape[0] * validation_split)
        if n_val == 0 or n_val == X.shape[0]:
            raise ValueError(f"validation_split={validation_split} leaves {n_val} validation samples of {X.shape[0]}")
        cut = X.shape[0] - n_val
        # Keras splits sample weights with the data but applies class weights to training data only.
        val = (X[cut:], Yf[cut:], Yi[cut:], sw[cut:] if sample_weight is not None else None)
        X, Yf, Yi = X[:cut], Yf[:cut], Yi[:cut]
        sw = None if sw is None else sw[:cut]
    elif validation_data is not None:
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
            raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight)")
        xv = model._input_features(validation_data[0], "validation_data[0] (x)")
        yvf, yvi = data.targets(validation_data[1], xv.shape[0], model.loss, program.out_width,
                                "validation_data[1] (y)")
        swv = None
        if len(validation_data) == 3 and validation_data[2] is not None:
            swv = sample_weights.sample_weights(validation_data[2], xv.shape[0], "validation_data[2] (sample_weight)")
        val = (xv, yvf, yvi, swv)
    else:
        val = None
    metrics = model._resolve_metrics(Yi.shape[0] > 0, sw is not None)
    val_metrics = None if val is None else model._resolve_metrics(Yi.shape[0] > 0, val[3] is not None)

    opt = model.optimizer
    if getattr(model, "_optimizer_layout", None) is not model._layout:
        opt.slots = None    # the trainable part of the buffer changed: its slots no longer match
        model._optimizer_layout = model._layout
    opt.build(model._n_trainable)
    params = model._params
    grads = np.zeros_like(params)
    n = X.shape[0]
    steps = -(-n // batch_size)
    ws = Workspace(program, batch_size)
    codes = metrics.codes
    loss_mode = 1 if model.loss.from_logits else 0
    value_fn, grad_fn, loss_consts = model.loss.kernel_functions()
    sw_arr = sw if sw is not None else np.zeros(0, dtype=np.float32)
    pred_out = np.empty((n if metrics.needs_predictions else 0, program.out_width), dtype=np.float32)
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
        ids = seeding.rng().permutation(n) if shuffle else np.arange(n)
        ids = ids.astype(np.int64)
        sums = np.zeros(2 + len(codes), dtype=np.float64)
        metrics.reset()
        bar = Progbar(steps, verbose) if verbose else None
        step = 0
        hp = opt.hyper()
        while step < steps:
            k = min(steps_per_chunk, steps - step)
            if cbs.batch_level:
                cbs.on_train_batch_begin(step)
            t0 = time.perf_counter()
            start, stop = step * batch_size, min(n, (step + k) * batch_size)
            with blas_single_thread():
                opt.iterations = engine.train_steps(
                    program.prog, params, program.consts, grads, opt.slots[0], opt.slots[1],
                    model._n_trainable, opt.code, hp, opt.iterations, X, Yf, Yi, ids,
                    start, stop, batch_size,
                    ws.ws, ws.gs, ws.yb, ws.yl, model.loss.code, loss_mode, codes, sums, n_parts, ws.ab,
                    program.regs, sw_arr, value_fn, grad_fn, loss_consts, pred_out)
            if metrics.needs_predictions:
                rows = ids[start:stop]
                metrics.update(_targets(Yf, Yi, rows), pred_out[start:stop], None if sw is None else sw[rows])
            elapsed = time.perf_counter() - t0
            step += k
            logs = metrics.logs(sums)
            if cbs.batch_level:
                cbs.on_train_batch_end(step - 1, logs)
            elif elapsed > 0:
                steps_per_chunk = int(min(max(1, k * _CHUNK_SECONDS / elapsed), 4 * k + 1))
            if bar:
                bar.update(step, logs.items())
        if val is not None:
            vsums, _ = run_inference(model, program, val[0], val[1], val[2], batch_size, model.loss, val_metrics,
                                     False, 0, params, val[3])
            logs.update(val_metrics.logs(vsums, "val_"))
        if bar:
            bar.update(steps, list(logs.items()), finalize=True)
        cbs.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return history


def loss_and_gradients(model, x, y, sample_weight=None, training=False):
    """Loss of the compiled model on the batch (x, y) and its gradient with
    respect to the flat parameter buffer (a new float32 array, same layout as
    ``model._params``; trainable weights first, the rest left at zero).

    The loss is what ``fit`` minimises on that batch: the mean per-sample
    loss (``sum_i w_i l_i / n`` with ``sample_weight``) plus the weight
    penalties. ``training=True`` runs the layers in training mode (dropout
    masks, batch statistics) without updating moving statistics; nothing is
    updated either way."""
    X = model._input_features(x, "x")
    program = model._program_for_training()
    Yf, Yi = data.targets(y, X.shape[0], model.loss, program.out_width, "y")
    sw = np.zeros(0, dtype=np.float32) if sample_weight is None else \
        sample_weights.sample_weights(sample_weight, X.shape[0])
    value_fn, grad_fn, loss_consts = model.loss.kernel_functions()
    ws = Workspace(program, X.shape[0])
    grads = np.zeros_like(model._params)
    with blas_single_thread():
        loss = engine.loss_gradients(program.prog, model._params, program.consts, grads, X, Yf, Yi,
                                     X.shape[0], ws.ws, ws.gs, ws.yb, ws.yl, model.loss.code,
                                     1 if model.loss.from_logits else 0, numba.get_num_threads(), ws.ab,
                                     program.regs, sw, value_fn, grad_fn, loss_consts, bool(training))
    return float(loss), grads
