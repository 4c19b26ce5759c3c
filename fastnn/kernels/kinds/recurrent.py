"""Recurrent kinds: SimpleRNN, LSTM and GRU (Keras 3 maths), one direction or
two (Bidirectional), forward through time and backpropagation through time.

One sample of the op's input is a sequence of T steps of F features; the
layer has U units and a cell of G gate blocks (SimpleRNN 1, LSTM 4, GRU 3).
Keras 3's cells, with x_t the input step (after the dropout mask), h and c
the states (zero at the start), act / rec the activation and recurrent
activation, weights kernel W (F, G*U), recurrent kernel Wr (U, G*U), bias:

SimpleRNN  h = act(x W + b + h_prev Wr)
LSTM       [i f g o] = [rec rec act rec](x W + b + h_prev Wr)    (gate order i, f, c, o)
           c = f * c_prev + i * g,  h = o * act(c)
GRU        (reset_after=True; bias (2, 3U): input bias bx, recurrent bias br)
           [xz xr xh] = x W + bx,  [rz rr rh] = h_prev Wr + br
           z = rec(xz + rz),  r = rec(xr + rr),  hh = act(xh + r * rh)
           h = z * h_prev + (1 - z) * hh

Masking (the op has a second input: the token ids the Embedding read, T
per sample; id 0 is a masked step): a masked step keeps the states as they
were; its output is the carried h, or zeros with ``zero_output_for_mask``
(Keras's Bidirectional sets that when it returns sequences). go_backwards
reads the steps last to first and returns its outputs in that (processing)
order, as Keras does; the Bidirectional's backward direction writes them
back in input order.

Dropout (``dropout`` > 0, training only): one mask of F values per sample,
drawn per batch and applied to every step (Keras 3's implementation 2).

The op's integer constants at IAUX: [cell, T, F, U, act, rec_act,
return_sequences, go_backwards, directions, merge mode, weights per
direction, scratch per direction, use_bias, zero_output_for_mask];
its float constant at AUX: the dropout rate. Weights, per direction, one
after the other from W_OFF: W, Wr, then the bias (when used).

Workspace of one direction (per sample, so a batch of b rows has b times
each), at Z_POS + d * (scratch per direction); arrays are time-major, so a
batch's step s is one contiguous b-row block and the input projection, the
weight gradients and the input gradient are one matrix product each over
all T * b rows:
  XD  (T, b, F)      the input steps in processing order, dropout applied
  ZX  (T, b, G*U)    SimpleRNN: h; LSTM: [i f g o]; GRU: x W + bx, then [z r hh]
  GR  (T, b, 3U)     GRU only: h_prev Wr + br
  C   (T+1, b, U)    LSTM only: c after each step (C[0] = 0)
  H   (T+1, b, U)    h after each step (H[0] = 0)
  DM  (b, F)         the dropout mask (0 or 1 / (1 - rate))
  OUT (b, T_out, U)  Bidirectional only: this direction's output
The backward pass keeps the gradients of the same arrays at the same places
in ``gs`` (ZX: the gates' pre-activation gradients; GR: GRU's recurrent
ones; H and C: the states' gradients).

The three products over all T * b rows go through SGEMM; the small one each
step (b x U @ U x G*U) and the gate activations are written-out loops that
compile to SIMD code (see ``_step_product`` and ``_tanh`` for the measurements).
"""
import numpy as np
from numba import njit

from .. import program as P
from ..cpu.activations import LINEAR, RELU, SIGMOID, TANH
from ..cpu.blas import gemm
from . import KERNEL, input_slot, register

SIMPLE_RNN, LSTM, GRU = range(3)
CONCAT, SUM, MUL, AVE = range(4)
# Offsets of the integer constants at IAUX.
(I_CELL, I_T, I_F, I_U, I_ACT, I_REC_ACT, I_RETURN_SEQUENCES, I_GO_BACKWARDS, I_DIRECTIONS, I_MERGE,
 I_DIR_WEIGHTS, I_DIR_SCRATCH, I_USE_BIAS, I_ZERO_OUTPUT) = range(14)
N_INTS = 14
# Activations the cells take: their derivatives are functions of their outputs.
ACTIVATIONS = (TANH, SIGMOID, RELU, LINEAR)

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)


