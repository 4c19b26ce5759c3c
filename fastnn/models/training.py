"""fit / evaluate / predict: Python at the edges, compiled loops in the middle.

The Python side validates and converts the data once, shuffles, and calls
the compiled loop for a chunk of steps at a time (sized to about a tenth of
a second), then draws the progress bar and runs callbacks. While compiled
code runs, BLAS is pinned to one thread: Numba's pool owns the cores.
"""
import math
import time

import numba
import numpy as np

from .. import callbacks as callbacks_module
from .. import config
from ..kernels import program as P
from ..kernels.cpu import engine, regularizers
from ..kernels.cpu.sample_loss import unused_loss
from ..utils import seeding
from ..utils.progbar import Progbar
from . import data, sample_weights
from . import program as program_module

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


def cuda_session(program, params, batch_size, optimizer=None, n_trainable=0, loss=None, metrics=None,
                 weighted=False):
    """A ``kernels.cuda.engine.Session`` holding the model on the GPU when the
    device (``fastnn.config``) is "cuda", else None (train on the CPU)."""
    if config.get_device() != "cuda":
        return None
    if optimizer is not None:
        _check_cuda_optimizer(optimizer)
    _check_cuda_features(program, loss, metrics, weighted)
    from ..kernels.cuda.engine import Session
    # Dropout masks: seeded from NumPy's global generator (set_random_seed seeds
    # it), not fastnn's, whose stream the shuffles share with the CPU path.
    seed = int(np.random.randint(0, 2**31 - 1)) if np.any(program.prog[:, P.KIND] == P.DROPOUT) else 0
    return Session(program, params, batch_size, optimizer, n_trainable, seed)


def _check_cuda_optimizer(opt):
    """The CUDA update kernel has SGD/momentum/Nesterov, plain RMSprop, Adam and
    Adagrad at fixed learning rates; refuse the rest rather than train differently."""
    hp = opt.hyper()
    unsupported = []
    if opt.code not in (P.SGD, P.RMSPROP, P.ADAM, P.ADAGRAD):
        unsupported.append(type(opt).__name__)
    if hp[P.HP_SCHED] != P.SCHED_NONE:
        unsupported.append("learning-rate schedules")
    if hp[P.HP_AMSGRAD] or hp[P.HP_CENTERED] or (opt.code == P.RMSPROP and hp[P.HP_2]):
        unsupported.append("amsgrad / centered or momentum RMSprop")
    if hp[P.HP_WD] or hp[P.HP_CLIPNORM] or hp[P.HP_CLIPVALUE] or hp[P.HP_GLOBAL_CLIPNORM]:
        unsupported.append("weight decay / gradient clipping")
    if unsupported:
        raise NotImplementedError(f"The CUDA device does not support {', '.join(unsupported)} yet; "
                                  "train on the CPU (fastnn.config.set_device('cpu'))")


def _check_cuda_features(program, loss, metrics, weighted):
    """The CUDA kernels have neither BatchNormalization, LeakyReLU, weight
    penalties, own losses, sample weights nor own metrics yet; refuse them
    rather than train differently."""
    kinds = set(program.prog[:, P.KIND].tolist())
    unsupported = [name for kind, name in ((P.BATCHNORM, "BatchNormalization"), (P.LEAKY_RELU, "LeakyReLU"))
                   if kind in kinds]
    if program.regs.shape[0] > 0:
        unsupported.append("weight regularizers")
    if loss is not None and loss.code == P.CUSTOM:
        unsupported.append(f"the loss {type(loss).__name__}")
    if weighted:
        unsupported.append("sample or class weights")
    if metrics is not None and metrics.needs_predictions:
        unsupported.append("own or weighted metrics")
    if unsupported:
        raise NotImplementedError(f"The CUDA device does not support {', '.join(unsupported)} yet; "
                                  "train on the CPU (fastnn.config.set_device('cpu'))")


def callback_list(model, callbacks, verbose, steps):
    """The CallbackList evaluate / predict run their hooks on (Keras's params: one epoch of ``steps``)."""
    return callbacks_module.CallbackList(callbacks_module.as_list(callbacks), model,
                                         {"verbose": verbose, "epochs": 1, "steps": steps})


