"""Recurrent kinds: SimpleRNN, LSTM and GRU (Keras 3 maths), one direction or
two (Bidirectional), forward through time and backpropagation through time.

One sample of the op's input is a sequence of T steps of F features; the
layer has U units and a cell of G gate blocks (SimpleRNN 1, LSTM 4, GRU 3).
Keras 3's cells, with x_t the input step (after the dropout mask), h and c
the states (zero at the start, or the op's initial-state inputs), act / rec
the activation and recurrent activation, weights kernel W (F, G*U),
recurrent kernel Wr (U, G*U), bias:

SimpleRNN  h = act(x W + b + h_prev Wr)
LSTM       [i f g o] = [rec rec act rec](x W + b + h_prev Wr)    (gate order i, f, c, o)
           c = f * c_prev + i * g,  h = o * act(c)
GRU        reset_after=True (bias (2, 3U): input bias bx, recurrent bias br):
           [xz xr xh] = x W + bx,  [rz rr rh] = h_prev Wr + br
           z = rec(xz + rz),  r = rec(xr + rr),  hh = act(xh + r * rh)
           reset_after=False (bias (3U,): bx only): [rz rr] = h_prev Wr[:, :2U],
           z, r as above,  hh = act(xh + (r * h_prev) Wr[:, 2U:])
           h = z * h_prev + (1 - z) * hh

Masking (the op's last input, T values per sample, 0 for a masked step: an
Embedding's ``ids != 0`` or a call's mask=): a masked step keeps the states
as they were; its output is the previous step's output (the carried h, but
zeros before the row's first unmasked step: Keras's outputs start from zeros
even where the states start from given ones), or zeros with
``zero_output_for_mask`` (Keras's Bidirectional sets that when it returns
sequences). A layer given initial states reads a mask only when its call
gives one: Keras 3 fills in none for a call of several tensors.
go_backwards reads the steps last to first and returns its outputs in that
(processing) order, as Keras does; the Bidirectional's backward direction
writes them back in input order.

Initial states (``initial_state=``): inputs 1.. of the op, U values per
sample each: h (and c for an LSTM), the forward direction's then the
backward's. Their gradients are the states' gradients before the first step.

Outputs, one after the other in the op's slot, each a block of b rows (so
each is a slot of its own for the layers that read it): the sequence
output(s) (two, one per direction, with a Bidirectional's merge_mode=None),
then with ``return_state`` each direction's final h (and c). The model builder writes
at I_READS which of these outputs anything reads: the backward pass takes
the others' gradients as zero.

Dropout (training only), Keras 3's two implementations: ``dropout`` > 0
alone drops input features with one mask of F values per sample, the same
at every step (implementation 2). ``recurrent_dropout`` > 0 (implementation
1) also drops the recurrent input h_prev with one mask of U values per gate
block and sample, and the input dropout then takes one mask per gate block
too: gate block k reads x * mask_x[k] and h_prev * mask_h[k]. The masks are
drawn once per batch and kept for every step.

The op's integer constants at IAUX (offsets I_*); its float constants at
AUX: the dropout and recurrent dropout rates. Weights, per direction, one
after the other from W_OFF: W, Wr, then the bias (when used).

Workspace of one direction (per sample, so a batch of b rows has b times
each), at Z_POS + d * (scratch per direction); arrays are time-major, so a
batch's step s is one contiguous b-row block and the input projection, the
weight gradients and the input gradient are one matrix product per input
block over all T * b rows (``regions`` computes the offsets):
  XD  (T, b, X*F)    the input steps in processing order, dropout applied; X = G
                     blocks (one per gate) with per-gate input masks, else 1
  ZX  (T, b, G*U)    SimpleRNN: h; LSTM: [i f g o]; GRU: x W + bx, then [z r hh]
  GR  (T, b, 3U)     GRU only: the recurrent products [rz rr rh]
  C   (T+1, b, U)    LSTM only: c after each step (C[0]: the initial c)
  H   (T+1, b, U)    h after each step (H[0]: the initial h)
  DM  (b, X*F)       the input dropout masks (0 or 1 / (1 - rate))
  OUT (b, T_out, U)  Bidirectional only: this direction's output
  HR  (T, b, G*U)    per gate block, what multiplies its columns of Wr: h_prev times
                     its recurrent mask (and for GRU's hh with reset_after=False,
                     times r); only with recurrent dropout or reset_after=False
  RM  (b, G*U)       the recurrent dropout masks; only with recurrent dropout
The backward pass keeps the gradients of the same arrays at the same places
in ``gs`` (ZX: the gates' pre-activation gradients; GR: GRU's recurrent
ones; H and C: the states' gradients).

Each cell is a kind of its own (``KINDS``): the op's functions are shared, and they call the cell's
own direction functions (``_directions``: the cell a constant there, so Numba compiles only that
cell's code, in about a third of the time the three cells' together took) through the addresses the
program builder writes at I_FORWARD_FN and I_BACKWARD_FN.

The products over all T * b rows go through SGEMM; the small one each step
(b x U @ U x G*U) and the gate activations are written-out loops that
compile to SIMD code (see ``_block_product`` and ``_tanh`` for the measurements).
``kernels/cuda/recurrent.py`` runs the same maths over the same layout on the GPU.
"""
import numpy as np
from numba import njit, types

