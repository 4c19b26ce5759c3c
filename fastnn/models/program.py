"""Turns a model's graph into a compiled-loop program and a flat buffer.

``pack`` lays every weight of the model out in one float32 buffer (trainable
weights first, so the optimizer updates one prefix) and rebinds each
Variable to its view. ``compile_program`` writes the op table the kernels
read (layout in ``fastnn.kernels.program``): one row per layer call, in the
graph's order, each naming the workspace slots it reads and the slot it
writes (consecutive slots for an op of several outputs); a slot read by
several ops gets their gradients added.
"""
import math
import numbers
import warnings

import numpy as np

from .. import constraints
from ..kernels import cache as kernel_cache, kinds, prebuild
from ..kernels import program as P
from ..kernels.cpu.activations import SIGMOID, SOFTMAX


class Program:
    """Everything the compiled loops need that depends only on the model.

    prog: (n_ops, N_FIELDS) int64; ints: int64 lists the rows point into;
    consts: float32 constants (the loss weights at ``weight_at``); slots:
    total per-sample workspace width; ins: (inputs, 3) int64 [slot, width,
    first column] of each model input in the rows of X (a traced loss's
    targets: -1 - their first column in the dense targets Yf); in_width: X's
    columns; outputs: per model output (loss slot, slot, shape); out_width:
    the predictions' columns; regs: (n, 3) int64 weight penalties
    (``kernels.cpu.regularizers``); cons: (n, 6) int64 weight constraints
    (``kernels.cpu.constraints``); adds: (n, 3) int64 ``add_loss`` terms
    [slot, ADD_MEAN or ADD_SUM, 1 to add their gradient to what the loss
    stage wrote there] (``engine._added_losses``); chain: True when every op
    reads the op before it, and perhaps a sequence mask besides (what the CUDA engine runs)."""

    def __init__(self, prog, ints, consts, slots, ins, outputs, regs, weight_at, chain, cons=None, adds=None):
        self.prog, self.ints, self.consts, self.slots = prog, ints, consts, slots
        self.cons = np.zeros((0, 6), dtype=np.int64) if cons is None else cons
        self.adds = np.zeros((0, 3), dtype=np.int64) if adds is None else adds
        self.ins, self.outputs, self.regs, self.weight_at, self.chain = ins, outputs, regs, weight_at, chain
        self.in_width = int(ins[ins[:, 2] >= 0, 1].sum())     # a traced loss's targets come from Yf
        self.out_width = sum(math.prod(shape) for _, _, shape in outputs)

    def output_table(self, losses, metric_codes, weighted, sparse):
        """The loops' ``outs`` table and metric codes for one run.

        ``losses``: per output a ``losses.Loss`` or None (no loss: predict);
        ``metric_codes``: per output a list of compiled metric codes;
        ``weighted``: sample weights; ``sparse``: per output whether its
        targets are integer labels. Returns (outs, codes, n_sums)."""
        from ..kernels.cpu.batch_loss import loss_address
        single = len(self.outputs) == 1 and (losses[0] is None or float(self.consts[self.weight_at]) == 1.0)
        outs = np.zeros((len(self.outputs), P.O_FIELDS), dtype=np.int64)
        codes, col, y_off, l_off = [], 0, 0, 0
        n_sums = 2
        dense_width = sum(math.prod(shape) for (_, _, shape), s in zip(self.outputs, sparse) if not s)
        label_width = sum(1 for s in sparse if s)
        for o, ((loss_pos, pos, shape), loss, ms) in enumerate(zip(self.outputs, losses, metric_codes)):
            n = math.prod(shape)
            row = outs[o]
            fused = loss_pos != pos
            row[P.O_LOSS_POS], row[P.O_POS], row[P.O_N], row[P.O_COL] = loss_pos, pos, n, col
            row[P.O_WEIGHT] = self.weight_at + o
            row[P.O_M0], row[P.O_M1] = len(codes), len(codes) + len(ms)
            codes.extend(ms)
            if sparse[o]:
                row[P.O_SPARSE], row[P.O_Y_OFF], row[P.O_Y_STRIDE] = 1, l_off, label_width
                l_off += 1
            else:
                row[P.O_Y_OFF], row[P.O_Y_STRIDE] = y_off, dense_width
                y_off += n
            if not single:
                row[P.O_SUMS] = n_sums
                n_sums += 2 + len(ms)
            if loss is not None:
                row[P.O_LOSS] = loss_address(loss.code, 1 if loss.from_logits else 0, fused, weighted,
                                             np.asarray(ms, dtype=np.int64))
            col += n
        if single:
            n_sums = 2 + len(codes)
        return outs, np.array(codes, dtype=np.int64), n_sums


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
    off = (var.value.__array_interface__["data"][0] - params.__array_interface__["data"][0]) // 4
    if var.value.base is not params or not 0 <= off <= params.size - var.size:
        raise ValueError(f"Variable {var.name!r} is read by the model but is not one of its layers' weights "
                         "(create it with add_weight in a layer the model holds)")
    return off


