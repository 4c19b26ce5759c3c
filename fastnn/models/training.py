"""fit / evaluate / predict: Python at the edges, compiled loops in the middle.

The Python side reads the data through a source (``sources``: in-memory
arrays checked once, memory-mapped arrays and Python producers checked a
chunk at a time), shuffles, and calls the compiled loop for a chunk of
steps at a time (sized to about a tenth of a second), then draws the
progress bar and runs callbacks. While compiled code runs, BLAS is pinned
to one thread: Numba's pool owns the cores.

Faults: a NaN/inf loss stops the compiled loop before that batch's update
and fit raises ``NonFiniteLossError`` (or stops quietly when a callback,
TerminateOnNaN, asks it to); Ctrl-C is held until the chunk in flight is
done and counted, then raised as ``KeyboardInterrupt`` (``utils.interrupts``).
"""
import collections.abc
import math
import numbers
import time
import warnings

import numpy as np

from .. import callbacks as callbacks_module
from .. import config, threads
from ..errors import NonFiniteLossError
from ..kernels import cache as kernel_cache
from ..kernels import kinds, prebuild
from ..kernels import program as P
from ..kernels.cpu import constraints, engine, regularizers
from ..kernels.cpu.records import Data, LossFns, Net, Optim, Work
from ..kernels.cpu.optimizers import optimizer_step_functions, step_kernels
from ..kernels.cpu.sample_loss import unused_loss
from ..kernels.kinds import recurrent, spatial_dropout
from ..utils.interrupts import held_interrupts
from ..utils.progbar import Progbar
from . import data, sample_weights, sources
from . import program as program_module

_CHUNK_SECONDS = 0.1


def resolve_verbose(verbose):
    if verbose == "auto":
        return 1
    if verbose not in (0, 1, 2):
        raise ValueError(f"verbose must be 'auto', 0, 1 or 2, got {verbose!r}")
    return verbose


class Workspace:
    """Per-(program, batch size) buffers, allocated once and reused; the
    gradient workspace ``gs`` only for ``training`` (inference has none)."""

    def __init__(self, program, batch, training=True):
        data.check_workspace(batch, program.slots * (2 if training else 1) + program.out_width + 3)
        self.batch = batch
        self.ws = np.zeros(batch * program.slots, dtype=np.float32)
        self.gs = np.zeros(self.ws.shape[0] if training else 0, dtype=np.float32)
        widest = max(math.prod(shape) for _, _, shape in program.outputs)
        self.yb = np.zeros(batch * widest, dtype=np.float32)
        self.yl = np.zeros(batch, dtype=np.int64)
        self.wb = np.zeros(batch, dtype=np.float32)
        self.rows = np.zeros(batch, dtype=np.int64)
        self.ab = np.array([1.0, 0.0, 1.0, 1.0], dtype=np.float32)    # (alpha, beta) to write, then to add

    def record(self, grads, sums, out, metric_codes):
        """These buffers as the loop's ``records.Work`` (in inference ``grads`` is any float32 buffer)."""
        return Work(grads, self.ws, self.gs, self.yb, self.yl, self.wb, self.rows, self.ab, sums, out, metric_codes)


def _targets(Yf, Yi, rows):
    """The targets of ``rows`` as own metrics see them: labels or dense rows."""
    return Yi[rows] if Yi.shape[0] > 0 else Yf[rows]


