"""Forward, backward and the compiled training / inference loops.

Thread ownership: Numba's pool owns the cores and BLAS runs single-threaded
inside it (the Python side pins BLAS to one thread while these loops run),
because two spinning pools on two cores slow each other down several-fold.
Each matrix product is split into ``n_parts`` column blocks, one per thread,
and each thread runs single-threaded SGEMM on its block; bias and
activation on a block are done by the thread that just computed it, while
the block is in its cache.

Compile time is part of the user's wait, so:
- all parallel work on Dense layers goes through one ``prange`` dispatcher,
  ``_parallel``, which runs part ``t`` of a block function on thread ``t``:
  every parallel region costs about a second of compile time;
- the compiled units call each other through pointers
  (``pointers.call``), not directly. Numba links a direct
  callee's machine code into the caller and optimises and emits it again
  there, at every level of the call chain: the Dense blocks were built four
  times over (in ``_parallel``, its loop body and its two gufunc wrappers),
  the forward pass in every loop. Through pointers each unit is built once,
  the loops compile once for every model, and a part a model does not use
  (an optimizer, step preparation, activations other than
  ReLU/linear/softmax, other layer kinds, weighted losses, weight
  penalties) is never compiled. ``training_parts`` and ``inference_parts``
  pick the pointers; small helpers stay direct calls;
- arrays are copied with explicit loops, never ``a[i:j] = b[k:l]``: Numba
  compiles a shape-mismatch error message for every slice assignment;
- functions only compiled code calls get ``pointers.NO_WRAPPERS``: Numba
  then builds no Python or C entry point for each (the Python ones were
  about 0.7 s of the cold compile).
"""
import numpy as np
from numba import njit, prange, types

from ..program import (A_POS, ACC, ACT, ACTIVATION, AFTER, B_OFF, BWD, DENSE, DIRECT_INPUT, FLAGS, FROZEN, FWD, KIND, ROWS,
                       LOSS_FUSED, N_IN, N_OUT, NEED_DX, O_COL, O_LOSS, O_LOSS_POS, O_M0, O_M1, O_N, O_POS, O_SPARSE,
                       O_SUMS, O_WEIGHT, O_Y_OFF, O_Y_STRIDE, TRAIN_OFF, TRAIN_ON, W_ACC, W_OFF, X_POS, Z_POS)
from .. import prebuild
from ..kinds import op_pointer
from .activations import (ACTIVATION_SIG, LINEAR, RELU, SOFTMAX, activation_function, relu_backward, relu_forward,
                          softmax_rows, softmax_rows_backward)
from .batch_loss import batch_loss_pointer
from .blas import gemm
from .constraints import CONSTRAIN_SIG, constrain_function
from .optimizers import PARALLEL_UPDATE_SIG, PREPARE_SIG, UPDATE_TYPE, idle_optimizer
from .pointers import NO_WRAPPERS, Pointer, call, function_pointer
from .records import Data, LossFns, Net, Optim, Parts, Work
from .regularizers import PENALTY_SIG
from .sample_loss import GRADIENT_TYPE, VALUE_TYPE

_I64 = types.int64
_REC = types.int64[::1]
_INTS = types.int64[::1]
_PROG = types.int64[:, ::1]
_BUF = types.float32[::1]
_ACTS = Pointer(ACTIVATION_SIG)

_ZERO = np.float32(0.0)

# Batches of this many rows or more split a forward product by rows instead of
# columns: with single-threaded SGEMM on the seeds' first layer, half the rows
# beats half the columns by 3-6% from 256 rows up (predict on 10k images: 43 ->
# 37.5 ms; a training step at batch 1024 2-6%, at 256 within noise).
_ROW_SPLIT_ROWS = 256