def _fusable(op, loss):
    """True when ``op``'s softmax/sigmoid folds into ``loss`` as logits.

    As Keras 3 does, this also holds with ``from_logits=True``: the real
    logits are used (with a warning), not the probabilities."""
    if loss is None or op is None or op.kind not in (P.DENSE, P.ACTIVATION):
        return False
    fused = (op.act == SOFTMAX and loss.code in (P.CCE, P.SCCE)) or (op.act == SIGMOID and loss.code == P.BCE)
    if fused and op.kind == P.DENSE and op.rows != 1:
        return False
    if fused and loss.from_logits:
        warnings.warn(f"{loss.name} received from_logits=True, but the output is produced by a "
                      f"{'softmax' if op.act == SOFTMAX else 'sigmoid'} activation and thus does not represent "
                      "logits; the loss uses the pre-activation logits, as Keras does", stacklevel=5)
    return fused


def _traced_losses(inputs, nodes, outputs, losses):
    """Appends the ops of the losses written with keras.ops (``ops.loss``).

    Returns (nodes, targets, loss_slots): the graph's nodes with each traced
    loss's after them; per traced loss (its y_true tensor, the first column
    of its output's dense targets); {output index: the tensor its loss reads}."""
    from .functional import walk
    targets, loss_slots, col = [], {}, 0
    for o, (t, loss) in enumerate(zip(outputs, losses)):
        if getattr(loss, "graph_fn", None) is not None:
            y_true, slot = loss.trace(t)
            targets.append((y_true, col))
            loss_slots[o] = slot
            known = {id(n) for n in nodes}
            nodes += [n for n in walk([*inputs, y_true], [slot]) if id(n) not in known]
        if loss is None or loss.code != P.SCCE:     # dense targets: its columns in the loop's Yf
            col += t.sample_size
    return nodes, targets, loss_slots


def _added_loss_nodes(inputs, nodes, tensors):
    """``nodes`` with the calls that compute the ``add_loss`` terms ``tensors`` after them."""
    from .functional import walk
    known = {id(n) for n in nodes}
    for n in walk(list(inputs), list(tensors)):
        if id(n) not in known:
            known.add(id(n))
            nodes.append(n)
    return nodes


class _Buffer:
    """A workspace slot: per-sample ``pos`` and ``size``, the op row that
    writes it (None for a model input) and the rows that read it."""

    def __init__(self, pos, size, producer=None):
        self.pos, self.size, self.producer = pos, size, producer
        self.readers = []        # (row index, input index)
        self.needs_grad = False
        self.has_grad = False    # the backward pass writes its gradient (a reader or the loss does)


def _mask_shortcuts(nodes, outputs, added):
    """{id(node): ids tensor or None} for the ``not_equal(ids, 0)`` nodes whose output only serves
    as layers' masks (what Embedding(mask_zero=True) adds), and (None) the constants only they read:
    compiled as no op, so each reader takes the ids themselves as its mask (zero is a masked step
    either way), and a masked text model stays a chain of layers, which the CUDA engine runs."""
    kept = {id(t) for t in outputs} | {id(t) for t, _ in added}
    readers = {}        # id(tensor) -> [(node, read as a mask?)]
    for node in nodes:
        for k, t in enumerate(node.op_tensors):
            is_mask = node.mask is not None and node.layer.reads_mask and k == len(node.op_tensors) - 1
            readers.setdefault(id(t), []).append((node, is_mask))
    found = {}
    for node in nodes:
        layer, out = node.layer, node.outputs[0]
        args = getattr(layer, "call_args", None)
        if getattr(layer, "op_name", None) == "not_equal" and args is not None and len(node.outputs) == 1 \
                and isinstance(args[1], numbers.Real) and args[1] == 0 and id(out) not in kept \
                and readers.get(id(out)) and all(m for _, m in readers[id(out)]) \
                and args[0].sample_shape == out.sample_shape:
            found[id(node)] = args[0]
    for node in nodes:      # the constant 0 such a node compared with
        if not node.op_tensors and len(node.outputs) == 1 and id(node.outputs[0]) not in kept and \
                readers.get(id(node.outputs[0])) and all(id(r) in found for r, _ in readers[id(node.outputs[0])]):
            found[id(node)] = None
    return found


