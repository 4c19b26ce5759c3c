"""Training and inference on a CUDA GPU, over the model's op table.

A ``Session`` puts one model on the device for one batch size: its program's
parameters, constants, workspaces ``ws`` / ``gs`` (the CPU layout), gradient
and optimizer slots. It reads the op table once per batch size and turns it
into a *plan*: the list of kernel launches of a forward and of a backward
pass. A training step is then: the forward plan, the loss kernel, the
backward plan and one optimizer kernel, all queued on the default stream
with no host round-trip. The host waits once per chunk of steps, to fetch
the running loss and metric sums.

The batch is never copied: a first Dense layer reads its rows straight from
the device-resident data set through the shuffled index (the GEMM's
``a_rows``), and the loss kernel reads targets and sample weights the same
way (a first op of another kind gets one gather launch). A softmax that the
loss fuses is computed by the loss kernel, not by a launch of its own. For
the 784-300-100-10 MLP with Adam that is 10 launches a step (3 forward
GEMMs, the loss, 5 backward GEMMs, the update), where a naive plan has 15.

Ops of the kinds in ``kernels.kinds`` beyond these (convolutions, pooling,
reshaping of feature maps, ...) are turned into launches by their device
modules, through the planners of ``kinds`` (one branch here, not one per kind).

The model's host buffers stay the source of truth between calls: each call
first uploads the parameters if the host copy changed since the device last
wrote it (a callback's ``set_weights``, say), and ends by copying parameters
and optimizer slots back into the model's flat buffers, so ``get_weights``,
saving and callbacks always see current weights. That is a few MB per chunk,
each chunk being about a tenth of a second of training.
"""
import warnings

import numpy as np
from numba import cuda
from numba.cuda.random import create_xoroshiro128p_states

from ..cpu.activations import LINEAR, SOFTMAX
from ..program import (A_POS, ACT, ACTIVATION, AUX, B_OFF, BATCHNORM, DENSE, DROPOUT, FLAGS, FROZEN, IAUX, KIND,
                       LOSS_FUSED, N_IN, N_OUT, NEED_DX, ON_LOGITS, S_OFF, W_OFF, X_POS, Z_POS)
from . import blas, elementwise as ew, kinds as op_kinds
from .batchnorm import batchnorm_backward, batchnorm_forward
from .launch import DROPOUT_BLOCKS, THREADS, blocks_for, configure, planned
from .losses import loss_rows
from .optimizers import REDUCE_THREADS, apply_update, needs_prepare, prepare_step
from .regularizers import add_penalty

_DROPOUT_STATES = THREADS * DROPOUT_BLOCKS
_NO_WEIGHTS = np.zeros(0, dtype=np.float32)


def _runs_act_backward(rec):
    """True when the backward pass takes op ``rec``'s gradient through its
    activation (the conditions of ``cpu.engine.backward``)."""
    kind, act, flags = int(rec[KIND]), int(rec[ACT]), int(rec[FLAGS])
    return (kind == DENSE or kind == ACTIVATION) and act != LINEAR and (flags & LOSS_FUSED) == 0 and \
        (kind == DENSE or (flags & NEED_DX) != 0)


class Plan:
    """The kernel launches for batches of ``b`` rows, configured once.

    ``forward`` / ``backward``: lists of (configured kernel, args, reads_data)
    that replay a pass over the op table; ``reads_data`` marks the launches
    that read the batch from the data set (``a_rows``), whose data, index
    and position ``Session._run`` fills in at each step. ``gather`` (None
    when the first op reads the data itself), ``loss``, ``penalty``,
    ``prepare``, ``update`` and ``copy``: configured kernels whose arguments
    change from step to step. ``src``: where the loss reads (logits when
    ``logits``); ``out``: where the outputs are (what metrics and
    predictions read); ``softmax_out``: the loss kernel computes the outputs
    (a fused softmax) before the metrics read them."""

    def __init__(self, forward, backward, gather, loss, penalty, prepare, update, copy, src, out, logits,
                 softmax_out):
        self.forward, self.backward = forward, backward
        self.gather, self.loss, self.penalty, self.prepare = gather, loss, penalty, prepare
        self.update, self.copy = update, copy
        self.src, self.out, self.logits, self.softmax_out = src, out, logits, softmax_out

    def launches(self, with_loss=True, penalty=False, prepare=False):
        """Kernel launches of one step (a training step when the plan has a
        backward pass): what the step costs in launch latency."""
        training = bool(self.backward)
        return (len(self.forward) + len(self.backward) + (self.gather is not None) + with_loss
                + (training and penalty) + (training and prepare) + training)