def run_inference(model, program, X, Yf, Yi, batch_size, loss, metrics, want_output, verbose, params,
                  callbacks=None, mode="test", session=None, sw=None):
    """Forward passes over all of X; returns (sums, outputs or None).

    ``metrics`` is a ``metrics.ModelMetrics`` (None without a loss); ``sw``
    float32 (n,) sample weights or None. The loss includes the weight
    penalties, as in Keras.

    ``session``: fit's CUDA session, whose device parameters are used; by
    default the device in ``fastnn.config`` decides.

    With a CallbackList, runs its ``on_{mode}_begin/end`` hooks ("test" or
    "predict") and, when one defines them, its batch hooks after every batch
    (running loss and metrics as logs for "test", ``{"outputs": batch}`` for
    "predict")."""
    n = X.shape[0]
    if session is None:
        session = cuda_session(program, params, batch_size, loss=loss, metrics=metrics, weighted=sw is not None)
    device_data = session.data(X, Yf, Yi) if session is not None else None
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

    def _logs():
        with_penalty = sums.copy()
        with_penalty[0] += penalty * sums[1]
        return metrics.logs(with_penalty)

    steps = -(-n // batch_size)
    bar = Progbar(steps, verbose) if verbose else None
    n_parts = numba.get_num_threads()
    per_batch = callbacks is not None and callbacks.batch_level[mode]
    chunk = batch_size if per_batch else max(1, 64 // max(1, batch_size // 32)) * batch_size
    if callbacks is not None:
        getattr(callbacks, f"on_{mode}_begin")()
    pos = 0
    with blas_single_thread():
        while pos < n:
            stop = min(n, pos + chunk)
            if per_batch:
                getattr(callbacks, f"on_{mode}_batch_begin")(pos // batch_size, logs={})
            if session is not None:
                session.infer_steps(device_data, pos, stop, loss_code, loss_mode, codes, sums, out)
            else:
                engine.infer_steps(program.prog, params, program.consts, X, Yf, Yi, pos, stop, batch_size,
                                   ws.ws, ws.yb, ws.yl, loss_code, loss_mode, codes, sums, out, n_parts, ws.ab,
                                   sw_arr, value_fn, grad_fn, loss_consts)
            if metrics is not None and metrics.needs_predictions:
                rows = slice(pos, stop)
                metrics.update(_targets(Yf, Yi, rows), out[rows], None if sw is None else sw[rows])
            if per_batch:
                logs = ({"outputs": out[pos:stop].reshape((stop - pos, *model._layers[-1].output_shape))}
                        if mode == "predict" else _logs())
                getattr(callbacks, f"on_{mode}_batch_end")(pos // batch_size, logs=logs)
            pos = stop
            if bar:
                bar.update(-(-pos // batch_size), _logs().items() if loss is not None else ())
    if bar:
        bar.update(steps, list(_logs().items()) if loss is not None else (), finalize=True)
    if callbacks is not None:
        getattr(callbacks, f"on_{mode}_end")(_logs() if loss is not None else {})
    sums[0] += penalty * sums[1]
    return sums, (out if want_output else None)


def trainable_bounds(model):
    """int64 offsets of the trainable weight arrays in the flat buffer, then
    the end of the trainable prefix: array ``v`` is ``params[b[v]:b[v+1]]``
    (what clipping by norm needs)."""
    bounds = [0]
    for var in model.trainable_weights:
        if program_module._offset(model._params, var) != bounds[-1]:
            raise RuntimeError(f"Weight {var.name!r} is not where the flat buffer's layout puts it")
        bounds.append(bounds[-1] + var.size)
    if bounds[-1] != model._n_trainable:
        raise RuntimeError("The trainable weights do not cover the trainable prefix of the flat buffer")
    return np.array(bounds, dtype=np.int64)


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
        # Keras trains on the first floor(n * (1 - split)) rows and validates on the rest.
        cut = math.floor(X.shape[0] * (1.0 - validation_split))
        if cut == 0 or cut == X.shape[0]:
            raise ValueError(f"validation_split={validation_split} leaves {X.shape[0] - cut} validation samples "
                             f"of {X.shape[0]}")
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
    if model._optimizer_layout is not model._layout:
        opt.slots = None    # the trainable part of the buffer changed: its slots no longer match
        model._optimizer_layout = model._layout
    opt.build(model._n_trainable)
    bounds = trainable_bounds(model)
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
    session = cuda_session(program, params, batch_size, opt, model._n_trainable, model.loss, metrics,
                           sw is not None or (val is not None and val[3] is not None))
    device_data = session.data(X, Yf, Yi) if session is not None else None

    history = callbacks_module.History()
    cbs = callbacks_module.CallbackList(callbacks_module.as_list(callbacks) + [history], model,
                                        {"verbose": verbose, "epochs": epochs, "steps": steps})
    model.history = history
    model.stop_training = False
    cbs.on_train_begin()
    # Python after every step only when a callback's batch hooks or a
    # Python-only schedule need it; otherwise chunks of about _CHUNK_SECONDS.
    batch_hooks = cbs.batch_level["train"]
    one_step = batch_hooks or opt.schedule_in_python
    steps_per_chunk = 1 if one_step else 8
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
        # Pinned for the whole epoch, not per chunk: pinning costs ~30 us, a step can cost less.
        with blas_single_thread():
            while step < steps:
                k = min(steps_per_chunk, steps - step)
                if batch_hooks:
                    cbs.on_train_batch_begin(step, logs={})
                hp = opt.hyper()     # after the hooks: what they changed applies from this step
                t0 = time.perf_counter()
                start, stop = step * batch_size, min(n, (step + k) * batch_size)
                if session is not None:
                    done = session.train_steps(device_data, ids, start, stop, hp, opt.iterations,
                                               model.loss.code, loss_mode, codes, sums) - opt.iterations
                else:
                    done = engine.train_steps(
                        program.prog, params, program.consts, grads, opt.slots, model._n_trainable, opt.code, hp,
                        opt.iterations, bounds, X, Yf, Yi, ids, start, stop,
                        batch_size, ws.ws, ws.gs, ws.yb, ws.yl, model.loss.code, loss_mode, codes, sums, n_parts,
                        ws.ab, program.regs, sw_arr, value_fn, grad_fn, loss_consts, pred_out) - opt.iterations
                if metrics.needs_predictions:
                    stop = min(n, start + done * batch_size)    # the loop stops early on a NaN loss
                    rows = ids[start:stop]
                    metrics.update(_targets(Yf, Yi, rows), pred_out[start:stop], None if sw is None else sw[rows])
                elapsed = time.perf_counter() - t0
                opt.iterations += done
                step += done
                logs = metrics.logs(sums)
                if batch_hooks:
                    cbs.on_train_batch_end(step - 1, logs=logs)
                else:
                    cbs.chunk_end(step - 1, logs)
                    if not one_step and done == k and elapsed > 0:
                        steps_per_chunk = int(min(max(1, k * _CHUNK_SECONDS / elapsed), 4 * k + 1))
                if bar:
                    bar.update(step, logs.items())
                if model.stop_training:
                    break
        logs = dict(logs)
        if val is not None:
            vsums, _ = run_inference(model, program, val[0], val[1], val[2], batch_size, model.loss, val_metrics,
                                     False, 0, params, cbs, "test", session, val[3])
            logs.update(val_metrics.logs(vsums, "val_"))
        cbs.on_epoch_end(epoch, logs)
        if bar:     # after the callbacks, so keys they add (learning_rate) show, as in Keras
            bar.update(step, list(logs.items()), finalize=True)
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
    session = cuda_session(program, model._params, X.shape[0], loss=model.loss, weighted=sample_weight is not None)
    if session is not None:
        if training:
            raise NotImplementedError("loss_and_gradients(training=True) is not supported on the CUDA device yet")
        return session.loss_gradients(session.data(X, Yf, Yi), model.loss.code, 1 if model.loss.from_logits else 0)
    value_fn, grad_fn, loss_consts = model.loss.kernel_functions()
    ws = Workspace(program, X.shape[0])
    grads = np.zeros_like(model._params)
    with blas_single_thread():
        loss = engine.loss_gradients(program.prog, model._params, program.consts, grads, X, Yf, Yi,
                                     X.shape[0], ws.ws, ws.gs, ws.yb, ws.yl, model.loss.code,
                                     1 if model.loss.from_logits else 0, numba.get_num_threads(), ws.ab,
                                     program.regs, sw, value_fn, grad_fn, loss_consts, bool(training))
    return float(loss), grads