class LoopSpec:
    """What a run passes the compiled loop besides the data and the model:
    the outputs table (``Program.output_table``), the compiled metric codes,
    the size of the sums, and a CUSTOM loss's functions.

    ``losses``: per output (None: predict); ``metrics``: a
    ``metrics.ModelMetrics`` or ``outputs.OutputMetrics`` (None: predict)."""

    def __init__(self, program, losses, metrics, weighted):
        n = len(program.outputs)
        losses = list(losses) if losses is not None else [None] * n
        per_output = [[]] * n if metrics is None else \
            (metrics.codes_per_output if hasattr(metrics, "codes_per_output") else [metrics.codes])
        self.sparse = [loss is not None and loss.code == P.SCCE for loss in losses]
        self.outs, self.codes, self.n_sums = program.output_table(losses, [list(c) for c in per_output], weighted,
                                                                  self.sparse)
        custom = [loss for loss in losses if loss is not None and loss.code == P.CUSTOM]
        if len({type(loss) for loss in custom}) > 1:
            raise NotImplementedError("Only one Loss subclass per model is supported; use it for every output "
                                      "that needs one")
        self.loss_functions = custom[0].kernel_functions() if custom else \
            (*unused_loss(), np.zeros(0, dtype=np.float32))
        self.losses = losses

    def update(self, metrics, Yf, Yi, rows, pred, sw, batch):
        """Feeds the NumPy metrics one chunk (rows of the targets, predictions in
        order), a batch of ``batch`` rows at a time as Keras does: a metric's
        ``update_state`` may compare the rows of a batch with each other."""
        for lo in range(0, len(rows), batch):
            part = slice(lo, lo + batch)
            r, p, w = rows[part], pred[part], None if sw is None else sw[part]
            if hasattr(metrics, "codes_per_output"):
                metrics.update(None, p, w, layout=(self.outs, Yf[r] if Yf.shape[0] else Yf,
                                                   Yi[r] if Yi.shape[0] else Yi))
            else:
                metrics.update(_targets(Yf, Yi, r), p, w)


def weight_penalty(program, params):
    """The weight penalties of ``program`` at the current weights (0.0 without regularizers)."""
    if program.regs.shape[0] == 0:
        return 0.0
    return regularizers.penalty(program.regs, program.consts, params, params, False)


def offer_step_kernels(optimizer):
    """Hands ``optimizer``'s update to a compile worker that runs for this process (a first run) at
    ``Model.compile``, before fit writes the program (Adam's is about a second of compiling); starts
    none, and calls no learning-rate schedule where none runs."""
    if prebuild.running() and optimizer.code is not None and config.get_device() != "cuda":
        prebuild.share(step_kernels(optimizer.code, optimizer.hyper()))


def cuda_session(program, params, batch_size, optimizer=None, n_trainable=0, loss=None, bounds=None):
    """A ``kernels.cuda.engine.Session`` holding the model on the GPU when the
    device (``fastnn.config``) is "cuda", else None (train on the CPU).
    ``bounds``: ``trainable_bounds`` of the model, when training."""
    if config.get_device() != "cuda":
        return None
    _check_cuda_features(loss)
    if program.cons.shape[0]:
        raise NotImplementedError("The CUDA device does not apply weight constraints yet; train this model on the "
                                  "CPU (fastnn.config.set_device('cpu'))")
    unsupported = sorted({kinds.get(int(k)).name for k in program.prog[:, P.KIND] if not kinds.get(int(k)).on_cuda})
    # features of a kind the device runs that it does not (a recurrent layer's initial_state=, ...)
    refused = sorted({why for rec in program.prog
                      if (why := kinds.get(int(rec[P.KIND])).cuda_refusal(rec, program.ints)) is not None})
    fixed_mode = bool(np.any(program.prog[:, P.FLAGS] & (P.TRAIN_ON | P.TRAIN_OFF)))
    if not program.chain or unsupported or refused or fixed_mode:
        what = f"layers {unsupported}" if unsupported else ", ".join(refused) if refused else \
            "layers called with training=True or False" if fixed_mode else "graphs other than a chain of layers"
        if config.chosen_device() == "auto":     # not asked for by name: the CPU runs it
            warnings.warn(f"The CUDA device does not run {what} yet; this model runs on the CPU", stacklevel=4)
            return None
        raise NotImplementedError(f"The CUDA device does not run {what} yet; train this model on the CPU "
                                  "(fastnn.config.set_device('cpu'))")
    from ..kernels.cuda.engine import Session
    # Dropout masks (Dropout, SpatialDropout, recurrent dropout): seeded from NumPy's global generator (set_random_seed
    # seeds it), not fastnn's, whose stream the shuffles share with the CPU path.
    random = any(int(rec[P.KIND]) in (P.DROPOUT, spatial_dropout.SPATIAL_DROPOUT) or
                 (int(rec[P.KIND]) in recurrent.KINDS and recurrent.has_dropout(rec, program.consts))
                 for rec in program.prog)
    seed = int(np.random.randint(0, 2**31 - 1)) if random else 0
    return Session(program, params, batch_size, optimizer, n_trainable, seed, bounds)