from .. import program as P
from ..cpu.activations import LINEAR, RELU, SIGMOID, TANH
from ..cpu.blas import gemm
from ..cpu.dropout_masks import draw_mask
from ..cpu.pointers import call, pointer_from_address
from . import KERNEL, input_slot, register

SIMPLE_RNN, LSTM, GRU = range(3)
CONCAT, SUM, MUL, AVE, NO_MERGE = range(5)
# Offsets of the integer constants at IAUX: the addresses of the op's cell's direction functions
# (written when the program is linked: ``kinds.Kind.link``), then the layer's numbers.
(I_FORWARD_FN, I_BACKWARD_FN, I_CELL, I_T, I_F, I_U, I_ACT, I_REC_ACT, I_RETURN_SEQUENCES, I_GO_BACKWARDS,
 I_DIRECTIONS, I_MERGE, I_DIR_WEIGHTS, I_DIR_SCRATCH, I_USE_BIAS, I_ZERO_OUTPUT, I_RESET_AFTER, I_X_BLOCKS,
 I_H_SEPARATE, I_REC_MASK, I_RETURN_STATE, I_INITIAL_STATE, I_READS) = range(23)
N_INTS = 23
# I_X_BLOCKS: input blocks X (G with per-gate input dropout masks, else 1); I_H_SEPARATE: the HR array
# is kept (recurrent dropout or GRU reset_after=False); I_REC_MASK: the RM masks are kept (recurrent
# dropout); I_INITIAL_STATE: the op reads initial states; I_READS: bit k set when output k is read.
# Activations the cells take: their derivatives are functions of their outputs.
ACTIVATIONS = (TANH, SIGMOID, RELU, LINEAR)

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)


def gates(cell):
    return (1, 4, 3)[cell]


def n_states(cell):
    """States per direction: h (and c for an LSTM)."""
    return 2 if cell == LSTM else 1


def _layout(c, b, base):
    """Offsets in ws/gs of one direction's arrays for b rows, from the op's integer constants ``c``:
    XD, ZX, GR, C, H, DM, OUT, HR, RM, and the end."""
    cell, t, f, u = c[I_CELL], c[I_T], c[I_F], c[I_U]
    gu = (1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)) * u
    t_out = t if c[I_RETURN_SEQUENCES] != 0 else 1
    xd = base
    zx = xd + b * t * c[I_X_BLOCKS] * f
    gr = zx + b * t * gu
    cs = gr + (b * t * gu if cell == GRU else 0)
    h = cs + (b * (t + 1) * u if cell == LSTM else 0)
    dm = h + b * (t + 1) * u
    out = dm + b * c[I_X_BLOCKS] * f
    hr = out + (b * t_out * u if c[I_DIRECTIONS] == 2 else 0)
    rm = hr + (b * t * gu if c[I_H_SEPARATE] != 0 else 0)
    end = rm + (b * gu if c[I_REC_MASK] != 0 else 0)
    return xd, zx, gr, cs, h, dm, out, hr, rm, end


_regions = njit(cache=True, inline="always")(_layout)


def scratch_per_direction(ints):
    """Per-sample workspace floats of one direction (the layout above) for the op's integer constants."""
    return _layout(ints, 1, 0)[-1]


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
@njit(**KERNEL)
def _activate(code, ws, lo, n):
    v = ws[lo:lo + n]
    for j in range(n):
        v[j] = _act(code, v[j])