def gates(cell):
    return (1, 4, 3)[cell]


def scratch_per_direction(cell, t, f, u, bidirectional, return_sequences):
    """Per-sample workspace floats of one direction (the layout above)."""
    g = gates(cell)
    size = t * f + t * g * u + (t + 1) * u + f
    if cell == GRU:
        size += t * 3 * u
    if cell == LSTM:
        size += (t + 1) * u
    if bidirectional:
        size += (t if return_sequences else 1) * u
    return size


# Eigen's rational approximation of float32 tanh (TensorFlow's CPU tanh): a polynomial of degree 13
# over one of degree 6, clamped where tanh rounds to +-1; within 7 ulp of tanh. Unlike libm's tanh
# and exp it is plain arithmetic, so the loops over a row's gates compile to SIMD code: the gate
# activations were most of an LSTM step's time through libm (66 ns each, against 13 here, measured
# on a loaded 2-core machine).
_T_CLAMP = np.float32(7.90531110763549805)
_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13), np.float32(-2.76076847742355e-16)
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))


@njit(cache=True, inline="always", error_model="numpy")
def _tanh(x):
    x = min(max(x, -_T_CLAMP), _T_CLAMP)
    x2 = x * x
    p = ((((((x2 * _A13 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * x
    q = ((x2 * _B6 + _B4) * x2 + _B2) * x2 + _B0
    return p / q


@njit(cache=True, inline="always", error_model="numpy")
def _act(code, x):
    """The cell activations (ACTIVATIONS); sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    if code == TANH:
        return _tanh(x)
    if code == SIGMOID:
        return _HALF * _tanh(_HALF * x) + _HALF
    if code == RELU:
        return max(x, _ZERO)
    return x


# The hot loops index slices with their range's own counter: an index like ``base + j`` makes
# Numba check for negative indices (wraparound) on every access, which keeps LLVM from
# vectorizing the loop.
@njit(cache=True, inline="always")
def _activate(code, ws, lo, n):
    v = ws[lo:lo + n]
    for j in range(n):
        v[j] = _act(code, v[j])


@njit(cache=True, inline="always")
def _step_product(ws, h, params, wr, out, b, u, gu):
    """out (b, gu) += h (b, u) @ Wr (u, gu): one step's recurrent product. Written out rather than
    SGEMM: at these sizes (64 x 8 @ 8 x 32) a BLAS call cost 18 us, the loop a small fraction of it."""
    for r in range(b):
        o = ws[out + r * gu:out + (r + 1) * gu]
        hr = ws[h + r * u:h + (r + 1) * u]
        for k in range(u):
            hk = hr[k]
            w = params[wr + k * gu:wr + (k + 1) * gu]
            for j in range(gu):
                o[j] += hk * w[j]


@njit(cache=True, inline="always")
def _step_product_back(gs, g, wrt, dh, b, u, gu):
    """dh (b, u) += g (b, gu) @ Wr^T, with ``wrt`` = Wr^T (gu, u) contiguous."""
    for r in range(b):
        d = gs[dh + r * u:dh + (r + 1) * u]
        gr = gs[g + r * gu:g + (r + 1) * gu]
        for j in range(gu):
            gj = gr[j]
            w = wrt[j * u:(j + 1) * u]
            for k in range(u):
                d[k] += gj * w[k]


@njit(cache=True, inline="always")
def _derivative(code, y):
    """d act / d z from the activation's output y (the codes in ACTIVATIONS)."""
    if code == TANH:
        return _ONE - y * y
    if code == SIGMOID:
        return y * (_ONE - y)
    if code == RELU:
        return _ONE if y > _ZERO else _ZERO
    return _ONE


@njit(cache=True, inline="always")
def _regions(cell, t, f, u, b, base):
    """Block offsets in ws/gs of one direction's arrays for b rows: XD, ZX, GR, C, H, DM, OUT."""
    g = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
    xd = base
    zx = xd + b * t * f
    gr = zx + b * t * g * u
    c = gr + (b * t * 3 * u if cell == GRU else 0)
    h = c + (b * (t + 1) * u if cell == LSTM else 0)
    dm = h + b * (t + 1) * u
    out = dm + b * f
    return xd, zx, gr, c, h, dm, out


@njit(cache=True, inline="always")
def _masked(ws, ids, has_mask, r, t_in, t):
    """Whether row r's input step t_in is masked (its token id is 0)."""
    return has_mask and ws[ids + r * t + t_in] == _ZERO


@njit(**KERNEL)
def _direction_forward(ws, params, b, training, cell, t, f, u, act, rec, go_back, flip_out, ret_seq, zero_out,
                       use_bias, rate, x, ids, has_mask, w, base, out):
    """One direction over the b sequences at x (b, T, F); writes its output
    (b, T, U) or (b, U) at ``out`` (``flip_out``: sequence outputs in input order)."""
    g = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
    gu = g * u
    xd, zx, gr, c, h, dm, _ = _regions(cell, t, f, u, b, base)
    wr = w + f * gu
    bias = wr + u * gu
    drop = training and rate > _ZERO
    if drop:
        keep = _ONE / (_ONE - rate)
        for k in range(b * f):
            ws[dm + k] = keep if np.random.random() >= rate else _ZERO
    for s in range(t):
        t_in = t - 1 - s if go_back else s
        for r in range(b):
            src = x + (r * t + t_in) * f
            dst = xd + (s * b + r) * f
            for j in range(f):
                ws[dst + j] = ws[src + j] * ws[dm + r * f + j] if drop else ws[src + j]
    ab = np.array([_ONE, _ZERO], dtype=np.float32)
    gemm(False, False, t * b, gu, f, ab, ws, xd, f, params, w, gu, ws, zx, gu)
    if use_bias:
        for k in range(t * b):
            row = zx + k * gu
            for j in range(gu):
                ws[row + j] += params[bias + j]
    for k in range(b * u):
        ws[h + k] = _ZERO
        if cell == LSTM:
            ws[c + k] = _ZERO
    for s in range(t):
        t_in = t - 1 - s if go_back else s
        hp = h + s * b * u          # H[s]: the state before this step
        hn = hp + b * u             # H[s + 1]
        zs = zx + s * b * gu
        if cell == GRU:
            rs = gr + s * b * gu
            for r in range(b):
                for j in range(gu):
                    ws[rs + r * gu + j] = params[bias + gu + j] if use_bias else _ZERO
            if s > 0:
                _step_product(ws, hp, params, wr, rs, b, u, gu)
        elif s > 0:
            _step_product(ws, hp, params, wr, zs, b, u, gu)
        # every row is computed (branch-free loops vectorize); masked rows are put back below
        if cell == SIMPLE_RNN:
            for r in range(b):
                _activate(act, ws, zs + r * gu, u)
                for j in range(u):
                    ws[hn + r * u + j] = ws[zs + r * gu + j]
        elif cell == LSTM:
            cp, cn = c + s * b * u, c + (s + 1) * b * u
            for r in range(b):
                z = zs + r * gu
                _activate(rec, ws, z, 2 * u)
                _activate(act, ws, z + 2 * u, u)
                _activate(rec, ws, z + 3 * u, u)
                i_, f_ = ws[z:z + u], ws[z + u:z + 2 * u]
                g_, o_ = ws[z + 2 * u:z + 3 * u], ws[z + 3 * u:z + 4 * u]
                c_prev, c_new = ws[cp + r * u:cp + (r + 1) * u], ws[cn + r * u:cn + (r + 1) * u]
                h_new = ws[hn + r * u:hn + (r + 1) * u]
                for j in range(u):
                    cv = f_[j] * c_prev[j] + i_[j] * g_[j]
                    c_new[j] = cv
                    h_new[j] = o_[j] * _act(act, cv)
        else:
            rs = gr + s * b * gu
            for r in range(b):
                zr, rr = ws[zs + r * gu:zs + (r + 1) * gu], ws[rs + r * gu:rs + (r + 1) * gu]
                h_prev, h_new = ws[hp + r * u:hp + (r + 1) * u], ws[hn + r * u:hn + (r + 1) * u]
                for j in range(2 * u):
                    zr[j] = _act(rec, zr[j] + rr[j])
                for j in range(u):
                    hh = _act(act, zr[2 * u + j] + zr[u + j] * rr[2 * u + j])
                    zr[2 * u + j] = hh
                    h_new[j] = zr[j] * h_prev[j] + (_ONE - zr[j]) * hh
        if has_mask:
            for r in range(b):
                if _masked(ws, ids, has_mask, r, t_in, t):
                    for j in range(u):
                        ws[hn + r * u + j] = ws[hp + r * u + j]
                    if cell == LSTM:
                        cp = c + s * b * u + r * u
                        for j in range(u):
                            ws[cp + b * u + j] = ws[cp + j]
    if ret_seq:
        for s in range(t):
            t_in = t - 1 - s if go_back else s
            o = t_in if flip_out else s
            hs = h + (s + 1) * b * u
            for r in range(b):
                zero = zero_out and _masked(ws, ids, has_mask, r, t_in, t)
                dst = out + (r * t + o) * u
                for j in range(u):
                    ws[dst + j] = _ZERO if zero else ws[hs + r * u + j]
    else:
        last = h + t * b * u
        for k in range(b * u):
            ws[out + k] = ws[last + k]


@njit(**KERNEL)
def _direction_backward(ws, gs, params, grads, b, training, cell, t, f, u, act, rec, go_back, flip_out, ret_seq,
                        zero_out, use_bias, rate, x, ids, has_mask, w, base, out, w_acc, frozen, need_dx, dx_acc):
    """Backpropagation through time for one direction, from the gradient of
    its output at ``out`` in ``gs``: weight gradients into ``grads`` (added
    with ``w_acc``), the input's into gs at x (added with ``dx_acc``)."""
    g = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
    gu = g * u
    xd, zx, gr, c, h, dm, _ = _regions(cell, t, f, u, b, base)
    wr = w + f * gu
    bias = wr + u * gu
    drop = training and rate > _ZERO
    for k in range((t + 1) * b * u):
        gs[h + k] = _ZERO
        if cell == LSTM:
            gs[c + k] = _ZERO
    if ret_seq:
        for s in range(t):
            t_in = t - 1 - s if go_back else s
            o = t_in if flip_out else s
            hs = h + (s + 1) * b * u
            for r in range(b):
                if zero_out and _masked(ws, ids, has_mask, r, t_in, t):
                    continue
                src = out + (r * t + o) * u
                for j in range(u):
                    gs[hs + r * u + j] = gs[src + j]
    else:
        last = h + t * b * u
        for k in range(b * u):
            gs[last + k] = gs[out + k]
    ab = np.array([_ONE, _ZERO], dtype=np.float32)
    ab1 = np.array([_ONE, _ONE], dtype=np.float32)
    # the recurrent products read these gradients: GRU's own, the gates' for the others
    grec = gr if cell == GRU else zx
    wrt = np.empty(gu * u, dtype=np.float32)
    for k in range(u):
        for j in range(gu):
            wrt[j * u + k] = params[wr + k * gu + j]
    for s in range(t - 1, -1, -1):
        t_in = t - 1 - s if go_back else s
        hp = h + s * b * u
        hn = hp + b * u
        zs = zx + s * b * gu
        for r in range(b):
            dz = zs + r * gu
            if _masked(ws, ids, has_mask, r, t_in, t):
                for j in range(u):
                    gs[hp + r * u + j] += gs[hn + r * u + j]
                if cell == LSTM:
                    cp = c + s * b * u + r * u
                    for j in range(u):
                        gs[cp + j] += gs[cp + b * u + j]
                for j in range(gu):
                    gs[dz + j] = _ZERO
                    if cell == GRU:
                        gs[gr + s * b * gu + r * gu + j] = _ZERO
                continue
            if cell == SIMPLE_RNN:
                for j in range(u):
                    gs[dz + j] = gs[hn + r * u + j] * _derivative(act, ws[dz + j])
            elif cell == LSTM:
                cp = c + s * b * u + r * u
                gate, dgate = ws[dz:dz + gu], gs[dz:dz + gu]
                c_prev, c_new = ws[cp:cp + u], ws[cp + b * u:cp + b * u + u]
                dc_prev, dc_new = gs[cp:cp + u], gs[cp + b * u:cp + b * u + u]
                dh_new = gs[hn + r * u:hn + (r + 1) * u]
                for j in range(u):
                    i_, f_, g_, o_ = gate[j], gate[u + j], gate[2 * u + j], gate[3 * u + j]
                    ac = _act(act, c_new[j])
                    dh = dh_new[j]
                    dc = dc_new[j] + dh * o_ * _derivative(act, ac)
                    dgate[j] = dc * g_ * _derivative(rec, i_)
                    dgate[u + j] = dc * c_prev[j] * _derivative(rec, f_)
                    dgate[2 * u + j] = dc * i_ * _derivative(act, g_)
                    dgate[3 * u + j] = dh * ac * _derivative(rec, o_)
                    dc_prev[j] += dc * f_
            else:
                rr = gr + s * b * gu + r * gu
                for j in range(u):
                    z_, r_, hh = ws[dz + j], ws[dz + u + j], ws[dz + 2 * u + j]
                    dh = gs[hn + r * u + j]
                    d_z = dh * (ws[hp + r * u + j] - hh) * _derivative(rec, z_)
                    d_hh = dh * (_ONE - z_) * _derivative(act, hh)
                    d_r = d_hh * ws[rr + 2 * u + j] * _derivative(rec, r_)
                    gs[dz + j] = d_z
                    gs[dz + u + j] = d_r
                    gs[dz + 2 * u + j] = d_hh
                    gs[rr + j] = d_z
                    gs[rr + u + j] = d_r
                    gs[rr + 2 * u + j] = d_hh * r_
                    gs[hp + r * u + j] += dh * z_
        if s > 0:   # H[0] is the zero initial state: its gradient is not needed
            _step_product_back(gs, grec + s * b * gu, wrt, hp, b, u, gu)
    if not frozen:
        wab = ab1 if w_acc else ab
        gemm(True, False, f, gu, t * b, wab, ws, xd, f, gs, zx, gu, grads, w, gu)
        gemm(True, False, u, gu, t * b, wab, ws, h, u, gs, grec, gu, grads, wr, gu)
        if use_bias:
            nb = 2 * gu if cell == GRU else gu
            if not w_acc:
                for j in range(nb):
                    grads[bias + j] = _ZERO
            for k in range(t * b):
                for j in range(gu):
                    grads[bias + j] += gs[zx + k * gu + j]
                if cell == GRU:
                    for j in range(gu):
                        grads[bias + gu + j] += gs[gr + k * gu + j]
    if need_dx:
        gemm(False, True, t * b, f, gu, ab, gs, zx, gu, params, w, gu, gs, xd, f)
        for s in range(t):
            t_in = t - 1 - s if go_back else s
            for r in range(b):
                src = xd + (s * b + r) * f
                dst = x + (r * t + t_in) * f
                for j in range(f):
                    v = gs[src + j] * ws[dm + r * f + j] if drop else gs[src + j]
                    gs[dst + j] = gs[dst + j] + v if dx_acc else v


@njit(**KERNEL)
def recurrent_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    k = rec[P.IAUX]
    cell, t, f, u = ints[k + I_CELL], ints[k + I_T], ints[k + I_F], ints[k + I_U]
    ret_seq, go_back, dirs = ints[k + I_RETURN_SEQUENCES] != 0, ints[k + I_GO_BACKWARDS] != 0, ints[k + I_DIRECTIONS]
    zero_out, use_bias = ints[k + I_ZERO_OUTPUT] != 0, ints[k + I_USE_BIAS] != 0
    x_pos, _ = input_slot(rec, ints, 0)
    has_mask = rec[P.N_INS] > 1
    ids = 0
    if has_mask:
        ids_pos, _ = input_slot(rec, ints, 1)
        ids = b * ids_pos
    rate = consts[rec[P.AUX]]
    a = b * rec[P.A_POS]
    if dirs == 1:
        _direction_forward(ws, params, b, training, cell, t, f, u, ints[k + I_ACT], ints[k + I_REC_ACT], go_back,
                           False, ret_seq, zero_out, use_bias, rate, b * x_pos, ids, has_mask, rec[P.W_OFF],
                           b * rec[P.Z_POS], a)
        return
    n_w, n_s = ints[k + I_DIR_WEIGHTS], ints[k + I_DIR_SCRATCH]
    outs = np.empty(2, dtype=np.int64)
    for d in range(2):
        base = b * (rec[P.Z_POS] + d * n_s)
        outs[d] = _regions(cell, t, f, u, b, base)[6]
        _direction_forward(ws, params, b, training, cell, t, f, u, ints[k + I_ACT], ints[k + I_REC_ACT], d == 1,
                           d == 1, ret_seq, zero_out, use_bias, rate, b * x_pos, ids, has_mask,
                           rec[P.W_OFF] + d * n_w, base, outs[d])
    mode = ints[k + I_MERGE]
    rows = b * (t if ret_seq else 1)
    for r in range(rows):
        p, q = outs[0] + r * u, outs[1] + r * u
        if mode == CONCAT:
            for j in range(u):
                ws[a + r * 2 * u + j] = ws[p + j]
                ws[a + r * 2 * u + u + j] = ws[q + j]
        else:
            for j in range(u):
                if mode == SUM:
                    v = ws[p + j] + ws[q + j]
                elif mode == MUL:
                    v = ws[p + j] * ws[q + j]
                else:
                    v = (ws[p + j] + ws[q + j]) * _HALF
                ws[a + r * u + j] = v


@njit(**KERNEL)
def recurrent_backward(rec, ints, params, consts, grads, ws, gs, b, training):
    k = rec[P.IAUX]
    cell, t, f, u = ints[k + I_CELL], ints[k + I_T], ints[k + I_F], ints[k + I_U]
    ret_seq, go_back, dirs = ints[k + I_RETURN_SEQUENCES] != 0, ints[k + I_GO_BACKWARDS] != 0, ints[k + I_DIRECTIONS]
    zero_out, use_bias = ints[k + I_ZERO_OUTPUT] != 0, ints[k + I_USE_BIAS] != 0
    flags = rec[P.FLAGS]
    frozen, w_acc = (flags & P.FROZEN) != 0, (flags & P.W_ACC) != 0
    need_dx, acc = (flags & P.NEED_DX) != 0, (rec[P.ACC] & 1) != 0
    if frozen and not need_dx:
        return
    x_pos, _ = input_slot(rec, ints, 0)
    has_mask = rec[P.N_INS] > 1
    ids = 0
    if has_mask:
        ids_pos, _ = input_slot(rec, ints, 1)
        ids = b * ids_pos
    rate = consts[rec[P.AUX]]
    a = b * rec[P.A_POS]
    if dirs == 1:
        _direction_backward(ws, gs, params, grads, b, training, cell, t, f, u, ints[k + I_ACT], ints[k + I_REC_ACT],
                            go_back, False, ret_seq, zero_out, use_bias, rate, b * x_pos, ids, has_mask,
                            rec[P.W_OFF], b * rec[P.Z_POS], a, w_acc, frozen, need_dx, acc)
        return
    n_w, n_s = ints[k + I_DIR_WEIGHTS], ints[k + I_DIR_SCRATCH]
    mode = ints[k + I_MERGE]
    rows = b * (t if ret_seq else 1)
    outs = np.empty(2, dtype=np.int64)
    for d in range(2):
        outs[d] = _regions(cell, t, f, u, b, b * (rec[P.Z_POS] + d * n_s))[6]
    for r in range(rows):
        p, q = outs[0] + r * u, outs[1] + r * u
        for j in range(u):
            if mode == CONCAT:
                gs[p + j] = gs[a + r * 2 * u + j]
                gs[q + j] = gs[a + r * 2 * u + u + j]
            else:
                ga = gs[a + r * u + j]
                if mode == SUM:
                    gs[p + j], gs[q + j] = ga, ga
                elif mode == MUL:
                    gs[p + j], gs[q + j] = ga * ws[q + j], ga * ws[p + j]
                else:
                    gs[p + j], gs[q + j] = ga * _HALF, ga * _HALF
    for d in range(2):
        _direction_backward(ws, gs, params, grads, b, training, cell, t, f, u, ints[k + I_ACT], ints[k + I_REC_ACT],
                            d == 1, d == 1, ret_seq, zero_out, use_bias, rate, b * x_pos, ids, has_mask,
                            rec[P.W_OFF] + d * n_w, b * (rec[P.Z_POS] + d * n_s), outs[d], w_acc, frozen, need_dx,
                            acc or d == 1)


RECURRENT = register("Recurrent", recurrent_forward, recurrent_backward)