def _check_cuda_features(loss):
    """A user's own loss (a ``losses.Loss`` subclass) is compiled for the CPU
    only: refuse it on CUDA rather than train differently."""
    if isinstance(loss, (list, tuple)):
        for one in loss:
            _check_cuda_features(one)
        return
    if loss is not None and loss.code == P.CUSTOM:
        raise NotImplementedError(f"The CUDA device does not support the loss {type(loss).__name__} (a Loss "
                                  "subclass, compiled for the CPU only) yet; train on the CPU "
                                  "(fastnn.config.set_device('cpu'))")


def callback_list(model, callbacks, verbose, steps):
    """The CallbackList evaluate / predict run their hooks on (Keras's params: one epoch of ``steps``)."""
    return callbacks_module.CallbackList(callbacks_module.as_list(callbacks), model,
                                         {"verbose": verbose, "epochs": 1, "steps": steps})


def _device_data(session, source, chunk):
    """A chunk's arrays on the GPU: an ArraySource's once (the session caches
    them by array), the others' per chunk (their buffers are reused)."""
    if isinstance(source, sources.ArraySource):
        return session.data(chunk.X, chunk.Yf, chunk.Yi, chunk.sw)
    from ..kernels.cuda.engine import DeviceData
    return DeviceData(chunk.X, chunk.Yf, chunk.Yi, chunk.sw)


_NO_WEIGHTS = np.zeros(0, dtype=np.float32)
_NO_METRICS = np.zeros(0, dtype=np.int64)
_NO_IDS = np.zeros(0, dtype=np.int64)
_NO_REGS = np.zeros((0, 3), dtype=np.int64)