@njit(**KERNEL)
def _block_product(ws, a, lda, params, wb, ldw, out, ldo, b, u, n):
    """out (b, n) += A (b, u) @ Wr[:, block] (u, n), rows of A every ``lda``, of Wr every ``ldw``, of out
    every ``ldo``: one step's recurrent product. Written out rather than SGEMM: at these sizes
    (64 x 8 @ 8 x 32) a BLAS call cost 18 us, the loop a small fraction of it."""
    for r in range(b):
        o = ws[out + r * ldo:out + r * ldo + n]
        hr = ws[a + r * lda:a + r * lda + u]
        for k in range(u):
            hk = hr[k]
            w = params[wb + k * ldw:wb + k * ldw + n]
            for j in range(n):
                o[j] += hk * w[j]


@njit(**KERNEL)
def _block_product_back(gs, g, ldg, wrt, w0, dh, b, u, n, ws, mask, use_mask, tmp):
    """dh (b, u) += (G (b, n) @ Wr[:, w0:w0 + n]^T) * mask, with ``wrt`` = Wr^T (G*U, u) contiguous, G's
    rows every ``ldg`` and the mask's (recurrent dropout, when ``use_mask``) every ``ldg`` from ``mask``."""
    for r in range(b):
        d = gs[dh + r * u:dh + (r + 1) * u]
        gr = gs[g + r * ldg:g + r * ldg + n]
        acc = tmp if use_mask else d     # unmasked: straight into dh, the common case's loop
        if use_mask:
            for k in range(u):
                tmp[k] = _ZERO
        for j in range(n):
            gj = gr[j]
            w = wrt[(w0 + j) * u:(w0 + j + 1) * u]
            for k in range(u):
                acc[k] += gj * w[k]
        if use_mask:
            m = ws[mask + r * ldg:mask + r * ldg + u]
            for k in range(u):
                d[k] += tmp[k] * m[k]


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
def _masked(ws, ids, has_mask, r, t_in, t):
    """Whether row r's input step t_in is masked (its token id is 0)."""
    return has_mask and ws[ids + r * t + t_in] == _ZERO


@njit(**KERNEL)
def _first_unmasked(ws, ids, has_mask, r, t, go_back):
    """The processing step of row r's first unmasked input step (t when every step is masked)."""
    for s in range(t):
        if not _masked(ws, ids, has_mask, r, t - 1 - s if go_back else s, t):
            return s
    return t