class DeviceData:
    """Inputs, targets and sample weights of one fit / evaluate / predict call, on the device.

    Host arrays as ``fastnn.models.data`` makes them: X (N, features) float32,
    Yf (N, outputs) float32 or (0, outputs), Yi (N,) int64 or (0,); sw (N,)
    float32 sample weights or (0,). On the device X and Yf are flat."""

    def __init__(self, X, Yf, Yi, sw=_NO_WEIGHTS):
        self.host = (X, Yf, Yi, sw)      # keeps the ids used as cache keys alive
        self.n, self.features = X.shape
        self.X, self.Yf = cuda.to_device(X.reshape(-1)), cuda.to_device(Yf.reshape(-1))
        self.Yi, self.sw = cuda.to_device(Yi), cuda.to_device(sw)
        self.order = cuda.to_device(np.arange(self.n, dtype=np.int64))
        self.out = None                  # predictions (N * outputs), allocated by the first predict


class Session:
    """One model on the device for batches of at most ``batch`` rows.

    ``program``: the model's ``Program`` (op table, constants, slot count,
    weight penalties). ``params``: the model's flat float32 buffer, updated
    in place after each call. ``optimizer``: the model's optimizer (built)
    when training, else None; ``bounds``: int64 offsets of the trainable
    weight arrays then the end of the trainable prefix (``training.trainable_bounds``;
    clipping by norm needs them). ``seed``: dropout generator seed (only used
    when the model has Dropout)."""

    def __init__(self, program, params, batch, optimizer=None, n_trainable=0, seed=0, bounds=None):
        self.prog = program.prog
        self.consts_host = program.consts
        self.batch = batch
        self.in_width, self.out_width = program.in_width, program.out_width
        self.params_host = params
        self.params = cuda.to_device(params)
        self._written = params.copy()       # what the device last wrote into the host buffer
        self.consts = cuda.to_device(program.consts)
        self.regs = cuda.to_device(program.regs) if program.regs.shape[0] > 0 else None
        self.ws = cuda.to_device(np.zeros(batch * program.slots, dtype=np.float32))
        self.gs = cuda.to_device(np.zeros(batch * program.slots, dtype=np.float32))
        self.grads = cuda.to_device(np.zeros_like(params))
        self.optimizer = optimizer
        self.n_trainable = n_trainable
        if optimizer is not None:
            self.slots = cuda.to_device(optimizer.slots)
            if bounds is None:
                bounds = np.array([0, n_trainable], dtype=np.int64)
            self.bounds_host = bounds
            self.bounds = cuda.to_device(bounds)
            self.clip = cuda.to_device(np.zeros(max(1, bounds.shape[0] - 1), dtype=np.float32))
        # The kinds planned in ``kinds`` (convolutions, pooling, ...): their device scratch, batch rows per op.
        self.ints_host = program.ints
        self.ints = cuda.to_device(program.ints)
        planners = [op_kinds.get(k) for k in self.prog[:, KIND]]
        per_sample = [0 if p is None else p.scratch(rec, program.ints) for p, rec in zip(planners, self.prog)]
        self.scratch_at = batch * np.cumsum([0] + per_sample)[:-1]
        self.scratch = cuda.device_array(max(1, batch * sum(per_sample)), dtype=np.float32)
        self.states = None
        if np.any(self.prog[:, KIND] == DROPOUT) or \
                any(p is not None and p.draws(rec, program.consts) for p, rec in zip(planners, self.prog)):
            with warnings.catch_warnings():   # seeding on the host warns in some numba versions
                warnings.simplefilter("ignore")
                self.states = create_xoroshiro128p_states(_DROPOUT_STATES, seed=seed)
        self._data = {}
        self._ids = (None, None)
        self._plans = {}
        # A first Dense layer reads its batch from the data set itself (no gather launch).
        self.reads_data = int(self.prog[0, KIND]) == DENSE
        self._small = {}                    # device copies of small per-call arrays, reused (``_upload``)
        self._pred = None                   # training-mode outputs for metrics computed on the host

    # -- host <-> device ---------------------------------------------------
    def data(self, X, Yf, Yi, sw=_NO_WEIGHTS):
        """The DeviceData of these host arrays (uploaded on first use)."""
        key = (id(X), id(Yf), id(Yi), id(sw))
        if key not in self._data:
            self._data[key] = DeviceData(X, Yf, Yi, sw)
        return self._data[key]

    def _upload(self, name, host, changed_on_device=False):
        """A device copy of the small host array ``host``, in a buffer kept
        under ``name`` and reused while the shape and dtype stay the same.
        The copy is skipped when the buffer already holds these values,
        unless kernels write it (``changed_on_device``)."""
        dev, last = self._small.get(name, (None, None))
        if dev is None or dev.shape != host.shape or dev.dtype != host.dtype:
            dev = cuda.to_device(host)
        elif changed_on_device or not np.array_equal(last, host):
            dev.copy_to_device(host)
        self._small[name] = (dev, host.copy())
        return dev

    def _push(self):
        """Uploads the host parameters if something changed them since the last pull."""
        if not np.array_equal(self.params_host, self._written):
            self.params.copy_to_device(self.params_host)
            self._written[...] = self.params_host

    def _pull(self):
        """Copies device parameters (and optimizer slots) into the host buffers."""
        self.params.copy_to_host(self.params_host)
        self._written[...] = self.params_host
        if self.optimizer is not None:
            self.slots.copy_to_host(self.optimizer.slots)

    # -- plans: the op table as kernel launches ----------------------------
    def _plan(self, b, training, with_loss=True):
        """The Plan for batches of ``b`` rows: a training step, or inference
        with or without the loss kernel (predict)."""
        key = (b, training, with_loss)
        if key not in self._plans:
            src, out, logits = self._output_offsets(b)
            last = self.prog[-1]
            # The loss on logits fuses the softmax: the loss kernel writes the outputs.
            softmax_out = with_loss and logits and int(last[ACT]) == SOFTMAX
            self._plans[key] = Plan(
                self._forward_plan(b, training, softmax_out), self._backward_plan(b, True) if training else [],
                None if self.reads_data else configure(ew.gather, blocks_for(b * self.in_width), THREADS),
                configure(loss_rows, blocks_for(b), THREADS),
                configure(add_penalty, blocks_for(self.n_trainable), THREADS),
                configure(prepare_step, 1, REDUCE_THREADS),
                configure(apply_update, blocks_for(self.n_trainable), THREADS),
                configure(ew.copy, blocks_for(b * self.out_width), THREADS),
                src, out, logits, softmax_out)
        return self._plans[key]

    def _forward_plan(self, b, training, softmax_out):
        ws, params, consts = self.ws, self.params, self.consts
        plan = []
        for i, rec in enumerate(self.prog):
            kind, n_in, n, act = int(rec[KIND]), int(rec[N_IN]), int(rec[N_OUT]), int(rec[ACT])
            x, z, a = b * int(rec[X_POS]), b * int(rec[Z_POS]), b * int(rec[A_POS])
            aux = int(rec[AUX])
            skip_softmax = softmax_out and i == self.prog.shape[0] - 1
            if kind == DENSE:
                epi = blas.EPI_ACT if (act != SOFTMAX and a != z) else blas.EPI_NONE
                reads_data = i == 0 and self.reads_data      # x is the data set's rows: a_rows, filled per step
                plan.append((*blas.gemm_launch(False, False, b, n, n_in, 1.0, 0.0, ws, x, n_in, params,
                                               int(rec[W_OFF]), n, ws, z, n, bias=params, bias_off=int(rec[B_OFF]),
                                               epi=epi, act=act, out=ws, out_off=a), reads_data))
                if act == SOFTMAX and not skip_softmax:
                    plan.append((*planned(ew.softmax_rows, b, ws, z, ws, a, b, n), False))
            elif kind == DROPOUT and training:
                rate = np.float32(self.consts_host[aux])
                blocks = min(blocks_for(b * n), _DROPOUT_STATES // THREADS)
                plan.append((configure(ew.dropout, blocks, THREADS), (self.states, rate, b * n, x, z, a, ws), False))
            elif kind == DROPOUT:   # inference: identity
                plan.append((*planned(ew.op_forward, b * n, ACTIVATION, LINEAR, n, b, x, a, ws, params, -1, -1,
                                      consts, aux), False))
            elif kind == BATCHNORM:
                batch_stats = training and not int(rec[FLAGS]) & FROZEN
                c = self.consts_host
                feat = int(self.ints_host[int(rec[IAUX])])     # a feature map's pixels are rows of channels
                plan.append((*planned(batchnorm_forward, feat, feat, b * n // feat, x, a, z, int(rec[W_OFF]),
                                      int(rec[B_OFF]), int(rec[S_OFF]), c[aux], c[aux + 1], c[aux + 2], batch_stats,
                                      params, ws), False))
            elif kind == ACTIVATION and act == SOFTMAX:
                if not skip_softmax:
                    plan.append((*planned(ew.softmax_rows, b, ws, x, ws, a, b, n), False))
            elif op_kinds.get(kind) is not None:
                plan.extend((*launch, False) for launch in op_kinds.plan(self, i, b, training, backward=False))
            else:
                plan.append((*planned(ew.op_forward, b * n, kind, act, n, b, x, a, ws, params, int(rec[W_OFF]),
                                      int(rec[B_OFF]), consts, aux), False))
        return plan

    def _backward_plan(self, b, training):
        """Launches of a backward pass, as ``cpu.engine.backward`` (``training``
        as the forward pass ran), with two fusions into the GEMMs: the
        previous op's activation derivative rides on this op's dX product,
        and the bias gradient on the dW product (a ones row) when the bias
        follows the kernel in the buffer."""
        ws, gs, params, grads, consts = self.ws, self.gs, self.params, self.grads, self.consts
        prog = self.prog
        plan = []
        act_done = set()     # ops whose activation backward a later op's dX product did
        for i in range(prog.shape[0] - 1, -1, -1):
            rec = prog[i]
            kind, n_in, n, act = int(rec[KIND]), int(rec[N_IN]), int(rec[N_OUT]), int(rec[ACT])
            x, z, a = b * int(rec[X_POS]), b * int(rec[Z_POS]), b * int(rec[A_POS])
            flags, aux = int(rec[FLAGS]), int(rec[AUX])
            need_dx = (flags & NEED_DX) != 0
            if kind == DENSE and (flags & FROZEN) and not need_dx:
                continue    # a frozen layer with nothing trainable before it: no gradient needed
            if kind == DENSE or kind == ACTIVATION:
                if _runs_act_backward(rec) and i not in act_done:
                    if act == SOFTMAX:
                        plan.append((*planned(ew.softmax_rows_backward, b, ws, gs, a, gs, z, b, n), False))
                    else:
                        plan.append((*planned(ew.op_backward, b * n, kind, act, n, b, x, z, a, ws, gs, params, -1,
                                              consts, aux), False))
                if kind == DENSE:
                    w, bias = int(rec[W_OFF]), int(rec[B_OFF])
                    if need_dx:
                        prev = prog[i - 1]
                        fuse = _runs_act_backward(prev) and int(prev[ACT]) != SOFTMAX
                        plan.append((*blas.gemm_launch(
                            False, True, b, n_in, n, 1.0, 0.0, gs, z, n, params, w, n, gs, x, n_in,
                            epi=blas.EPI_DACT if fuse else blas.EPI_NONE, act=int(prev[ACT]), out=gs,
                            out_off=b * int(prev[Z_POS]), aux=ws, aux_z=b * int(prev[Z_POS]),
                            aux_a=b * int(prev[A_POS])), False))
                        if fuse:
                            act_done.add(i - 1)
                    if flags & FROZEN:
                        continue
                    ones_row = bias == w + n_in * n
                    reads_data = i == 0 and self.reads_data
                    plan.append((*blas.gemm_launch(True, False, n_in + ones_row, n, b, 1.0, 0.0, ws, x, n_in, gs, z,
                                                   n, grads, w, n, ones_row=ones_row), reads_data))
                    if bias >= 0 and not ones_row:
                        plan.append((*planned(ew.column_sums, n, gs, z, b, n, grads, bias), False))
            elif kind == BATCHNORM:
                frozen = (flags & FROZEN) != 0
                feat = int(self.ints_host[int(rec[IAUX])])
                if need_dx or not frozen:
                    plan.append((*planned(batchnorm_backward, feat, feat, b * n // feat, x, a, z, int(rec[W_OFF]),
                                          int(rec[B_OFF]), not frozen, need_dx, training and not frozen, params,
                                          grads, ws, gs), False))
            elif op_kinds.get(kind) is not None:
                plan.extend((*launch, False) for launch in op_kinds.plan(self, i, b, training, backward=True))
            elif kind == DROPOUT and need_dx and not training:     # identity at inference
                plan.append((*planned(ew.copy, b * n, gs, a, gs, x, b * n), False))
            elif need_dx:
                plan.append((*planned(ew.op_backward, b * n, kind, act, n, b, x, z, a, ws, gs, params,
                                      int(rec[B_OFF]), consts, aux), False))
        return plan

    def _output_offsets(self, b):
        """(where the loss reads, where the outputs are, whether the loss reads logits)."""
        last = self.prog[-1]
        fused = (int(last[FLAGS]) & LOSS_FUSED) != 0
        a = b * int(last[A_POS])
        return (b * int(last[Z_POS]) if fused else a), a, fused

    @staticmethod
    def _run(launches, data, ids, pos):
        """Runs a forward or backward plan on the batch at ``ids[pos:]`` of ``data``."""
        for kernel, args, reads_data in launches:
            if reads_data:
                args = list(args)
                args[blas.A_ARG], args[blas.A_ROWS_ARG], args[blas.A_ROWS_OFF_ARG] = data.X, ids, pos
            kernel(*args)

    def _step_in(self, plan, data, ids, pos, b):
        """The forward pass of the batch at ``ids[pos:pos+b]`` of ``data``."""
        if plan.gather is not None:
            plan.gather(data.X, data.features, ids, pos, b, self.ws)
        self._run(plan.forward, data, ids, pos)

    def _loss(self, plan, data, ids, pos, b, loss_code, loss_mode, want_grad, codes, sums):
        plan.loss(loss_code, ON_LOGITS if plan.logits else loss_mode, self.ws, plan.src, self.gs, plan.src,
                  want_grad, data.Yf, data.Yi, data.sw, data.sw.shape[0] > 0, ids, pos, b, self.out_width, codes,
                  self.ws, plan.out, plan.softmax_out, sums)

    # -- the compiled-loop equivalents of kernels.cpu.engine ---------------
    def train_steps(self, data, ids, start, stop, hp, step, loss_code, loss_mode, metric_codes, sums,
                    pred_out=None):
        """Trains on rows ids[start:stop] of ``data`` in batches; returns the new step count.

        ``ids``: host int64 row order (uploaded once per new array); ``hp``:
        the optimizer's float32 hyper-parameters; ``step``: its iteration
        count before the call; ``sums`` (host float64) gets [loss, samples,
        metrics...] of these steps added, as ``cpu.engine.run_steps``
        (the loss with the weight penalties); ``pred_out`` (host (N, outputs)
        float32, or None / empty) receives the training-mode outputs of row
        ids[i] at i, for metrics computed on the host."""
        if self._ids[0] is not ids:
            self._ids = (ids, cuda.to_device(ids))
        d_ids = self._ids[1]
        self._push()
        d_codes = self._upload("codes", metric_codes)
        d_sums = self._upload("sums", np.zeros_like(sums), changed_on_device=True)
        want_pred = pred_out is not None and pred_out.shape[0] > 0
        if want_pred and (self._pred is None or self._pred.shape[0] < pred_out.size):
            self._pred = cuda.device_array(pred_out.size, dtype=np.float32)
        opt = self.optimizer
        prepare = needs_prepare(opt.code, hp)
        d_hp = self._upload("hp", hp, changed_on_device=prepare)      # prepare_step writes the rate
        n_out = self.out_width
        pos = start
        while pos < stop:
            b = min(self.batch, stop - pos)
            plan = self._plan(b, True)
            self._step_in(plan, data, d_ids, pos, b)
            self._loss(plan, data, d_ids, pos, b, loss_code, loss_mode, True, d_codes, d_sums)
            if want_pred:
                plan.copy(self.ws, plan.out, self._pred, pos * n_out, b * n_out)
            self._run(plan.backward, data, d_ids, pos)
            if self.regs is not None:
                plan.penalty(self.regs, self.consts, self.params, self.grads, True, np.float64(b), d_sums)
            step += 1
            if prepare:
                plan.prepare(opt.code, d_hp, step, self.grads, self.bounds, self.clip)
            plan.update(opt.code, d_hp, step, self.params, self.grads, self.slots, self.n_trainable, self.bounds,
                        self.clip)
            pos += b
        sums += d_sums.copy_to_host()    # waits for the queued steps
        if want_pred:
            self._pred[start * n_out:stop * n_out].copy_to_host(pred_out[start:stop].reshape(-1))
        self._pull()
        return step

    def infer_steps(self, data, start, stop, loss_code, loss_mode, metric_codes, sums, out):
        """Forward passes on rows [start, stop) of ``data`` in order.

        With ``loss_code >= 0`` adds [loss, samples, metrics...] to host
        ``sums`` (the loss weighted by the data's sample weights, if any;
        without weight penalties, which the caller adds); with ``out``
        non-empty copies the outputs of rows [start, stop) into
        ``out[start:stop]`` (host, 2-D float32)."""
        self._push()
        n_out = self.out_width
        want_out = out.shape[0] > 0
        with_loss = loss_code >= 0
        if want_out and data.out is None:
            data.out = cuda.device_array(data.n * n_out, dtype=np.float32)
        if with_loss:
            d_codes = self._upload("codes", metric_codes)
            d_sums = self._upload("sums", np.zeros_like(sums), changed_on_device=True)
        pos = start
        while pos < stop:
            b = min(self.batch, stop - pos)
            plan = self._plan(b, False, with_loss)
            self._step_in(plan, data, data.order, pos, b)
            if with_loss:
                self._loss(plan, data, data.order, pos, b, loss_code, loss_mode, False, d_codes, d_sums)
            if want_out:
                plan.copy(self.ws, plan.out, data.out, pos * n_out, b * n_out)
            pos += b
        if with_loss:
            sums += d_sums.copy_to_host()
        if want_out:
            data.out[start * n_out:stop * n_out].copy_to_host(out[start:stop].reshape(-1))

    def loss_gradients(self, data, loss_code, loss_mode):
        """Loss over all rows of ``data`` (one batch, dropout off: the mean
        per-sample loss, weighted by the data's sample weights if any, plus
        the weight penalties) and the gradient of every parameter, as a new
        host float32 array."""
        self._push()
        b = data.n
        plan = self._plan(b, False)
        d_sums = cuda.to_device(np.zeros(2, dtype=np.float64))
        no_metrics = cuda.to_device(np.zeros(0, dtype=np.int64))
        self._step_in(plan, data, data.order, 0, b)
        self._loss(plan, data, data.order, 0, b, loss_code, loss_mode, True, no_metrics, d_sums)
        self._run(self._backward_plan(b, False), data, data.order, 0)
        if self.regs is not None:
            plan.penalty(self.regs, self.consts, self.params, self.grads, True, np.float64(b), d_sums)
        return float(d_sums.copy_to_host()[0] / b), self.grads.copy_to_host()
