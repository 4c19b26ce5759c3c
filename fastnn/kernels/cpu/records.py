"""The records the compiled loop takes: a few typed groups instead of dozens of arguments.

Each is a NamedTuple of arrays, numbers and function pointers, which Numba
passes as one typed argument (its fields read by name in compiled code):

- ``Net``: the model as the kernels see it, ``Program`` and parameters;
- ``Optim``: the optimizer's state and its compiled step functions;
- ``Data``: the rows a run reads;
- ``Work``: buffers sized for one batch, and what the run accumulates;
- ``LossFns``: a user's compiled loss (``sample_loss``) and the weight penalties;
- ``Parts``: the compiled parts the loop calls through pointers
  (``engine.training_parts`` / ``inference_parts``).
"""
from typing import Any, NamedTuple

import numpy as np


class Net(NamedTuple):
    """prog (ops, N_FIELDS) int64, ints int64, params float32 (the flat
    buffer), consts float32, ins (inputs, 3) int64, outs (outputs, O_FIELDS)
    int64, regs (n, 3) int64 weight penalties (see ``kernels.program``), adds
    (n, 3) int64 the ``add_loss`` terms (``models.program.Program.adds``; none by default)."""
    prog: Any
    ints: Any
    params: Any
    consts: Any
    ins: Any
    outs: Any
    regs: Any
    adds: Any = np.zeros((0, 3), dtype=np.int64)


class Optim(NamedTuple):
    """slots (k, n) float32, n_trainable, code, hp float32 (the step's
    numbers), bounds int64 (trainable arrays' offsets, for clipping), the
    step functions of ``optimizers.optimizer_step_functions``, and the weight
    constraints applied after each update: cons (n, 6) int64 and
    ``constraints.constrain_function``."""
    slots: Any
    n_trainable: Any
    code: Any
    hp: Any
    bounds: Any
    update_all: Any
    update: Any
    prepare: Any
    cons: Any
    constrain: Any


class Data(NamedTuple):
    """X (rows x input columns), Yf (rows x dense target columns) float32 and
    Yi (rows x label columns) int64, all flattened; sw (rows,) float32 sample
    weights or empty; ids int64 row order or empty (rows in order)."""
    X: Any
    Yf: Any
    Yi: Any
    sw: Any
    ids: Any


class Work(NamedTuple):
    """grads float32 (as params), ws/gs float32 workspaces of ``batch`` rows,
    yb/yl/wb a batch's targets, labels and weights, rows int64 (batch,) the
    data set rows of the batch being run, ab float32 [1, 0, 1, 1]
    (GEMM's alpha, beta to write, then to add), sums float64 (the running
    [loss, samples, metrics...]), out (rows, output columns) float32 or
    empty, metric_codes int64."""
    grads: Any
    ws: Any
    gs: Any
    yb: Any
    yl: Any
    wb: Any
    rows: Any
    ab: Any
    sums: Any
    out: Any
    metric_codes: Any


class LossFns(NamedTuple):
    """value, grad, consts: a CUSTOM loss (``sample_loss``); penalty:
    ``regularizers.penalty_function``."""
    value: Any
    grad: Any
    consts: Any
    penalty: Any


class Parts(NamedTuple):
    forward: Any
    backward: Any
    parallel: Any
    forward_block: Any
    activation_block: Any
    backward_block: Any
    acts: Any