def _directions(cell, name):
    """The forward and backward functions of one direction of a layer of ``cell`` (SIMPLE_RNN, LSTM,
    GRU), signatures DIRECTION_FORWARD_SIG and DIRECTION_BACKWARD_SIG, which the op's functions
    call through the addresses at I_FORWARD_FN and I_BACKWARD_FN. The cell is a constant of each
    closure (Numba's cache keys a closure by the values it captures), so Numba prunes the other
    cells' branches before it types anything: a model compiles only its own cells' code. They are
    named ``direction_forward_<name>`` and ``direction_backward_<name>``, module-level names below,
    so that a compile worker finds them (``prebuild.share``) and caches keep them apart."""
    def direction_forward(ws, params, b, training, c, go_back, flip_out, rate, rec_rate, x, ids, has_mask,
                           init_h, init_c, w, base, out, out_stride, st_h, st_c):
        """One direction over the b sequences at x (b, T, F), ``c`` the op's integer constants. Writes its
        output, (T, U) or (U,) per sample, at ``out`` (rows every ``out_stride``; ``flip_out``: sequence
        outputs in input order) and, with ``st_h`` >= 0, its final h (b, U) at ``st_h`` (and an LSTM's c
        at ``st_c``). ``init_h``/``init_c``: the initial states' positions, or -1 for zeros."""
        t, f, u = c[I_T], c[I_F], c[I_U]
        act, rec, ret_seq, zero_out = c[I_ACT], c[I_REC_ACT], c[I_RETURN_SEQUENCES] != 0, c[I_ZERO_OUTPUT] != 0
        use_bias, reset_after, sep_h = c[I_USE_BIAS] != 0, c[I_RESET_AFTER] != 0, c[I_H_SEPARATE] != 0
        g = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
        gu, nx = g * u, c[I_X_BLOCKS]
        xw, bw = nx * f, gu // nx          # input row width, gate columns per input block
        xd, zx, gr, cs, h, dm, _, hr, rm, _ = _regions(c, b, base)
        wr = w + f * gu
        bias = wr + u * gu
        drop = training and rate > _ZERO
        rdrop = training and rec_rate > _ZERO and c[I_REC_MASK] != 0
        has_init = init_h >= 0
        if drop:
            draw_mask(ws[dm:dm + b * xw], rate)
        if rdrop:
            draw_mask(ws[rm:rm + b * gu], rec_rate)
        for s in range(t):
            t_in = t - 1 - s if go_back else s
            for r in range(b):
                src = x + (r * t + t_in) * f
                dst = xd + (s * b + r) * xw
                for k in range(nx):
                    for j in range(f):
                        ws[dst + k * f + j] = ws[src + j] * ws[dm + r * xw + k * f + j] if drop else ws[src + j]
        ab = np.array([_ONE, _ZERO], dtype=np.float32)
        for k in range(nx):
            gemm(False, False, t * b, bw, f, ab, ws, xd + k * f, xw, params, w + k * bw, gu, ws, zx + k * bw, gu)
        if use_bias:
            for k in range(t * b):
                row = zx + k * gu
                for j in range(gu):
                    ws[row + j] += params[bias + j]
        for k in range(b * u):
            ws[h + k] = ws[init_h + k] if has_init else _ZERO
            if cell == LSTM:
                ws[cs + k] = ws[init_c + k] if has_init else _ZERO
        # GRU with reset_after=False multiplies its hh block's recurrent input by r: done per row below
        n_blocks = 2 if cell == GRU and not reset_after else g
        for s in range(t):
            t_in = t - 1 - s if go_back else s
            hp = h + s * b * u          # H[s]: the state before this step
            hn = hp + b * u             # H[s + 1]
            zs = zx + s * b * gu
            hrs = hr + s * b * gu
            target = gr + s * b * gu if cell == GRU else zs
            if cell == GRU:
                for r in range(b):
                    for j in range(gu):
                        ws[target + r * gu + j] = params[bias + gu + j] if use_bias and reset_after else _ZERO
            if sep_h:
                for r in range(b):
                    for k in range(g):
                        for j in range(u):
                            m = ws[rm + r * gu + k * u + j] if rdrop else _ONE
                            ws[hrs + r * gu + k * u + j] = ws[hp + r * u + j] * m
                if s > 0 or has_init:
                    for k in range(n_blocks):
                        _block_product(ws, hrs + k * u, gu, params, wr + k * u, gu, target + k * u, gu, b, u, u)
            elif s > 0 or has_init:
                _block_product(ws, hp, u, params, wr, gu, target, gu, b, u, gu)
            # every row is computed (branch-free loops vectorize); masked rows are put back below
            if cell == SIMPLE_RNN:
                for r in range(b):
                    _activate(act, ws, zs + r * gu, u)
                    for j in range(u):
                        ws[hn + r * u + j] = ws[zs + r * gu + j]
            elif cell == LSTM:
                cp, cn = cs + s * b * u, cs + (s + 1) * b * u
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
                for r in range(b):
                    zr = ws[zs + r * gu:zs + (r + 1) * gu]
                    rr = ws[target + r * gu:target + (r + 1) * gu]
                    h_prev, h_new = ws[hp + r * u:hp + (r + 1) * u], ws[hn + r * u:hn + (r + 1) * u]
                    for j in range(2 * u):
                        zr[j] = _act(rec, zr[j] + rr[j])
                    if not reset_after:    # rh = (r * h_prev) Wr[:, 2U:]
                        hh_in = ws[hrs + r * gu + 2 * u:hrs + (r + 1) * gu]
                        for j in range(u):
                            hh_in[j] *= zr[u + j]
                        for k in range(u):
                            hk = hh_in[k]
                            wk = params[wr + k * gu + 2 * u:wr + (k + 1) * gu]
                            for j in range(u):
                                rr[2 * u + j] += hk * wk[j]
                        for j in range(u):
                            zr[2 * u + j] = _act(act, zr[2 * u + j] + rr[2 * u + j])
                    else:
                        for j in range(u):
                            zr[2 * u + j] = _act(act, zr[2 * u + j] + zr[u + j] * rr[2 * u + j])
                    for j in range(u):
                        h_new[j] = zr[j] * h_prev[j] + (_ONE - zr[j]) * zr[2 * u + j]
            if has_mask:
                for r in range(b):
                    if _masked(ws, ids, has_mask, r, t_in, t):
                        for j in range(u):
                            ws[hn + r * u + j] = ws[hp + r * u + j]
                        if cell == LSTM:
                            cp = cs + s * b * u + r * u
                            for j in range(u):
                                ws[cp + b * u + j] = ws[cp + j]
        # Keras outputs at a masked step the previous step's output, zeros before the first unmasked
        # step: the carried h, except where given initial states are carried over leading masked steps.
        if ret_seq:
            for r in range(b):
                lead = _first_unmasked(ws, ids, has_mask, r, t, go_back) if has_init else 0
                for s in range(t):
                    t_in = t - 1 - s if go_back else s
                    o = t_in if flip_out else s
                    zero = s < lead or (zero_out and _masked(ws, ids, has_mask, r, t_in, t))
                    dst, hs = out + r * out_stride + o * u, h + (s + 1) * b * u + r * u
                    for j in range(u):
                        ws[dst + j] = _ZERO if zero else ws[hs + j]
        else:
            last = h + t * b * u
            for r in range(b):
                zero = has_init and _first_unmasked(ws, ids, has_mask, r, t, go_back) == t
                for j in range(u):
                    ws[out + r * out_stride + j] = _ZERO if zero else ws[last + r * u + j]
        if st_h >= 0:
            for k in range(b * u):
                ws[st_h + k] = ws[h + t * b * u + k]
                if cell == LSTM:
                    ws[st_c + k] = ws[cs + t * b * u + k]

    def direction_backward(ws, gs, params, grads, b, training, c, go_back, flip_out, rate, rec_rate, x, ids,
                            has_mask, init_h, init_c, acc_h, acc_c, w, base, out, out_stride, st_h, st_c, w_acc, frozen,
                            need_dx, dx_acc):
        """Backpropagation through time for one direction, from the gradients of its outputs at ``out``,
        ``st_h`` and ``st_c`` in ``gs`` (laid out as ``direction_forward`` wrote them): weight gradients into
        ``grads`` (added with ``w_acc``), the input's into gs at x (added with ``dx_acc``), the initial
        states' at ``init_h``/``init_c`` (added with ``acc_h``/``acc_c``)."""
        t, f, u = c[I_T], c[I_F], c[I_U]
        act, rec, ret_seq, zero_out = c[I_ACT], c[I_REC_ACT], c[I_RETURN_SEQUENCES] != 0, c[I_ZERO_OUTPUT] != 0
        use_bias, reset_after, sep_h = c[I_USE_BIAS] != 0, c[I_RESET_AFTER] != 0, c[I_H_SEPARATE] != 0
        g = 1 if cell == SIMPLE_RNN else (4 if cell == LSTM else 3)
        gu, nx = g * u, c[I_X_BLOCKS]
        xw, bw = nx * f, gu // nx
        xd, zx, gr, cs, h, dm, _, hr, rm, _ = _regions(c, b, base)
        wr = w + f * gu
        bias = wr + u * gu
        drop = training and rate > _ZERO
        rdrop = training and rec_rate > _ZERO and c[I_REC_MASK] != 0
        has_init = init_h >= 0
        for k in range((t + 1) * b * u):
            gs[h + k] = _ZERO
            if cell == LSTM:
                gs[cs + k] = _ZERO
        if ret_seq:         # the outputs the forward pass wrote as zeros pass no gradient on
            for r in range(b):
                lead = _first_unmasked(ws, ids, has_mask, r, t, go_back) if has_init else 0
                for s in range(t):
                    t_in = t - 1 - s if go_back else s
                    o = t_in if flip_out else s
                    if s < lead or (zero_out and _masked(ws, ids, has_mask, r, t_in, t)):
                        continue
                    src, hs = out + r * out_stride + o * u, h + (s + 1) * b * u + r * u
                    for j in range(u):
                        gs[hs + j] = gs[src + j]
        else:
            last = h + t * b * u
            for r in range(b):
                if has_init and _first_unmasked(ws, ids, has_mask, r, t, go_back) == t:
                    continue
                for j in range(u):
                    gs[last + r * u + j] = gs[out + r * out_stride + j]
        if st_h >= 0:
            for k in range(b * u):
                gs[h + t * b * u + k] += gs[st_h + k]
                if cell == LSTM:
                    gs[cs + t * b * u + k] += gs[st_c + k]
        ab = np.array([_ONE, _ZERO], dtype=np.float32)
        ab1 = np.array([_ONE, _ONE], dtype=np.float32)
        # the recurrent products read these gradients: GRU's own, the gates' for the others
        grec = gr if cell == GRU else zx
        wrt = np.empty(gu * u, dtype=np.float32)
        for k in range(u):
            for j in range(gu):
                wrt[j * u + k] = params[wr + k * gu + j]
        tmp = np.empty(u, dtype=np.float32)
        n_blocks = 2 if cell == GRU and not reset_after else g
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
                        cp = cs + s * b * u + r * u
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
                    cp = cs + s * b * u + r * u
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
                        d_hh = dh * (_ONE - z_) * _derivative(act, hh)
                        gs[dz + j] = dh * (ws[hp + r * u + j] - hh) * _derivative(rec, z_)
                        gs[rr + j] = gs[dz + j]
                        gs[dz + 2 * u + j] = d_hh
                        gs[hp + r * u + j] += dh * z_
                        if reset_after:
                            d_r = d_hh * ws[rr + 2 * u + j] * _derivative(rec, r_)
                            gs[dz + u + j] = d_r
                            gs[rr + u + j] = d_r
                            gs[rr + 2 * u + j] = d_hh * r_
                        else:
                            gs[rr + 2 * u + j] = d_hh
                    if not reset_after:
                        # rh = (r * h_prev * mask) Wr[:, 2U:]: its input's gradient goes to r and to h_prev
                        for k in range(u):
                            tmp[k] = _ZERO
                        for j in range(u):
                            gj = gs[rr + 2 * u + j]
                            wj = wrt[(2 * u + j) * u:(2 * u + j + 1) * u]
                            for k in range(u):
                                tmp[k] += gj * wj[k]
                        for k in range(u):
                            r_ = ws[dz + u + k]
                            m = ws[rm + r * gu + 2 * u + k] if rdrop else _ONE
                            d_r = tmp[k] * ws[hp + r * u + k] * m * _derivative(rec, r_)
                            gs[dz + u + k] = d_r
                            gs[rr + u + k] = d_r
                            gs[hp + r * u + k] += tmp[k] * r_ * m
            if s > 0 or has_init:   # without initial states H[0] is zero: its gradient is not needed
                if sep_h:
                    for k in range(n_blocks):
                        _block_product_back(gs, grec + s * b * gu + k * u, gu, wrt, k * u, hp, b, u, u, ws, rm + k * u,
                                            rdrop, tmp)
                else:
                    _block_product_back(gs, grec + s * b * gu, gu, wrt, 0, hp, b, u, gu, ws, rm, False, tmp)
        if not frozen:
            wab = ab1 if w_acc else ab
            for k in range(nx):
                gemm(True, False, f, bw, t * b, wab, ws, xd + k * f, xw, gs, zx + k * bw, gu, grads, w + k * bw, gu)
            if sep_h:
                for k in range(g):
                    gemm(True, False, u, u, t * b, wab, ws, hr + k * u, gu, gs, grec + k * u, gu, grads, wr + k * u, gu)
            else:
                gemm(True, False, u, gu, t * b, wab, ws, h, u, gs, grec, gu, grads, wr, gu)
            if use_bias:
                rec_bias = cell == GRU and reset_after
                nb = 2 * gu if rec_bias else gu
                if not w_acc:
                    for j in range(nb):
                        grads[bias + j] = _ZERO
                db, db_rec = grads[bias:bias + gu], grads[bias + gu:bias + nb]     # slices: the loops vectorise
                for k in range(t * b):
                    g_in = gs[zx + k * gu:zx + (k + 1) * gu]
                    for j in range(gu):
                        db[j] += g_in[j]
                    if rec_bias:
                        g_rec = gs[gr + k * gu:gr + (k + 1) * gu]
                        for j in range(gu):
                            db_rec[j] += g_rec[j]
        if need_dx:
            for k in range(nx):
                gemm(False, True, t * b, f, bw, ab, gs, zx + k * bw, gu, params, w + k * bw, gu, gs, xd + k * f, xw)
            for s in range(t):
                t_in = t - 1 - s if go_back else s
                for r in range(b):
                    src = xd + (s * b + r) * xw
                    dst = x + (r * t + t_in) * f
                    for j in range(f):
                        v = _ZERO
                        for k in range(nx):
                            v += gs[src + k * f + j] * ws[dm + r * xw + k * f + j] if drop else gs[src + k * f + j]
                        gs[dst + j] = gs[dst + j] + v if dx_acc else v
            if has_init:
                for k in range(b * u):
                    gs[init_h + k] = gs[init_h + k] + gs[h + k] if acc_h else gs[h + k]
                    if cell == LSTM:
                        gs[init_c + k] = gs[init_c + k] + gs[cs + k] if acc_c else gs[cs + k]

    made = []
    for fn in (direction_forward, direction_backward):
        fn.__qualname__ = fn.__name__ = f"{fn.__name__}_{name}"
        made.append(njit(**KERNEL)(fn))
    return tuple(made)