def compile_program(inputs, nodes, outputs, params, losses=None, loss_weights=None, added=()):
    """Op table for a built graph: ``inputs`` and ``outputs`` lists of
    KerasTensors, ``nodes`` the layer calls between them in an order where
    each comes after those it reads. ``losses`` (per output, or None) decide
    which softmax/sigmoid outputs fuse into their loss; ``loss_weights`` (per
    output) land in the constants; ``added``: the ``add_loss`` terms, (tensor
    of one value per sample, ``ops.graph.ADD_MEAN`` or ``ADD_SUM``)."""
    losses = list(losses) if losses is not None else [None] * len(outputs)
    nodes, targets, loss_slots = _traced_losses(inputs, list(nodes), outputs, losses)
    nodes = _added_loss_nodes(inputs, nodes, [t for t, _ in added])
    buffers = {}        # id(tensor) -> _Buffer
    pos = 0
    ins = []
    for t in inputs:
        if id(t) in buffers:
            raise ValueError("The same input tensor is given twice as a model input")
        buffers[id(t)] = _Buffer(pos, t.sample_size)
        ins.append((pos, t.sample_size, pos))
        pos += t.sample_size
    for t, col in targets:      # a traced loss's y_true: the loop copies the targets' columns there
        buffers[id(t)] = _Buffer(pos, t.sample_size)
        ins.append((pos, t.sample_size, -1 - col))
        pos += t.sample_size
    rows, ints, consts, ops = [], [], [], []
    masked = []         # per row: its last input is a sequence mask (token ids, no gradient)
    id_checks = []      # (slot, width, limit, layer name): model inputs that must hold token ids
    no_grad = set()     # (row, input index) of the masks ops read: the kernels write them no gradient
    shortcuts = _mask_shortcuts(nodes, outputs, added)
    for node in nodes:
        layer = node.layer
        if id(node) in shortcuts:
            if shortcuts[id(node)] is not None:
                buffers[id(node.outputs[0])] = buffers[id(shortcuts[id(node)])]
            continue
        srcs = [buffers.get(id(t)) for t in node.op_tensors]
        if any(s is None for s in srcs):
            raise ValueError(f"Layer {layer.name!r} reads a tensor that is not computed from the model's inputs")
        limit = getattr(layer, "input_ids_limit", None)
        if limit is not None and srcs[0].producer is None:
            id_checks.append((srcs[0].pos, srcs[0].size, limit(), layer.name))
        op = layer.op(node.input_shape)
        out = node.outputs[0]
        if op is None:      # a reshape: the output is the input's values
            buffers[id(out)] = srcs[0]
            continue
        kind = kinds.get(op.kind)
        rec = np.zeros(P.N_FIELDS, dtype=np.int64)
        # an op of several outputs writes them one after the other in its slot
        n_out = sum(t.sample_size for t in node.outputs)
        rec[P.KIND], rec[P.ACT], rec[P.ROWS] = op.kind, op.act, op.rows
        rec[P.N_OUT] = n_out // op.rows
        first = srcs[0] if srcs else _Buffer(0, 0)      # an op of no inputs (a parameter) reads nothing
        rec[P.N_IN] = first.size // op.rows
        rec[P.X_POS] = first.pos
        rec[P.W_OFF], rec[P.B_OFF] = _offset(params, op.w), _offset(params, op.b)
        rec[P.S_OFF] = _offset(params, op.state[0]) if op.state else -1
        if op.state and any(_offset(params, v) != rec[P.S_OFF] + sum(s.size for s in op.state[:k])
                            for k, v in enumerate(op.state)):
            raise RuntimeError(f"layer {layer.name!r}: its state variables are not adjacent in the buffer")
        rec[P.INS], rec[P.N_INS] = len(ints), len(srcs)
        for s in srcs:
            ints.extend((s.pos, s.size))
        rec[P.IAUX] = len(ints)
        ints.extend(op.ints)
        rec[P.AUX] = len(consts)
        consts.extend(op.consts)
        z_pos = first.pos
        if op.scratch:
            z_pos, pos = pos, pos + op.scratch
        if op.output_in_scratch:
            a_pos = z_pos
        else:
            a_pos, pos = pos, pos + n_out
        rec[P.Z_POS], rec[P.A_POS] = z_pos, a_pos
        if not layer.trainable:
            rec[P.FLAGS] |= P.FROZEN
        mode = node.kwargs.get("training")
        if mode is not None:     # the layer was called with training=True or False: that mode in every run
            rec[P.FLAGS] |= P.TRAIN_ON if mode else P.TRAIN_OFF
        i = len(rows)
        for k, s in enumerate(srcs):
            s.readers.append((i, k))
        if node.mask is not None and layer.reads_mask:     # its last input: no gradient flows into a mask
            no_grad.add((i, len(srcs) - 1))
        part = a_pos
        for t in node.outputs:
            buf = _Buffer(part, t.sample_size, producer=i)
            buf.needs_grad = bool(layer.trainable_weights) or any(s.needs_grad for s in srcs)
            buffers[id(t)] = buf
            part += t.sample_size
        rows.append(rec)
        masked.append(node.mask is not None and layer.reads_mask)
        ops.append((layer, op, kind, srcs, [buffers[id(t)] for t in node.outputs]))
    if not rows:
        raise ValueError("The model has no layer that computes anything; add a Dense layer")

    out_bufs = []
    for t in outputs:
        buf = buffers.get(id(t))
        if buf is None or buf.producer is None:
            raise ValueError("A model output must be computed by a layer from the model's inputs")
        if t._batch_reduction:
            raise ValueError("A model output is a reduction over the batch axis too (ops.mean or ops.sum with "
                             "axis=None); such a value can only be passed to add_loss")
        if any(buf is b for b in out_bufs):
            raise ValueError("The same tensor is given twice as a model output")
        if losses[len(out_bufs)] is not None and getattr(t, "_mask", None) is not None:
            raise NotImplementedError("A model output carries a mask (from Embedding(mask_zero=True) through layers "
                                      "that keep it); Keras would mask the loss there, which fastnn does not "
                                      "support yet. Pool or end the sequence (return_sequences=False) first")
        out_bufs.append(buf)

    # Backward order is the rows in reverse. A slot's gradient is written by
    # its first writer there (the loss, for a model output) and added by the others.
    # the slots the loss stage writes: each output's, or the slot its traced loss reads
    loss_bufs = [buffers[id(loss_slots[o])] if o in loss_slots else b for o, b in enumerate(out_bufs)]
    # the add_loss terms: the loop's loss stage writes their gradients too, before the backward pass
    adds = []
    for t, mode in added:
        buf = buffers[id(t)]
        adds.append((buf.pos, mode, int(any(buf is b for b in loss_bufs))))    # add to what is there
        loss_bufs.append(buf)
    for buf in {id(b): b for b in buffers.values()}.values():
        # the order the backward pass writes this slot's gradient in: rows in reverse, inputs in order
        writes = sorted(((i, k) for i, k in buf.readers if (i, k) not in no_grad and
                         any(s.needs_grad for s in ops[i][3])), key=lambda ik: (-ik[0], ik[1]))
        is_output = any(buf is b for b in loss_bufs)
        buf.has_grad = is_output or bool(writes)
        for n, (i, k) in enumerate(writes):
            rows[i][P.FLAGS] |= P.NEED_DX
            if n > 0 or is_output:
                rows[i][P.ACC] |= 1 << k
    # An op of several outputs hears which of them get a gradient (the others' stay unwritten).
    for i, (_, op, _, _, outs) in enumerate(ops):
        if op.reads_at is not None:
            ints[rows[i][P.IAUX] + op.reads_at] = sum(1 << k for k, b in enumerate(outs) if b.has_grad)
    # A layer called more than once adds its weight gradients after the first (backward) call.
    seen = set()
    for i in range(len(rows) - 1, -1, -1):
        layer, op, kind, _, _ = ops[i]
        key = id(op.w) if op.w is not None else id(op.b) if op.b is not None else id(layer)
        if key in seen and (op.w is not None or op.b is not None):
            if not kind.shareable:
                raise ValueError(f"Layer {layer.name!r} ({kind.name}) is called more than once; sharing its weights "
                                 "between calls is not supported")
            rows[i][P.FLAGS] |= P.W_ACC
        seen.add(key)

    weight_at = len(consts)
    weights = loss_weights if loss_weights is not None else [1.0] * len(outputs)
    consts.extend(float(w) for w in weights)
    out_specs = []
    for o, (t, buf, loss) in enumerate(zip(outputs, out_bufs, losses)):
        i = buf.producer
        loss_pos = buf.pos
        if o in loss_slots:
            loss_pos = buffers[id(loss_slots[o])].pos
        elif len(buf.readers) == 0 and _fusable(ops[i][1], loss):
            rows[i][P.FLAGS] |= P.LOSS_FUSED
            loss_pos = rows[i][P.Z_POS] if rows[i][P.KIND] == P.DENSE else rows[i][P.X_POS]
        out_specs.append((loss_pos, buf.pos, t.sample_shape))

    first = rows[0]
    if len(inputs) == 1 and not targets and first[P.KIND] == P.DENSE and first[P.ROWS] == 1 and first[P.X_POS] == 0 and \
            len(buffers[id(inputs[0])].readers) == 1:
        first[P.FLAGS] |= P.DIRECT_INPUT

    regs, cons, done = [], [], set()
    for layer, _, _, _, _ in ops:
        for var in layer.trainable_weights:
            if id(var) in done:         # a weight several ops read (a user layer's) is penalised once
                continue
            done.add(id(var))
            if getattr(var, "regularizer", None) is not None:
                regs.append((_offset(params, var), var.size, len(consts)))
                consts.extend(var.regularizer.factors())
            if getattr(var, "constraint", None) is not None:
                cons.append((_offset(params, var), *constraints.layout(var.constraint, var.shape),
                             var.constraint.code, len(consts)))
                consts.extend(var.constraint.numbers())
    # a chain: each op reads the one before it (and perhaps a mask that an earlier op wrote)
    chain = len(inputs) == 1 and all(r[P.N_INS] == 1 + m and (j == 0 or r[P.X_POS] == rows[j - 1][P.A_POS])
                                     for j, (r, m) in enumerate(zip(rows, masked))) \
        and out_bufs[0].producer == len(rows) - 1 and out_bufs[0].pos == rows[-1][P.A_POS] \
        and len(outputs) == 1 and all(r[P.ROWS] == 1 for r in rows)
    # The table is written and checked, so every function its ops call is known: on a first run a
    # compile worker takes some of them while this process compiles the others (``prebuild.share``).
    used = {kind.code: kind for _, _, kind, _, _ in ops}
    if prebuild.share([f for kind in used.values() for f in kind.functions()]):
        kernel_cache.announce_layer_compile()
    for rec, (_, _, kind, _, _) in zip(rows, ops):
        kind.link(rec, ints)
    prog = np.ascontiguousarray(np.stack(rows))
    ints = np.array(ints if ints else [0], dtype=np.int64)
    consts = np.asarray(consts if consts else [0.0], dtype=np.float32)
    regs = np.array(regs, dtype=np.int64).reshape(-1, 3)
    program = Program(prog, ints, consts, pos, np.array(ins, dtype=np.int64).reshape(-1, 3), out_specs, regs,
                      weight_at, chain and not adds, np.array(cons, dtype=np.int64).reshape(-1, 6),
                      np.array(adds, dtype=np.int64).reshape(-1, 3))
    program.id_checks = [(int(col), width, limit, name) for pos_, width, limit, name in id_checks
                         for slot, w_, col in program.ins if slot == pos_]
    return program


def check_ids(program, X):
    """Refuses, with a ValueError naming the layer, feature rows ``X`` (samples,
    features) float32 whose columns read by an Embedding are not whole
    numbers in [0, input_dim); run before the compiled loops see ``X``."""
    if not program.id_checks or getattr(program, "_ids_checked", None) is X:
        return      # an array source hands the loops the same X every epoch: checked once
    for col, width, limit, name in program.id_checks:
        ids = X[:, col:col + width]
        if ids.size == 0:
            continue
        low, high = ids.min(), ids.max()
        if low < 0 or high >= limit or not np.array_equal(ids, np.floor(ids)):
            bad = np.argwhere((ids < 0) | (ids >= limit) | (ids != np.floor(ids)))[0]
            raise ValueError(f"Layer {name!r} (Embedding with input_dim={limit}) got the token id "
                             f"{ids[bad[0], bad[1]]!r} at row {bad[0]}, position {bad[1]}; ids must be whole "
                             f"numbers in [0, {limit})")
    program._ids_checked = X