def run_inference(model, program, source, batch_size, losses, metrics, want_output, verbose, params,
                  callbacks=None, mode="test", session=None):
    """Forward passes over every row of ``source`` (a bound ``sources`` source).

    Returns ``(sums, outputs)``: the running [loss, samples, metrics...] sums
    (with ``losses``, one per output; the loss includes the weight
    penalties, as in Keras) and, when ``want_output``, float32 outputs of
    shape (samples, output columns), else None. ``metrics`` is what
    ``model._resolve_metrics`` gives (None without losses); the source's
    sample weights, if any, weigh the loss and weighted metrics.

    ``session``: fit's CUDA session, whose device parameters are used; by
    default the device in ``fastnn.config`` decides.

    With a CallbackList, runs its ``on_{mode}_begin/end`` hooks ("test" or
    "predict") and, when one defines them, its batch hooks after every batch
    (running loss and metrics as logs for "test", ``{"outputs": batch}`` for
    "predict")."""
    has_loss = losses is not None
    weighted = has_loss and source.weighted
    batch_size = data.rows_per_batch(batch_size, source.n)
    kernel_cache.announce_compile(verbose)
    loss = losses[0] if has_loss else None
    if session is None:
        session = cuda_session(program, params, batch_size, loss=losses)
    ws = Workspace(program, batch_size, training=False)
    spec = LoopSpec(program, losses, metrics, weighted)
    loss_code = loss.code if loss is not None else -1
    loss_mode = 1 if (loss is not None and loss.from_logits) else 0
    value_fn, grad_fn, loss_consts = spec.loss_functions
    codes = spec.codes
    loop_parts = engine.inference_parts(program.prog, batch_size)
    net = Net(program.prog, program.ints, params, program.consts, program.ins, spec.outs, program.regs,
              program.adds)
    loss_fns = LossFns(value_fn, grad_fn, loss_consts, regularizers.penalty_function(_NO_REGS))
    sums = np.zeros(spec.n_sums, dtype=np.float64)
    keep = want_output or (metrics is not None and metrics.needs_predictions)
    width = program.out_width
    n = source.n
    out = np.empty((n if keep and n is not None else 0, width), dtype=np.float32)
    parts = []   # outputs of a producer, whose length is unknown up front
    penalty = weight_penalty(program, params) if has_loss else 0.0
    if metrics is not None:
        metrics.reset()

    def _logs():
        with_penalty = sums.copy()
        with_penalty[0] += penalty * sums[1]
        return metrics.logs(with_penalty)

    bar = Progbar(source.steps(batch_size), verbose) if verbose else None
    n_parts = threads.parts()
    per_batch = callbacks is not None and callbacks.batch_level[mode]
    if callbacks is not None:
        getattr(callbacks, f"on_{mode}_begin")()
    done = 0
    with threads.compiled_run() as chooser:
        for chunk in source.in_order(batch_size, per_batch):
            program_module.check_ids(program, chunk.X)
            if per_batch:
                getattr(callbacks, f"on_{mode}_batch_begin")(done, logs={})
            dst = out
            if keep and chunk.offset is None:
                dst = np.empty((chunk.stop, width), dtype=np.float32)
                parts.append(dst)
            elif keep:
                dst = out[chunk.offset:]
            if session is not None:
                if chunk.batch > session.batch:
                    session = cuda_session(program, params, chunk.batch, loss=losses)
                session.infer_steps(_device_data(session, source, chunk), chunk.start, chunk.stop, loss_code,
                                    loss_mode, codes, sums, dst)
            else:
                if chunk.batch > ws.batch:
                    ws = Workspace(program, chunk.batch, training=False)
                chooser.begin()
                with held_interrupts():   # the first call compiles: a Ctrl-C must not cut it
                    engine.infer_steps(net, Data(chunk.X.reshape(-1), chunk.Yf.reshape(-1), chunk.Yi.reshape(-1),
                                                 chunk.sw if weighted else _NO_WEIGHTS, _NO_IDS),
                                       ws.record(params, sums, dst, codes), loss_fns, loop_parts, chunk.start,
                                       chunk.stop, chunk.batch, n_parts)
                chooser.end()
            rows = np.arange(chunk.start, chunk.stop)
            if metrics is not None and metrics.needs_predictions:
                spec.update(metrics, chunk.Yf, chunk.Yi, rows, dst[rows], chunk.sw[rows] if weighted else None,
                            chunk.batch)
            if per_batch:
                logs = ({"outputs": model._split_outputs(dst[rows])} if mode == "predict" else _logs())
                getattr(callbacks, f"on_{mode}_batch_end")(done, logs=logs)
            done += -(-(chunk.stop - chunk.start) // chunk.batch)
            if bar:
                bar.update(done, _logs().items() if has_loss else ())
    if done == 0:
        raise ValueError(f"{source.what} yielded no batches")
    if bar:
        bar.update(done, list(_logs().items()) if has_loss else (), finalize=True)
    if callbacks is not None:
        getattr(callbacks, f"on_{mode}_end")(_logs() if has_loss else {})
    sums[0] += penalty * sums[1]
    if keep and n is None:
        out = np.concatenate(parts)
    return sums, (out if want_output else None)


def evaluate(model, src, batch_size, verbose, callbacks):
    """``model.evaluate`` on a bound source: the logs dict and its keys in
    the order of evaluate's list (``metrics.list_order``)."""
    kernel_cache.announce_compile(verbose)     # before the build: it may compile the layers' kernels
    prog = model._program(model._losses)
    metrics = model._resolve_metrics([l.code == P.SCCE for l in model._losses], src.weighted)
    cbs = callback_list(model, callbacks, verbose, src.steps(batch_size))
    sums, _ = run_inference(model, prog, src, batch_size, model._losses, metrics, False, verbose, model._params,
                            cbs, "test")
    logs = metrics.logs(sums)
    return logs, (metrics.list_order() if hasattr(metrics, "list_order") else list(logs))


def predict(model, src, batch_size, verbose, callbacks):
    """``model.predict`` on a bound source: one array per output, shaped as the output."""
    kernel_cache.announce_compile(verbose)
    prog = model._program(None)
    cbs = callback_list(model, callbacks, verbose, src.steps(batch_size))
    _, out = run_inference(model, prog, src, batch_size, None, None, True, verbose, model._params, cbs, "predict")
    return model._split_outputs(out)


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


class _Snapshot:
    """Weights and optimizer state at the start of an epoch: what fit goes
    back to when a non-finite loss finds the weights already non-finite.
    One copy per epoch (the per-batch stop in ``run_steps`` costs nothing)."""

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


def _non_finite(params, opt, saved, epoch, batch, what="the loss became NaN or inf at", restore=False):
    """The error for a NaN/inf at ``batch`` of ``epoch``, after making sure
    the model holds finite weights: the epoch's start is restored when they
    are not, or when ``restore`` (the GPU loop does not stop at the bad batch)."""
    restored = restore or not _finite(params)
    if restored:
        saved.restore(params, opt)
    where = "the weights and optimizer state from the start of this epoch were restored" if restored else \
        "the model keeps the weights from before that batch"
    return NonFiniteLossError(
        f"fit stopped: {what} epoch {epoch + 1}, batch {batch + 1}; {where}. Usual causes: a learning rate too "
        "high for the data's scale, unscaled inputs or targets, or a loss that does not fit the output (e.g. "
        "cross-entropy on unbounded outputs)", epoch=epoch, batch=batch, restored=restored)


def _validation_source(model, validation_data, validation_steps):
    if sources.is_producer(validation_data):
        if isinstance(validation_data, collections.abc.Iterator) and validation_steps is None:
            raise ValueError("validation_data is a generator: pass validation_steps (batches per validation "
                             "pass; a generator cannot be restarted every epoch), or use a PyDataset")
        return model._source(validation_data, None, True, steps=validation_steps, what="validation_data",
                             steps_what="validation_steps")
    if not isinstance(validation_data, (tuple, list)) or len(validation_data) not in (2, 3):
        raise ValueError("validation_data must be a tuple (x_val, y_val) or (x_val, y_val, sample_weight), or a "
                         "PyDataset, got "
                         f"{type(validation_data).__name__}"
                         + (f" of length {len(validation_data)}" if isinstance(validation_data, (tuple, list)) else ""))
    return model._source(validation_data[0], validation_data[1], True, what="validation_data[0] (x)",
                         y_what="validation_data[1] (y)",
                         sample_weight=validation_data[2] if len(validation_data) == 3 else None,
                         sw_what="validation_data[2] (sample_weight)")


class StepRunner:
    """The compiled loop's side of ``fit``: everything a chunk of training
    steps needs (program records, workspace, the optimizer's state, the CUDA
    session when training on the GPU), and ``run`` to take those steps.
    ``fit`` around it is the epoch glue: data, progress, callbacks, faults."""

    def __init__(self, model, program, metrics, weighted, batch_size):
        opt = model.optimizer
        if model._optimizer_layout is not model._layout:
            opt.slots = None    # the trainable part of the buffer changed: its slots no longer match
            model._optimizer_layout = model._layout
        opt.build(model._n_trainable)
        self.model, self.program, self.opt = model, program, opt
        self.metrics = metrics
        self.bounds = trainable_bounds(model)
        self.grads = np.zeros_like(model._params)
        self.ws = Workspace(program, batch_size)
        self.spec = spec = LoopSpec(program, model._losses, metrics, weighted)
        value_fn, grad_fn, loss_consts = spec.loss_functions
        self.parts = engine.training_parts(program.prog, batch_size)
        self.net = Net(program.prog, program.ints, model._params, program.consts, program.ins, spec.outs,
                       program.regs, program.adds)
        self.loss_fns = LossFns(value_fn, grad_fn, loss_consts, regularizers.penalty_function(program.regs))
        self.constrain = constraints.constrain_function(program.cons)
        self.pred_out = np.empty((0, program.out_width), dtype=np.float32)   # grown to a chunk when metrics need it
        self.session = cuda_session(program, model._params, batch_size, opt, model._n_trainable, model._losses,
                                    self.bounds)

    def run(self, chunk, source, hp, sums, chooser):
        """Trains on ``chunk`` with the optimizer's numbers ``hp``; returns the
        steps taken (fewer than offered when a loss went NaN/inf)."""
        opt, program, spec, model = self.opt, self.program, self.spec, self.model
        if self.metrics.needs_predictions and self.pred_out.shape[0] < chunk.stop:
            self.pred_out = np.empty((chunk.stop, program.out_width), dtype=np.float32)
        if self.session is not None:
            self.session = _session_for(self.session, chunk, program, model._params, opt, model._n_trainable)
            done = _train_on_gpu(self.session, _device_data(self.session, source, chunk), chunk, hp,
                                 opt.iterations, model._losses[0].code, 1 if model._losses[0].from_logits else 0,
                                 spec.codes, sums, self.pred_out if self.metrics.needs_predictions else None)
        else:
            if chunk.batch > self.ws.batch:
                self.ws = Workspace(program, chunk.batch)
            # hp can change between chunks (callbacks), so can what a step must prepare
            chooser.begin()
            optim = Optim(opt.slots, model._n_trainable, opt.code, hp, self.bounds,
                          *optimizer_step_functions(opt.code, hp), self.program.cons, self.constrain)
            prebuild.ensure(engine.run_steps)     # last: a compile worker builds the loop first
            done = engine.run_steps(
                self.net, optim,
                Data(chunk.X.reshape(-1), chunk.Yf.reshape(-1), chunk.Yi.reshape(-1), chunk.sw, chunk.ids),
                self.ws.record(self.grads, sums, self.pred_out, spec.codes), self.loss_fns, self.parts,
                opt.iterations, chunk.start, chunk.stop, chunk.batch, threads.parts(), True)
            chooser.end()
        done -= opt.iterations
        opt.iterations += done
        return done


def fit(model, x, y, batch_size, epochs, verbose, callbacks, validation_split, validation_data,
        shuffle, initial_epoch, steps_per_epoch, class_weight=None, sample_weight=None, validation_steps=None):
    batch_size = data.positive_int(32 if batch_size is None else batch_size, "batch_size")
    epochs = data.positive_int(epochs, "epochs", minimum=0)
    initial_epoch = data.positive_int(initial_epoch, "initial_epoch", minimum=0)
    verbose = resolve_verbose(verbose)
    kernel_cache.announce_compile(verbose)
    if isinstance(validation_split, bool) or not isinstance(validation_split, numbers.Real) or \
            not 0 <= validation_split < 1:
        raise ValueError(f"validation_split must be a number in [0, 1), got {validation_split!r}")

    train = model._source(x, y, True, steps=steps_per_epoch, steps_what="steps_per_epoch",
                          sample_weight=sample_weight, class_weight=class_weight)
    program = model._program_for_training()
    val = None
    if validation_data is not None:   # Keras: validation_data wins over validation_split
        val = _validation_source(model, validation_data, validation_steps)
    elif validation_split:
        if isinstance(train, sources.BatchSource):
            raise ValueError("validation_split needs arrays; with a generator or PyDataset pass validation_data")
        train, val = train.split(validation_split)
    batch_size = data.rows_per_batch(batch_size, train.n)
    model._require_compiled("fit")     # built just now: the losses per output are known
    losses = model._losses
    sparse = [loss.code == P.SCCE for loss in losses]
    metrics = model._resolve_metrics(sparse, train.weighted)
    val_metrics = None if val is None else model._resolve_metrics(sparse, val.weighted)

    opt = model.optimizer
    steps = train.steps(batch_size)
    runner = StepRunner(model, program, metrics, train.weighted, batch_size)
    params, spec = model._params, runner.spec

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
        saved = _Snapshot(params, opt)
        reader = train.train_epoch(batch_size, shuffle)
        sums = np.zeros(spec.n_sums, dtype=np.float64)
        metrics.reset()
        bar = Progbar(steps, verbose) if verbose else None
        step = 0
        ran_out = False
        # Pinned for the whole epoch, not per chunk: pinning costs ~30 us, a step can cost less.
        with threads.compiled_run() as chooser:
            while True:
                t0 = time.perf_counter()
                chunk = reader.next(steps_per_chunk)
                if chunk is None:
                    ran_out = True
                    break
                program_module.check_ids(program, chunk.X)
                if batch_hooks:
                    cbs.on_train_batch_begin(step, logs={})
                hp = opt.hyper()     # after the hooks: what they changed applies from this step
                offered = -(-(chunk.stop - chunk.start) // chunk.batch)
                # Ctrl-C lands after the chunk and its step count are accounted for (compiled code
                # cannot stop mid-chunk anyway, ~0.1 s), so the model stays usable and in step.
                with held_interrupts():
                    done = runner.run(chunk, train, hp, sums, chooser)
                    step += done
                if metrics.needs_predictions:
                    stop = min(chunk.stop, chunk.start + done * chunk.batch)    # the loop stops early on a NaN loss
                    rows = chunk.ids[chunk.start:stop]
                    spec.update(metrics, chunk.Yf, chunk.Yi, rows, runner.pred_out[chunk.start:stop],
                                chunk.sw[rows] if train.weighted else None, chunk.batch)
                elapsed = time.perf_counter() - t0
                logs = metrics.logs(sums)
                if not math.isfinite(sums[0]):
                    # the batch at ``step`` went non-finite and was not applied; the GPU loop,
                    # which does not stop there, ran on: go back to the epoch's start
                    if runner.session is not None:
                        saved.restore(params, opt)
                    if batch_hooks:
                        cbs.on_train_batch_end(step, logs=logs)
                    else:
                        cbs.chunk_end(step, logs)
                    if model.stop_training:   # TerminateOnNaN: stop quietly
                        break
                    raise _non_finite(params, opt, saved, epoch, step, restore=runner.session is not None)
                if batch_hooks:
                    cbs.on_train_batch_end(step - 1, logs=logs)
                else:
                    cbs.chunk_end(step - 1, logs)
                    if not one_step and done == offered and elapsed > 0:
                        steps_per_chunk = int(min(max(1, done * _CHUNK_SECONDS / elapsed), 4 * done + 1))
                if bar:
                    bar.update(step, logs.items())
                if model.stop_training:
                    break
        reader.close()
        if ran_out and step > 0 and not _finite(params):   # the epoch's last update overflowed
            raise _non_finite(params, opt, saved, epoch, step - 1, "the weights became NaN or inf in the update of")
        if ran_out and step == 0:   # only a generator can run dry
            warnings.warn(f"The training data ran out at epoch {epoch + 1}; training stops. Make sure a "
                          "generator can yield steps_per_epoch * epochs batches (or use a PyDataset)",
                          stacklevel=3)
            break
        if ran_out and steps is not None and step < steps:
            warnings.warn(f"The training data ran out after {step} of {steps} batches in epoch {epoch + 1}; "
                          "training stops after this epoch", stacklevel=3)
            model.stop_training = True
        logs = dict(logs)
        if val is not None:
            vsums, _ = run_inference(model, program, val, batch_size, losses, val_metrics, False, 0, params,
                                     cbs, "test", runner.session)
            logs.update(val_metrics.logs(vsums, "val_"))
        cbs.on_epoch_end(epoch, logs)
        if bar:     # after the callbacks, so keys they add (learning_rate) show, as in Keras
            bar.update(step, list(logs.items()), finalize=True)
        if model.stop_training:
            break
    cbs.on_train_end(logs)
    return history


def _session_for(session, chunk, program, params, opt, n_trainable):
    """The CUDA session, remade for a producer's batch larger than the one it
    was made for (the host holds its weights and optimizer state after every call)."""
    if chunk.batch <= session.batch:
        return session
    return cuda_session(program, params, chunk.batch, opt, n_trainable, bounds=session.bounds_host)


def _train_on_gpu(session, device, chunk, hp, step, loss_code, loss_mode, codes, sums, pred_out):
    """``engine.run_steps`` (training) on the GPU. The session steps in batches of its own
    size, so a producer's smaller batches go one call each."""
    rows = chunk.stop - chunk.start if chunk.batch == session.batch else chunk.batch
    for lo in range(chunk.start, chunk.stop, rows):
        step = session.train_steps(device, chunk.ids, lo, min(chunk.stop, lo + rows), hp, step, loss_code,
                                   loss_mode, codes, sums, pred_out)
    return step


def call_in_training_mode(model, x):
    """``model(x, training=True)``: outputs with the layers in training mode
    (Dropout draws its masks, BatchNormalization uses the statistics of all
    of ``x``: one batch, as Keras's call, and updates its moving statistics
    once, as Keras 3 does in an eager call), no weight trained; a layer
    called with training=False stays in inference mode. One array per
    output as ``predict``."""
    model._require_built_for(x, None)
    io = model._io_for_build(x)
    X = io.features(x, "x")
    program = model._program(None)      # run by the CPU engine whatever the device: nothing trains
    outs, _, _ = program.output_table([None] * len(program.outputs), [[] for _ in program.outputs], False,
                                      [False] * len(program.outputs))
    n = X.shape[0]
    batch = max(1, n)
    ws = Workspace(program, batch, training=False)
    out = np.empty((n, program.out_width), dtype=np.float32)
    net = Net(program.prog, program.ints, model._params, program.consts, program.ins, outs, program.regs)
    with threads.compiled_run() as chooser:
        chooser.begin()
        engine.forward_rows(net, Data(X.reshape(-1), _NO_WEIGHTS, _NO_IDS, _NO_WEIGHTS, _NO_IDS),
                            ws.record(model._params, np.zeros(0), out, _NO_METRICS),
                            engine.training_parts(program.prog, batch), n, batch, threads.parts(), True)
    return model._split_outputs(out)


def loss_and_gradients(model, x, y, sample_weight=None, training=False):
    """Loss of the compiled model on the batch (x, y) and its gradient with
    respect to the flat parameter buffer (a new float32 array, same layout as
    ``model._params``; trainable weights first, the rest left at zero).

    The loss is what ``fit`` minimises on that batch: the weighted sum of
    the outputs' mean per-sample losses (``sum_i w_i l_i / n`` with
    ``sample_weight``) plus the weight penalties. ``training=True`` runs the
    layers in training mode (dropout masks, batch statistics) without
    updating moving statistics; nothing is updated either way."""
    model._require_built_for(x, y)
    model._require_compiled("loss_and_gradients")
    io = model._io_for_build(x)
    X = io.features(x, "x")
    program = model._program_for_training()
    program_module.check_ids(program, X)
    Yf, Yi = io.targets(y, X.shape[0], "y")
    sw = np.zeros(0, dtype=np.float32) if sample_weight is None else \
        sample_weights.sample_weights(sample_weight, X.shape[0])
    losses = model._losses
    session = cuda_session(program, model._params, X.shape[0], loss=losses)
    if session is not None:
        if training:
            raise NotImplementedError("loss_and_gradients(training=True) is not supported on the CUDA device yet")
        return session.loss_gradients(session.data(X, Yf, Yi, sw), losses[0].code,
                                      1 if losses[0].from_logits else 0)
    spec = LoopSpec(program, losses, None, sw.shape[0] > 0)
    ws = Workspace(program, X.shape[0])
    grads = np.zeros_like(model._params)
    with threads.compiled_run() as chooser:
        chooser.begin()
        loss = engine.loss_gradients(
            Net(program.prog, program.ints, model._params, program.consts, program.ins, spec.outs, program.regs,
                program.adds),
            Data(X.reshape(-1), Yf.reshape(-1), Yi.reshape(-1), sw, _NO_IDS),
            ws.record(grads, np.zeros(0), np.empty((0, program.out_width), np.float32), _NO_METRICS),
            LossFns(*spec.loss_functions, regularizers.penalty_function(program.regs)),
            engine.training_parts(program.prog, X.shape[0]), X.shape[0], threads.parts(),
            bool(training))
    return float(loss), grads