direction_forward_simple_rnn, direction_backward_simple_rnn = _directions(SIMPLE_RNN, "simple_rnn")
direction_forward_lstm, direction_backward_lstm = _directions(LSTM, "lstm")
direction_forward_gru, direction_backward_gru = _directions(GRU, "gru")


@njit(cache=True, inline="always")
def _state_inputs(rec, ints, c, b, d):
    """ws positions of direction d's initial h and c inputs (-1: none), and whether their gradients add."""
    if c[I_INITIAL_STATE] == 0:
        return -1, -1, False, False
    ns = 2 if c[I_CELL] == LSTM else 1
    k = 1 + d * ns
    init_h = b * input_slot(rec, ints, k)[0]
    init_c = b * input_slot(rec, ints, k + 1)[0] if ns == 2 else -1
    acc = rec[P.ACC]
    return init_h, init_c, (acc >> k) & 1 != 0, ns == 2 and (acc >> (k + 1)) & 1 != 0


@njit(cache=True, inline="always")
def _geometry(rec, ints, b):
    """(the op's integer constants, token-id position, has_mask, per-sample size of its sequence
    output(s), steps of each)."""
    k = rec[P.IAUX]
    c = ints[k:k + N_INTS]
    cell, t, u, dirs = c[I_CELL], c[I_T], c[I_U], c[I_DIRECTIONS]
    n_in = 1 + (dirs * (2 if cell == LSTM else 1) if c[I_INITIAL_STATE] != 0 else 0)
    has_mask = rec[P.N_INS] > n_in
    ids = b * input_slot(rec, ints, n_in)[0] if has_mask else 0
    t_out = t if c[I_RETURN_SEQUENCES] != 0 else 1
    seq = t_out * u * (2 if dirs == 2 and (c[I_MERGE] == CONCAT or c[I_MERGE] == NO_MERGE) else 1)
    return c, ids, has_mask, seq, t_out