@njit(cache=True, inline="always")
def _block(n, n_parts, t):
    """Items [lo, hi) of part ``t`` when ``n`` items are split in parts.

    Blocks are multiples of 16 so threads never share a cache line of a
    row and tiny layers stay on one thread."""
    size = (n + n_parts - 1) // n_parts
    size = ((size + 15) // 16) * 16
    lo = t * size
    return min(lo, n), min(lo + size, n)


@njit(cache=True, error_model="numpy", inline="always")
def _dense_forward_range(rec, params, xs, ws, b, r0, r1, c0, c1, ab, acts):
    """Rows [r0, r1) and columns [c0, c1) of z = x @ W + bias and a = act(z);
    x is read from ``xs``; ``acts``: ``activations.activation_function``."""
    n_in, n_out, act = rec[N_IN], rec[N_OUT], rec[ACT]
    x, z, a = b * rec[X_POS], b * rec[Z_POS], b * rec[A_POS]
    bias = rec[B_OFF]
    gemm(False, False, r1 - r0, c1 - c0, n_in, ab, xs, x + r0 * n_in, n_in, params, rec[W_OFF] + c0, n_out,
         ws, z + r0 * n_out + c0, n_out)
    for r in range(r0, r1):
        zr = ws[z + r * n_out + c0:z + r * n_out + c1]
        if bias >= 0:
            bv = params[bias + c0:bias + c1]
            for j in range(zr.shape[0]):
                zr[j] += bv[j]
        if act == RELU:
            relu_forward(zr, ws[a + r * n_out + c0:a + r * n_out + c1])
        elif act != SOFTMAX and act != LINEAR:
            call(acts, act, False, zr, ws[a + r * n_out + c0:a + r * n_out + c1], zr, zr)


# The blocks: part ``t`` of ``n_parts`` of one op's work, run by ``_parallel``.
BLOCK_SIG = types.void(_REC, _BUF, _BUF, _BUF, _BUF, _I64, _I64, _I64, _BUF, _ACTS)
_BLOCK = njit(cache=True, error_model="numpy", **NO_WRAPPERS)


@_BLOCK
def _dense_forward_by_columns(rec, params, grads, ws, xs, b, t, n_parts, ab, acts):
    """A column block of the Dense op's forward pass on all ``b`` rows of ``xs``."""
    c0, c1 = _block(rec[N_OUT], n_parts, t)
    if c0 < c1:
        _dense_forward_range(rec, params, xs, ws, b, 0, b * rec[ROWS], c0, c1, ab, acts)


@_BLOCK
def _dense_forward_by_rows(rec, params, grads, ws, xs, b, t, n_parts, ab, acts):
    """A row block of the Dense op's forward pass (inference on many rows)."""
    r0, r1 = _block(b * rec[ROWS], n_parts, t)
    if r0 < r1:
        _dense_forward_range(rec, params, xs, ws, b, r0, r1, 0, rec[N_OUT], ab, acts)


@_BLOCK
def _activation_backward_block(rec, params, grads, ws, gs, b, t, n_parts, ab, acts):
    """A column block of gs[Z] = gs[A] * act'(z) (not softmax, not linear)."""
    n, act = rec[N_OUT], rec[ACT]
    c0, c1 = _block(n, n_parts, t)
    z, a = b * rec[Z_POS], b * rec[A_POS]
    if c0 >= c1:
        return
    for r in range(b * rec[ROWS]):
        lo, hi = r * n + c0, r * n + c1
        if act == RELU:
            relu_backward(ws[z + lo:z + hi], gs[a + lo:a + hi], gs[z + lo:z + hi])
        else:
            call(acts, act, True, ws[z + lo:z + hi], ws[a + lo:a + hi], gs[a + lo:a + hi], gs[z + lo:z + hi])


@_BLOCK
def _dense_backward_block(rec, params, grads, ws, gs, b, t, n_parts, ab, acts):
    """Part ``t`` of dX = dZ W^T (if NEED_DX), dW = X^T dZ, db = sum_rows dZ.

    The part owns rows [r0, r1) of W: it reads them for dX's columns
    [r0, r1) and writes the same rows of dW, so no two threads touch the
    same cache lines; it also owns a column block of db. ``ab`` is
    [1, 0, 1, 1]: (alpha, beta) to write, then to add (ACC for dX, W_ACC for
    the weight gradients of a layer called more than once)."""
    n_in, n_out, m = rec[N_IN], rec[N_OUT], b * rec[ROWS]
    x, z = b * rec[X_POS], b * rec[Z_POS]
    w, bias = rec[W_OFF], rec[B_OFF]
    r0, r1 = _block(n_in, n_parts, t)
    flags = rec[FLAGS]
    frozen = (flags & FROZEN) != 0
    w_acc = (flags & W_ACC) != 0
    if r0 < r1:
        if (flags & NEED_DX) != 0:
            gemm(False, True, m, r1 - r0, n_out, ab[2:] if (rec[ACC] & 1) != 0 else ab, gs, z, n_out, params,
                 w + r0 * n_out, n_out, gs, x + r0, n_in)
        if not frozen:
            gemm(True, False, r1 - r0, n_out, m, ab[2:] if w_acc else ab, ws, x + r0, n_in, gs, z, n_out, grads,
                 w + r0 * n_out, n_out)
    if bias >= 0 and not frozen:
        c0, c1 = _block(n_out, n_parts, t)
        db = grads[bias + c0:bias + c1]
        if not w_acc:
            for j in range(db.shape[0]):
                db[j] = _ZERO
        for r in range(m):
            row = gs[z + r * n_out + c0:z + r * n_out + c1]
            for j in range(db.shape[0]):
                db[j] += row[j]


_BLOCK_TYPE = Pointer(BLOCK_SIG)
_PARALLEL_SIG = types.void(_BLOCK_TYPE, _REC, _BUF, _BUF, _BUF, _BUF, _I64, _I64, _BUF, _ACTS)
_PARALLEL_TYPE = Pointer(_PARALLEL_SIG)


@njit(cache=True, parallel=True, **NO_WRAPPERS)
def _parallel(block, rec, params, grads, ws, gs, b, n_parts, ab, acts):
    """Runs part ``t`` of ``block`` on Dense (or Activation) op ``rec`` on
    thread ``t`` for t in [0, n_parts). The forward blocks read the op's
    input from ``gs`` (unused there otherwise): ``ws``, or for the first op
    the caller's own rows, which inference need not copy."""
    for t in prange(n_parts):
        call(block, rec, params, grads, ws, gs, b, np.int64(t), n_parts, ab, acts)


@njit(cache=True, inline="always")
def op_training(rec, training):
    """The mode op ``rec`` runs in: the run's (``training``) unless its layer was
    called with training=True or training=False (TRAIN_ON, TRAIN_OFF)."""
    if (rec[FLAGS] & TRAIN_ON) != 0:
        return True
    if (rec[FLAGS] & TRAIN_OFF) != 0:
        return False
    return training


_FORWARD_SIG = types.void(_PROG, _INTS, _BUF, _BUF, _BUF, _BUF, _BUF, _I64, _I64, _BUF, types.boolean,
                          _PARALLEL_TYPE, _BLOCK_TYPE, _ACTS, _BUF)


@njit(cache=True, **NO_WRAPPERS)
def forward(prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, training, parallel, dense_block, acts, inp):
    """Runs every op of ``prog`` on ``b`` rows; ``training`` draws dropout
    masks and normalizes by batch statistics. The inputs are in ``ws``
    (gathered there), or with DIRECT_INPUT the first op's rows (b x
    features) are in ``inp``, any float32 buffer, which it reads in place.
    ``parallel``: the pointer to ``_parallel``; ``dense_block``: a Dense
    forward block; ``acts``: ``activations.activation_function(prog)``.
    Ops other than Dense run their kind's function (``kernels.kinds``)."""
    for i in range(prog.shape[0]):
        rec = prog[i]
        if rec[KIND] != DENSE:
            call(op_pointer(rec[FWD]), rec, ints, params, consts, grads, ws, gs, b, op_training(rec, training))
            continue
        call(parallel, dense_block, rec, params, grads, ws, inp if i == 0 else ws, b, n_parts, ab, acts)
        if rec[ACT] == SOFTMAX:
            softmax_rows(ws, b * rec[Z_POS], ws, b * rec[A_POS], b * rec[ROWS], rec[N_OUT])


_BACKWARD_SIG = types.void(_PROG, _INTS, _BUF, _BUF, _BUF, _BUF, _BUF, _I64, _I64, _BUF, types.boolean,
                           _PARALLEL_TYPE, _BLOCK_TYPE, _BLOCK_TYPE, _ACTS)


@njit(cache=True, **NO_WRAPPERS)
def backward(prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, training, parallel, activation_block,
             dense_block, acts):
    """Back-propagates from the output gradients already in ``gs``;
    ``training`` must be the value the forward pass ran with. The blocks
    are ``_activation_backward_block`` and ``_dense_backward_block``."""
    for i in range(prog.shape[0] - 1, -1, -1):
        rec = prog[i]
        flags = rec[FLAGS]
        if rec[KIND] == ACTIVATION and rec[ACT] != SOFTMAX and rec[ACT] != LINEAR and \
                (flags & (NEED_DX | LOSS_FUSED)) == NEED_DX and rec[ACC] == 0:
            # wide layers: in parallel
            call(parallel, activation_block, rec, params, grads, ws, gs, b, n_parts, ab, acts)
        elif rec[KIND] != DENSE:
            if (flags & LOSS_FUSED) == 0:
                call(op_pointer(rec[BWD]), rec, ints, params, consts, grads, ws, gs, b, op_training(rec, training))
        elif (flags & FROZEN) == 0 or (flags & NEED_DX) != 0:   # else no gradient is needed below
            act = rec[ACT]
            if act != LINEAR and (flags & LOSS_FUSED) == 0:
                if act == SOFTMAX:
                    softmax_rows_backward(ws, gs, b * rec[A_POS], gs, b * rec[Z_POS], b * rec[ROWS], rec[N_OUT])
                else:
                    call(parallel, activation_block, rec, params, grads, ws, gs, b, n_parts, ab, acts)
            call(parallel, dense_block, rec, params, grads, ws, gs, b, n_parts, ab, acts)


@njit(cache=True, **NO_WRAPPERS)
def no_backward(prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, training, parallel, activation_block,
                dense_block, acts):
    """Stands in for ``backward`` in a run that does not train (never called)."""


@njit(cache=True)
def seed_kernels(seed):
    """Seeds the generator compiled code draws from (dropout masks)."""
    np.random.seed(seed)


@njit(cache=True, inline="always")
def _batch_rows(ids, pos, b, rows):
    """The data set rows of the run's rows [pos, pos+b) into rows[:b]: ``ids[pos:pos+b]``, or
    ``pos, pos+1, ...`` when ``ids`` is empty (rows in order). The gathers below read them, so
    each is inlined once, with no row logic of its own (every inlined copy costs compile time)."""
    for r in range(b):
        rows[r] = ids[pos + r] if ids.shape[0] > 0 else pos + r


@njit(cache=True, inline="always")
def _gather_columns(X, f, col, w, rows, b, dst, d0):
    """Columns [col, col + w) of X's ``rows[:b]`` (X: rows of ``f`` values
    stored flat) to dst[d0:] as a b x w block."""
    for r in range(b):
        src = rows[r] * f + col
        for j in range(w):
            dst[d0 + r * w + j] = X[src + j]


@njit(cache=True, inline="always")
def _gather_inputs(ins, X, Yf, rows, b, ws):
    """Each model input's columns of the batch's rows of X into its slot:
    ``ins`` (inputs, 3) holds [slot position, width, first column of X]; a
    first column c < 0 takes the columns from -1 - c of the dense targets Yf
    (the y_true of a loss written with keras.ops)."""
    f = 0
    for k in range(ins.shape[0]):
        if ins[k, 2] >= 0:
            f += ins[k, 1]
    y_stride = Yf.shape[0] * f // X.shape[0] if X.shape[0] > 0 else 0     # Yf has as many rows as X
    for k in range(ins.shape[0]):
        src, stride, col = X, f, ins[k, 2]
        if col < 0:
            src, stride, col = Yf, y_stride, -1 - col
        _gather_columns(src, stride, col, ins[k, 1], rows, b, ws, b * ins[k, 0])


@njit(cache=True, inline="always")
def _copy_outputs(outs, ws, b, out, pos):
    """Copies the ``b`` rows of each output to its columns of ``out[pos:pos + b]`` (2-D float32)."""
    for o in range(outs.shape[0]):
        n, col = outs[o, O_N], outs[o, O_COL]
        a = b * outs[o, O_POS]
        for r in range(b):
            for j in range(n):
                out[pos + r, col + j] = ws[a + r * n + j]


@njit(cache=True, inline="always")
def _losses(outs, consts, ws, gs, Yf, Yi, rows, b, yb, yl, wb, metric_codes, sums, want_grad, loss_value, loss_grad,
            loss_consts):
    """Gathers each output's targets (of the data set's ``rows[:b]``) and runs its batch loss (writing the
    gradient of its weighted mean loss into ``gs`` with ``want_grad``).
    ``outs`` rows: see ``kernels.program`` (O_*). An output whose O_SUMS is 0
    (the only one, of weight 1) adds to ``sums`` = [loss, samples,
    metrics...]; the others add to their own block there and ``sums[0]``
    gets their weighted sum."""
    blocks = False
    for o in range(outs.shape[0]):
        orec = outs[o]
        n, stride, off = orec[O_N], orec[O_Y_STRIDE], orec[O_Y_OFF]
        if orec[O_SPARSE] != 0:
            for r in range(b):
                yl[r] = Yi[rows[r] * stride + off]
        else:
            _gather_columns(Yf, stride, off, n, rows, b, yb, 0)
        weight = consts[orec[O_WEIGHT]]
        block = sums[orec[O_SUMS]:]
        loss = call(batch_loss_pointer(orec[O_LOSS]), ws, gs, b * orec[O_LOSS_POS], b * orec[O_POS], n, yb, yl, wb, b,
                    metric_codes[orec[O_M0]:orec[O_M1]], block, want_grad, weight, loss_value, loss_grad, loss_consts)
        if orec[O_SUMS] != 0:
            blocks = True
            sums[0] += weight * loss
    if blocks:
        sums[1] += b


@njit(cache=True, inline="always")
def _after_forward(prog, ints, params, consts, grads, ws, gs, b, training):
    """Each op in training mode (the run's, or its own: TRAIN_ON) runs its
    after-the-forward-pass function: BatchNormalization updates its moving statistics."""
    for i in range(prog.shape[0]):
        if prog[i, AFTER] != 0 and op_training(prog[i], training):
            call(op_pointer(prog[i, AFTER]), prog[i], ints, params, consts, grads, ws, gs, b, True)


@njit(cache=True, inline="always")
def _added_losses(adds, ws, gs, b, sums, want_grad):
    """The ``add_loss`` terms of a batch of ``b`` rows: ``adds`` rows [slot,
    mode, acc] (``models.program.Program.adds``) name a slot of one value per
    sample, each sample's share of the term; the term is their mean over the
    batch (mode 0) or their sum (mode 1). Adds b times each term to sums[0]
    (sums hold loss times samples) and, with ``want_grad``, writes its
    gradient, 1/b or 1 per sample, into the slot (added with acc)."""
    for k in range(adds.shape[0]):
        p = b * adds[k, 0]
        per_row = 1.0 / b if adds[k, 1] == 0 else 1.0
        total = 0.0
        for r in range(b):
            total += ws[p + r]
        sums[0] += b * per_row * total
        if want_grad:
            g = np.float32(per_row)
            for r in range(b):
                gs[p + r] = gs[p + r] + g if adds[k, 2] != 0 else g


def _record(cls, *field_types):
    """The Numba type of a ``records`` NamedTuple whose fields have ``field_types`` (as ``numba.typeof`` gives it)."""
    return types.BaseTuple.from_types(field_types, cls)


_I2 = types.int64[:, ::1]
_F2 = types.float32[:, ::1]
# The argument types fit, evaluate and predict call ``run_steps`` with (records
# of C-contiguous arrays, Python ints and bools): the loop's one
# specialisation, which a compile worker builds before the first call
# (``kernels.prebuild``). tests/test_prebuild.py checks that fit and predict
# use exactly these.
LOOP_TYPES = (
    _record(Net, _PROG, _INTS, _BUF, _BUF, _I2, _I2, _I2, _I2),
    _record(Optim, _F2, _I64, _I64, _BUF, _INTS, Pointer(PARALLEL_UPDATE_SIG), UPDATE_TYPE, Pointer(PREPARE_SIG), _I2,
            Pointer(CONSTRAIN_SIG)),
    _record(Data, _BUF, _BUF, _INTS, _BUF, _INTS),
    _record(Work, _BUF, _BUF, _BUF, _BUF, _INTS, _BUF, _INTS, _BUF, types.float64[::1], _F2, _INTS),
    _record(LossFns, VALUE_TYPE, GRADIENT_TYPE, _BUF, Pointer(PENALTY_SIG)),
    _record(Parts, Pointer(_FORWARD_SIG), Pointer(_BACKWARD_SIG), _PARALLEL_TYPE, _BLOCK_TYPE, _BLOCK_TYPE, _BLOCK_TYPE,
            _ACTS),
    _I64, _I64, _I64, _I64, _I64, types.boolean)


@njit(cache=True, no_cfunc_wrapper=True)
def run_steps(net, opt, data, work, loss, parts, step, start, stop, batch, n_parts, training):
    """Runs rows ids[start:stop] of the data (``data.ids`` empty: rows
    [start, stop) in order) in batches of ``batch``; trains on them when
    ``training``. Returns the optimizer's step count, ``step`` being the
    count before this call. One loop serves fit, evaluate and predict, so a
    process that trains and predicts compiles one loop. The records are
    ``records.Net``, ``Optim``, ``Data``, ``Work``, ``LossFns`` and ``Parts``;
    ``n_parts``: blocks each matrix product is split into (``threads.parts``).

    Training stops early, before its update, at the first batch whose loss is
    NaN or inf (``work.sums[0]`` is then non-finite): the weights stay the
    last finite ones, those that batch was computed with (BatchNormalization's
    moving statistics excepted: fit restores the epoch's start if they went
    non-finite), and fit stops there (raising NonFiniteLossError, or quietly
    when TerminateOnNaN asks it to) without returning to Python every step.
    Without ``training`` the layers run in inference mode (those called with
    training=True excepted: ``op_training``) and the optimizer,
    the backward pass and the penalties are not used (``infer_steps`` fills
    them in with placeholders of the same types).

    With a loss (``net.outs``' O_LOSS not 0), ``work.sums`` accumulates
    [loss, samples, metrics...] (see ``_losses``; weighted by ``data.sw``
    when not empty); in training the loss includes the weight penalties of
    ``net.regs`` once per sample, as Keras adds them to every batch's loss
    (evaluate adds them itself: they are constant there); after each update
    the weight constraints of ``opt.cons`` are applied (``opt.constrain``:
    ``constraints.constrain_function``). ``work.out``, when
    not empty, receives the outputs of the run's row i at out[i] (training
    mode's outputs in training)."""
    prog, ints, params, consts = net.prog, net.ints, net.params, net.consts
    X, ids, sw = data.X, data.ids, data.sw
    grads, ws, gs, ab, sums, out = work.grads, work.ws, work.gs, work.ab, work.sums, work.out
    has_loss = net.outs[0, O_LOSS] != 0
    weighted = sw.shape[0] > 0
    wb = work.wb if weighted else work.wb[:0]   # the batch loss weighs rows by wb unless it is empty
    # Rows in order into a Dense first op that alone reads the only input are read where they are: no copy.
    in_place = not training and ids.shape[0] == 0 and (prog[0, FLAGS] & DIRECT_INPUT) != 0
    f = prog[0, N_IN]
    rows = work.rows
    pos = start
    while pos < stop:
        b = min(batch, stop - pos)
        _batch_rows(ids, pos, b, rows)
        if in_place:
            inp = X[pos * f:]
        else:
            _gather_inputs(net.ins, X, data.Yf, rows, b, ws)
            inp = ws
        if weighted:
            for r in range(b):
                wb[r] = sw[rows[r]]
        call(parts.forward, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, training, parts.parallel,
             parts.forward_block, parts.acts, inp)
        _after_forward(prog, ints, params, consts, grads, ws, gs, b, training)
        if has_loss:
            _losses(net.outs, consts, ws, gs, data.Yf, data.Yi, rows, b, work.yb, work.yl, wb, work.metric_codes, sums,
                    training, loss.value, loss.grad, loss.consts)
            _added_losses(net.adds, ws, gs, b, sums, training)
        if training:
            call(parts.backward, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, True, parts.parallel,
                 parts.activation_block, parts.backward_block, parts.acts)
            sums[0] += b * call(loss.penalty, net.regs, consts, params, grads, True)
            if not np.isfinite(sums[0]):
                break   # a NaN/inf loss: stop before this batch's update (fit then stops)
        if out.shape[0] > 0:
            _copy_outputs(net.outs, ws, b, out, pos)
        if training:
            step += 1
            call(opt.prepare, opt.code, opt.hp, step, grads, opt.bounds)
            call(opt.update_all, opt.update, opt.hp, step, params, grads, opt.slots, opt.n_trainable, n_parts)
            call(opt.constrain, opt.cons, consts, params)
        pos += b
    return step


@njit(cache=True, no_cfunc_wrapper=True)
def loss_gradients(net, data, work, loss, parts, batch, n_parts, training):
    """Loss over one batch (the ``batch`` rows of ``data.X``, in order: the
    weighted sum of the outputs' mean per-sample losses, weighted by
    ``data.sw`` when not empty, plus the weight penalties) and its gradient
    with respect to every trainable parameter, written to ``work.grads``.
    ``training`` runs the layers as in ``fit`` (dropout masks, batch
    statistics) without updating moving statistics. Nothing is updated.
    Used by tests (finite differences) and by callers that want gradients.
    Records as ``run_steps``."""
    prog, ints, params, consts = net.prog, net.ints, net.params, net.consts
    grads, ws, gs, ab = work.grads, work.ws, work.gs, work.ab
    b = batch
    rows = work.rows
    _batch_rows(data.ids[:0], 0, b, rows)     # the first b rows, in order
    _gather_inputs(net.ins, data.X, data.Yf, rows, b, ws)
    call(parts.forward, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, training, parts.parallel,
         parts.forward_block, parts.acts, ws)
    n_sums = 2
    for o in range(net.outs.shape[0]):
        n_sums = max(n_sums, net.outs[o, O_SUMS] + 2)
    sums = np.zeros(n_sums, dtype=np.float64)
    # the rows are in order: their weights are sw itself (or it is empty)
    _losses(net.outs, consts, ws, gs, data.Yf, data.Yi, rows, b, work.yb, work.yl, data.sw,
            np.zeros(0, dtype=np.int64), sums, True, loss.value, loss.grad, loss.consts)
    _added_losses(net.adds, ws, gs, b, sums, True)
    call(parts.backward, prog, ints, params, consts, grads, ws, gs, b, n_parts, ab, training, parts.parallel,
         parts.activation_block, parts.backward_block, parts.acts)
    return sums[0] / b + call(loss.penalty, net.regs, consts, params, grads, True)


@njit(cache=True, no_cfunc_wrapper=True)
def forward_rows(net, data, work, parts, n, batch, n_parts, update):
    """Forward passes in training mode (dropout masks drawn, batch
    statistics used; a layer called with training=False excepted) over rows
    [0, n) of ``data.X`` in order, in batches of ``batch``, each output copied
    to ``work.out`` (n, output columns): what ``model(x, training=True)``
    returns. No loss, no backward pass, no weight update; with ``update``
    BatchNormalization updates its moving statistics after each batch, as
    Keras 3 does in an eager call in training mode. Records as ``run_steps``;
    the parts from ``training_parts``."""
    rows = work.rows
    ws = work.ws
    pos = 0
    while pos < n:
        b = min(batch, n - pos)
        _batch_rows(data.ids[:0], pos, b, rows)     # in order
        _gather_inputs(net.ins, data.X, data.Yf, rows, b, ws)
        call(parts.forward, net.prog, net.ints, net.params, net.consts, net.params, ws, ws, b, n_parts, work.ab, True,
             parts.parallel, parts.forward_block, parts.acts, ws)
        if update:
            _after_forward(net.prog, net.ints, net.params, net.consts, net.params, ws, ws, b, True)
        _copy_outputs(net.outs, ws, b, work.out, pos)
        pos += b


def training_parts(prog, batch):
    """The compiled parts ``run_steps`` (training) and ``loss_gradients``
    call on batches of ``batch`` rows, as pointers in their argument order
    (the last ones): the forward and backward passes, the parallel dispatcher
    and its blocks (forward, activation backward, Dense backward), the
    activations other than ReLU."""
    return Parts(function_pointer(forward, _FORWARD_SIG), function_pointer(backward, _BACKWARD_SIG),
                 function_pointer(_parallel, _PARALLEL_SIG), _forward_block(batch),
                 function_pointer(_activation_backward_block, BLOCK_SIG),
                 function_pointer(_dense_backward_block, BLOCK_SIG), activation_function(prog))


def inference_parts(prog, batch):
    """The compiled parts ``run_steps`` calls without training, for batches of
    ``batch`` rows, as ``training_parts``: the backward pass is a placeholder
    and the forward block stands in for the two backward blocks (never called)."""
    block = _forward_block(batch)
    return Parts(function_pointer(forward, _FORWARD_SIG), function_pointer(no_backward, _BACKWARD_SIG),
                 function_pointer(_parallel, _PARALLEL_SIG), block, block, block, activation_function(prog))


def _forward_block(batch):
    """The Dense forward block for batches of ``batch`` rows: split by rows or by columns."""
    return function_pointer(_dense_forward_by_rows if batch >= _ROW_SPLIT_ROWS else _dense_forward_by_columns,
                            BLOCK_SIG)


_NO_SLOTS = np.zeros((0, 0), dtype=np.float32)
_NO_F32 = np.zeros(0, dtype=np.float32)
_NO_I64 = np.zeros(0, dtype=np.int64)
_NO_REGS = np.zeros((0, 3), dtype=np.int64)
_NO_CONS = np.zeros((0, 6), dtype=np.int64)


def idle_optim():
    """An ``Optim`` of the types fit passes, for runs that do not train (never stepped)."""
    return Optim(_NO_SLOTS, 0, 0, _NO_F32, _NO_I64, *idle_optimizer(), _NO_CONS, constrain_function(_NO_CONS))


def infer_steps(net, data, work, loss, parts, start, stop, batch, n_parts):
    """``run_steps`` without training on rows [start, stop) of ``data.X`` in
    order; ``parts``: ``inference_parts``. The optimizer and the penalties,
    which only training uses, are placeholders of the types fit passes, so
    fit and predict share one compiled loop."""
    prebuild.ensure(run_steps)
    run_steps(net, idle_optim(), data, work, loss, parts, 0, start, stop, batch, n_parts, False)
