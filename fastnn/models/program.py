"""Turns a built layer stack into a compiled-loop program and a flat buffer.

``pack`` lays every weight of the model out in one float32 buffer (trainable
weights first, so the optimizer updates one prefix) and rebinds each
Variable to its view. ``compile_program`` writes the int64 op table that the
kernels read (layout in ``fastnn.kernels.program``).
"""
import warnings

import numpy as np

from ..kernels import program as P
from ..kernels.cpu.activations import LINEAR, SIGMOID, SOFTMAX


class Program:
    """Everything the compiled loops need that depends only on the model.

    prog: (n_ops, N_FIELDS) int64; consts: float32 constants; slots: total
    per-sample workspace width; in_width / out_width: features in and out;
    regs: (n, 3) int64 weight penalties (``kernels.cpu.regularizers``)."""

    def __init__(self, prog, consts, slots, in_width, out_width, regs):
        self.prog, self.consts, self.slots = prog, consts, slots
        self.in_width, self.out_width = in_width, out_width
        self.regs = regs


def pack(layers):
    """Moves all weights of ``layers`` into one new flat buffer.

    Returns ``(params, n_trainable)``; every Variable now views ``params``."""
    variables = [v for layer in layers for v in layer.weights]
    trainable = [v for layer in layers for v in layer.trainable_weights]
    trainable_ids = {id(v) for v in trainable}     # a set: packing stays linear in the layers
    frozen = [v for v in variables if id(v) not in trainable_ids]
    ordered = trainable + frozen
    params = np.empty(sum(v.size for v in ordered), dtype=np.float32)
    off = 0
    for v in ordered:
        view = params[off:off + v.size].reshape(v.shape)
        view[...] = v.value
        v.value = view
        off += v.size
    return params, sum(v.size for v in trainable)


def _offset(params, var):
    """Element offset of Variable ``var`` inside ``params`` (-1 for None)."""
    if var is None:
        return -1
    return (var.value.__array_interface__["data"][0] - params.__array_interface__["data"][0]) // 4


def fused_loss(ops, loss):
    """True when the last op's softmax/sigmoid folds into the loss as logits.

    As Keras 3 does, this also holds with ``from_logits=True``: the real
    logits are used (with a warning), not the probabilities."""
    if loss is None or not ops:
        return False
    last = ops[-1]
    if last.kind not in (P.DENSE, P.ACTIVATION):
        return False
    fused = (last.act == SOFTMAX and loss.code in (P.CCE, P.SCCE)) or (last.act == SIGMOID and loss.code == P.BCE)
    if fused and loss.from_logits:
        warnings.warn(f"{loss.name} received from_logits=True, but the output is produced by a "
                      f"{'softmax' if last.act == SOFTMAX else 'sigmoid'} activation and thus does not represent "
                      "logits; the loss uses the pre-activation logits, as Keras does", stacklevel=4)
    return fused


def compile_program(layers, input_width, params, loss=None):
    """Op table for ``layers`` (built) reading ``input_width`` features."""
    ops = [(layer, layer.op()) for layer in layers]
    ops = [(layer, op) for layer, op in ops if op is not None]
    if not ops:
        raise ValueError("The model has no layer that computes anything; add a Dense layer")
    rows, consts = [], []
    width = input_width
    x_pos, next_pos = 0, input_width
    trains_before = False
    fuse = fused_loss([op for _, op in ops], loss)
    for i, (layer, op) in enumerate(ops):
        rec = np.zeros(P.N_FIELDS, dtype=np.int64)
        n_out = layer.output_shape[-1] if op.kind == P.DENSE else width
        rec[P.KIND], rec[P.N_IN], rec[P.N_OUT], rec[P.ACT] = op.kind, width, n_out, op.act
        rec[P.W_OFF], rec[P.B_OFF] = _offset(params, op.w), _offset(params, op.b)
        rec[P.S_OFF] = _offset(params, op.state[0]) if op.state else -1
        if op.state and any(_offset(params, v) != rec[P.S_OFF] + k * n_out for k, v in enumerate(op.state)):
            raise RuntimeError(f"layer {layer.name!r}: its state variables are not adjacent in the buffer")
        rec[P.X_POS] = x_pos
        if op.kind == P.DENSE:
            z_pos = next_pos
            next_pos += n_out
        elif op.kind == P.DROPOUT:
            z_pos = next_pos          # the mask
            next_pos += n_out
        elif op.kind == P.BATCHNORM:
            z_pos = next_pos          # statistics and scratch (kernels/cpu/batchnorm.py)
            next_pos += 5 * n_out
        else:
            z_pos = x_pos
        if op.kind in (P.DENSE, P.ACTIVATION) and op.act == LINEAR:
            a_pos = z_pos if op.kind == P.DENSE else x_pos
        else:
            a_pos = next_pos
            next_pos += n_out
        rec[P.Z_POS], rec[P.A_POS] = z_pos, a_pos
        flags = P.NEED_DX if trains_before else 0
        if fuse and i == len(ops) - 1:
            flags |= P.LOSS_FUSED
        if not layer.trainable:
            flags |= P.FROZEN
        rec[P.FLAGS] = flags
        rec[P.AUX] = len(consts)
        consts.extend(op.consts)
        rows.append(rec)
        trains_before = trains_before or bool(layer.trainable_weights)
        x_pos, width = a_pos, n_out
    regs = []
    for layer in layers:
        for var in layer.trainable_weights:
            if getattr(var, "regularizer", None) is not None:
                regs.append((_offset(params, var), var.size, len(consts)))
                consts.extend(var.regularizer.factors())
    prog = np.ascontiguousarray(np.stack(rows))
    consts = np.asarray(consts if consts else [0.0], dtype=np.float32)
    regs = np.array(regs, dtype=np.int64).reshape(-1, 3)
    return Program(prog, consts, next_pos, input_width, width, regs)