# The op's slot holds its outputs one after the other, each a block of b rows (a slot of its own for
# the layers that read it): the sequence output(s), then the states. These give where they start.
@njit(cache=True, inline="always")
def _state_block(c, a, b, seq, d, s):
    """Position of direction d's final state s (0: h, 1: c) in the op's output slot at ``a``, or -1."""
    if c[I_RETURN_STATE] == 0:
        return -1
    ns = 2 if c[I_CELL] == LSTM else 1
    return a + b * (seq + (d * ns + s) * c[I_U])


_F1 = types.float32[::1]
_I1 = types.int64[::1]
_I64, _B, _F = types.int64, types.boolean, types.float32
# ws, params, b, training, c, go_back, flip_out, rate, rec_rate, x, ids, has_mask, init_h, init_c, w, base, out,
# out_stride, st_h, st_c
DIRECTION_FORWARD_SIG = types.void(_F1, _F1, _I64, _B, _I1, _B, _B, _F, _F, _I64, _I64, _B, _I64, _I64, _I64, _I64,
                                   _I64, _I64, _I64, _I64)
# ws, gs, params, grads, b, training, c, go_back, flip_out, rate, rec_rate, x, ids, has_mask, init_h, init_c, acc_h,
# acc_c, w, base, out, out_stride, st_h, st_c, w_acc, frozen, need_dx, dx_acc
DIRECTION_BACKWARD_SIG = types.void(_F1, _F1, _F1, _F1, _I64, _B, _I1, _B, _B, _F, _F, _I64, _I64, _B, _I64, _I64, _B,
                                    _B, _I64, _I64, _I64, _I64, _I64, _I64, _B, _B, _B, _B)
_direction_forward_at = pointer_from_address(DIRECTION_FORWARD_SIG)
_direction_backward_at = pointer_from_address(DIRECTION_BACKWARD_SIG)


@njit(**KERNEL)
def recurrent_forward(rec, ints, params, consts, grads, ws, gs, b, training):
    c, ids, has_mask, seq, t_out = _geometry(rec, ints, b)
    u, dirs, mode = c[I_U], c[I_DIRECTIONS], c[I_MERGE]
    rate, rec_rate = consts[rec[P.AUX]], consts[rec[P.AUX] + 1]
    x = b * input_slot(rec, ints, 0)[0]
    a = b * rec[P.A_POS]
    outs = np.empty(2, dtype=np.int64)
    for d in range(dirs):
        base = b * (rec[P.Z_POS] + d * c[I_DIR_SCRATCH])
        init_h, init_c, _, _ = _state_inputs(rec, ints, c, b, d)
        # the op's slot, or each direction's sequences an output of their own, or its own block to merge
        outs[d] = a + b * d * t_out * u if dirs == 1 or mode == NO_MERGE else _regions(c, b, base)[6]
        go_back = d == 1 if dirs == 2 else c[I_GO_BACKWARDS] != 0
        call(_direction_forward_at(c[I_FORWARD_FN]), ws, params, b, training, c, go_back, d == 1, rate, rec_rate, x,
             ids, has_mask, init_h, init_c, rec[P.W_OFF] + d * c[I_DIR_WEIGHTS], base, outs[d], t_out * u,
             _state_block(c, a, b, seq, d, 0), _state_block(c, a, b, seq, d, 1))
    if dirs == 1 or mode == NO_MERGE:
        return
    rows = b * t_out
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
    c, ids, has_mask, seq, t_out = _geometry(rec, ints, b)
    u, dirs, cell = c[I_U], c[I_DIRECTIONS], c[I_CELL]
    flags = rec[P.FLAGS]
    frozen, w_acc = (flags & P.FROZEN) != 0, (flags & P.W_ACC) != 0
    need_dx, acc = (flags & P.NEED_DX) != 0, (rec[P.ACC] & 1) != 0
    if frozen and not need_dx:
        return
    rate, rec_rate = consts[rec[P.AUX]], consts[rec[P.AUX] + 1]
    x = b * input_slot(rec, ints, 0)[0]
    a = b * rec[P.A_POS]
    mode = c[I_MERGE]
    # The outputs nothing reads have no gradient written: take it as zero.
    n_seq = 2 if dirs == 2 and mode == NO_MERGE else 1
    n_outs = n_seq + (dirs * (2 if cell == LSTM else 1) if c[I_RETURN_STATE] != 0 else 0)
    for o in range(n_outs):
        if (c[I_READS] >> o) & 1 == 0:
            lo, size = (o * (seq // n_seq), seq // n_seq) if o < n_seq else (seq + (o - n_seq) * u, u)
            for k in range(b * size):
                gs[a + b * lo + k] = _ZERO
    outs = np.empty(2, dtype=np.int64)
    for d in range(dirs):
        outs[d] = a + b * d * t_out * u if dirs == 1 or mode == NO_MERGE else \
            _regions(c, b, b * (rec[P.Z_POS] + d * c[I_DIR_SCRATCH]))[6]
    if dirs == 2 and mode != NO_MERGE:
        for r in range(b * t_out):
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
    for d in range(dirs):
        init_h, init_c, acc_h, acc_c = _state_inputs(rec, ints, c, b, d)
        go_back = d == 1 if dirs == 2 else c[I_GO_BACKWARDS] != 0
        call(_direction_backward_at(c[I_BACKWARD_FN]), ws, gs, params, grads, b, training, c, go_back, d == 1, rate,
             rec_rate, x, ids, has_mask, init_h, init_c, acc_h, acc_c, rec[P.W_OFF] + d * c[I_DIR_WEIGHTS],
             b * (rec[P.Z_POS] + d * c[I_DIR_SCRATCH]), outs[d], t_out * u, _state_block(c, a, b, seq, d, 0),
             _state_block(c, a, b, seq, d, 1), w_acc, frozen, need_dx, acc or d == 1)


def has_dropout(rec, consts):
    """Whether op ``rec`` draws dropout masks in training (a dropout or recurrent_dropout rate)."""
    return bool(consts[rec[P.AUX]] > 0 or consts[rec[P.AUX] + 1] > 0)


def cuda_refusal(rec, ints):
    """What the CUDA engine, which runs chains of layers, cannot run in op ``rec``, or None:
    initial states (inputs beside the sequence) and final states other layers read."""
    c = ints[rec[P.IAUX]:rec[P.IAUX] + N_INTS]
    if c[I_INITIAL_STATE]:
        return "recurrent layers called with initial_state="
    n_seq = 2 if c[I_DIRECTIONS] == 2 and c[I_MERGE] == NO_MERGE else 1
    if c[I_RETURN_STATE] and c[I_READS] >> n_seq != 0:
        return "return_state=True outputs (final states) read by other layers or used as model outputs"
    return None


# The op kind of each cell (SIMPLE_RNN, LSTM, GRU): the op's functions are the same for every cell,
# the direction functions the cell's own.
KINDS = tuple(register(name, recurrent_forward, recurrent_backward, on_cuda=True, cuda_refusal=cuda_refusal,
                       linked=((forward, DIRECTION_FORWARD_SIG), (backward, DIRECTION_BACKWARD_SIG)))
              for name, forward, backward in (("SimpleRNN", direction_forward_simple_rnn, direction_backward_simple_rnn),
                                              ("LSTM", direction_forward_lstm, direction_backward_lstm),
                                              ("GRU", direction_forward_gru, direction_backward_gru)))
