"""SimpleRNN, LSTM and GRU on the device (the Recurrent kind of ``kinds.recurrent``): forward
through time and backpropagation through time over the CPU kind's flat weights and workspace
layout (its docstring: the XD, ZX, GR, C, H, DM, OUT, HR and RM arrays of each direction, at the
same places of ``ws`` and ``gs``), with its maths value for value (the gate activations are the
CPU's own functions, compiled for the device).

Per direction, forward:
- the dropout masks (training), drawn from the session's xoroshiro128+ states as Dropout's are:
  one mask per sequence, kept for every step (a seed gives the same masks run after run, not the
  CPU's: its generator is another);
- XD, the input steps in processing order times their masks (one thread per value), then the input
  projection ZX = XD W + bias over all T * b rows: one GEMM per input block;
- the time loop, one launch (``sequence_forward``): each block steps a group of samples through
  time, one thread per (sample, unit) computing the unit's columns of the recurrent product
  h_prev Wr (its G gate blocks), its gates and its new states (a masked step keeps the states),
  the block's threads synced between steps. GRU with reset_after=False needs r of every unit before
  its candidate's product, so its steps have two phases (z and r; the candidate and h);
- the output (sequences in the order Keras gives, or the last h; and with return_state the final
  states), then, for a Bidirectional, the merge of the two directions.

Backward, from the output gradients: the gradients of H and C, then the time loop last step to
first (``sequence_backward``), one thread per (sample, unit), which first completes its dh with the
later step's recurrent product (dgates Wr^T, that thread's row of it) and then writes its gates'
gradients (GRU with reset_after=False: a second phase for r's gradient through (r * h_prev) Wr); then
the weight gradients as GEMMs over all T * b rows (XD^T dZX, H^T dGR or HR^T dGR per block,
column sums for the biases) and the input gradient (dZX W^T, put back in input order).

A layer's training step is about 12 launches whatever the sequence length; no atomics, and every
sum of the time loop in the CPU's order, so results agree with the CPU to float32 round-off.
Not run here (``kinds.recurrent.cuda_refusal`` says so before a fit starts): initial_state=,
and return_state outputs that other layers read (graph features the chain engine lacks).
"""
import numpy as np
from numba import cuda, float32
from numba.cuda.random import xoroshiro128p_uniform_float32

from ..kinds import recurrent as R
from ..program import A_POS, AUX, FLAGS, FROZEN, IAUX, INS, N_INS, NEED_DX, W_OFF, Z_POS
from . import blas
from . import elementwise as ew
from .embedding import zero
from .kinds import register
from .launch import THREADS, blocks_for, configure, device_function, planned

_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_HALF = np.float32(0.5)
_act = device_function(R._act)
_derivative = device_function(R._derivative)
_masked = device_function(R._masked)
_SIMPLE_RNN, _LSTM, _GRU = R.SIMPLE_RNN, R.LSTM, R.GRU


@cuda.jit(cache=True)
def draw_masks(states, rate, ws, lo, n):
    """n dropout factors at ws[lo:]: 0 with probability ``rate``, else 1 / (1 - rate). Thread t
    draws from xoroshiro state t: launch at most ``len(states)`` threads in all."""
    t = cuda.grid(1)
    stride = cuda.gridsize(1)
    if t >= states.shape[0]:
        return
    keep = _ONE / (_ONE - rate)
    for e in range(t, n, stride):
        ws[lo + e] = keep if xoroshiro128p_uniform_float32(states, t) >= rate else _ZERO


@cuda.jit(cache=True)
def inputs_forward(t, f, nx, b, go_back, drop, ws, x, xd, dm):
    """XD (T, b, nx * F) = the steps of the b sequences (T, F) at ws[x:] in processing order, each
    of the nx input blocks times its dropout mask (``drop``) at ws[dm:] (b, nx * F)."""
    xw = nx * f
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, t * b * xw, stride):
        q = e % xw
        row = e // xw
        r = row % b
        s = row // b
        t_in = t - 1 - s if go_back else s
        v = ws[x + (r * t + t_in) * f + q % f]
        if drop:
            v = v * ws[dm + r * xw + q]
        ws[xd + e] = v


@cuda.jit(device=True)
def _product(ws, params, v, hp, r, u, gu, col, wr, mask_at, rdrop):
    """v + (h_prev of row r, times its recurrent mask at ws[mask_at:] with ``rdrop``) @ Wr[:, col]."""
    for i in range(u):
        hi = ws[hp + r * u + i]
        if rdrop:
            hi = hi * ws[mask_at + i]
        v += hi * params[wr + i * gu + col]
    return v


@cuda.jit(device=True)
def _step_forward(ints, ci, phase, s, b, go_back, rdrop, has_mask, ids, ws, params, wr, rbias, zx, gr, cs, h, hr, rm,
                  start, stop, stride):
    """Step s of one direction for the (sample r, unit j) pairs e = r * U + j in range(start, stop,
    stride): the op's integer constants at ints[ci:], the arrays at the offsets of
    ``kinds.recurrent._layout``; ``rbias``: GRU's recurrent bias, or -1. ``phase``: 0, or 1 for the
    candidate of a GRU with reset_after=False."""
    cell, t, u = ints[ci + R.I_CELL], ints[ci + R.I_T], ints[ci + R.I_U]
    act, rec = ints[ci + R.I_ACT], ints[ci + R.I_REC_ACT]
    reset_after, sep_h = ints[ci + R.I_RESET_AFTER] != 0, ints[ci + R.I_H_SEPARATE] != 0
    g = 1 if cell == _SIMPLE_RNN else (4 if cell == _LSTM else 3)
    gu = g * u
    t_in = t - 1 - s if go_back else s
    hp = h + s * b * u                  # H[s]: the states before this step
    hn = hp + b * u
    zs, grs, hrs = zx + s * b * gu, gr + s * b * gu, hr + s * b * gu
    cp = cs + s * b * u
    cn = cp + b * u
    for e in range(start, stop, stride):
        r = e // u
        j = e % u
        row = r * gu
        h_prev = ws[hp + e]
        masked = _masked(ws, ids, has_mask, r, t_in, t)
        if phase == 1:      # GRU, reset_after=False: hh = act(xh + (r * h_prev * mask) Wr[:, 2U:])
            v = _ZERO
            for i in range(u):
                hi = ws[hp + r * u + i]
                if rdrop:
                    hi = hi * ws[rm + row + 2 * u + i]
                v += hi * ws[zs + row + u + i] * params[wr + i * gu + 2 * u + j]
            ws[grs + row + 2 * u + j] = v
            m = ws[rm + row + 2 * u + j] if rdrop else _ONE
            ws[hrs + row + 2 * u + j] = h_prev * m * ws[zs + row + u + j]
            hh = _act(act, ws[zs + row + 2 * u + j] + v)
            ws[zs + row + 2 * u + j] = hh
            z = ws[zs + row + j]
            ws[hn + e] = h_prev if masked else z * h_prev + (_ONE - z) * hh
            continue
        if sep_h:       # what multiplies Wr's block k, kept for its gradient (block 2 of GRU: phase 1)
            for k in range(g):
                if cell != _GRU or reset_after or k < 2:
                    ws[hrs + row + k * u + j] = h_prev * (ws[rm + row + k * u + j] if rdrop else _ONE)
        has_prev = s > 0
        if cell == _SIMPLE_RNN:
            v = ws[zs + row + j]
            if has_prev:
                v = _product(ws, params, v, hp, r, u, gu, j, wr, rm + row, rdrop)
            hv = _act(act, v)
            ws[zs + row + j] = hv
            ws[hn + e] = h_prev if masked else hv
        elif cell == _LSTM:
            pre = cuda.local.array(4, float32)
            for k in range(4):
                v = ws[zs + row + k * u + j]
                if has_prev:
                    v = _product(ws, params, v, hp, r, u, gu, k * u + j, wr, rm + row + k * u, rdrop)
                pre[k] = v
            i_, f_ = _act(rec, pre[0]), _act(rec, pre[1])
            g_, o_ = _act(act, pre[2]), _act(rec, pre[3])
            ws[zs + row + j], ws[zs + row + u + j] = i_, f_
            ws[zs + row + 2 * u + j], ws[zs + row + 3 * u + j] = g_, o_
            c_prev = ws[cp + e]
            cv = f_ * c_prev + i_ * g_
            ws[cn + e] = c_prev if masked else cv
            ws[hn + e] = h_prev if masked else o_ * _act(act, cv)
        else:
            blocks = 3 if reset_after else 2
            rsum = cuda.local.array(3, float32)
            for k in range(blocks):
                v = params[rbias + k * u + j] if rbias >= 0 else _ZERO
                if has_prev:
                    v = _product(ws, params, v, hp, r, u, gu, k * u + j, wr, rm + row + k * u, rdrop)
                rsum[k] = v
                ws[grs + row + k * u + j] = v
            z = _act(rec, ws[zs + row + j] + rsum[0])
            r_ = _act(rec, ws[zs + row + u + j] + rsum[1])
            ws[zs + row + j], ws[zs + row + u + j] = z, r_
            if reset_after:
                hh = _act(act, ws[zs + row + 2 * u + j] + r_ * rsum[2])
                ws[zs + row + 2 * u + j] = hh
                ws[hn + e] = h_prev if masked else z * h_prev + (_ONE - z) * hh


@cuda.jit(cache=True)
def outputs_forward(ints, ci, b, go_back, flip_out, has_mask, ids, ws, h, cs, out, out_stride, st_h, st_c):
    """The direction's output at ws[out:] (rows every ``out_stride``): its h at every step (in
    input order with ``flip_out``; zeros at masked steps with zero_output_for_mask), or the last
    h; with ``st_h`` >= 0 its final h (and an LSTM's c at ``st_c``)."""
    cell, t, u = ints[ci + R.I_CELL], ints[ci + R.I_T], ints[ci + R.I_U]
    ret_seq, zero_out = ints[ci + R.I_RETURN_SEQUENCES] != 0, ints[ci + R.I_ZERO_OUTPUT] != 0
    t_out = t if ret_seq else 1
    n = b * t_out * u
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, n + (b * u if st_h >= 0 else 0), stride):
        if e >= n:
            k = e - n
            ws[st_h + k] = ws[h + t * b * u + k]
            if cell == _LSTM:
                ws[st_c + k] = ws[cs + t * b * u + k]
            continue
        j = e % u
        o = (e // u) % t_out
        r = e // (u * t_out)
        if ret_seq:
            t_in = o if flip_out or not go_back else t - 1 - o      # output o holds input step t_in
            s = t - 1 - t_in if go_back else t_in                   # processed at step s
            v = ws[h + (s + 1) * b * u + r * u + j]
            if zero_out and _masked(ws, ids, has_mask, r, t_in, t):
                v = _ZERO
        else:
            v = ws[h + t * b * u + r * u + j]
        ws[out + r * out_stride + o * u + j] = v


@cuda.jit(cache=True)
def outputs_backward(ints, ci, b, go_back, flip_out, has_mask, ids, ws, gs, h, cs, out, out_stride, st_h, st_c):
    """The gradients of H (T+1, b, U) (and of an LSTM's C) from those of the outputs, as
    ``outputs_forward`` wrote them; zero where no output reads a state."""
    cell, t, u = ints[ci + R.I_CELL], ints[ci + R.I_T], ints[ci + R.I_U]
    ret_seq, zero_out = ints[ci + R.I_RETURN_SEQUENCES] != 0, ints[ci + R.I_ZERO_OUTPUT] != 0
    bu = b * u
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, (t + 1) * bu, stride):
        s1 = e // bu
        k = e % bu
        r = k // u
        v = _ZERO
        if ret_seq:
            if s1 > 0:
                t_in = t - s1 if go_back else s1 - 1
                o = t_in if flip_out else s1 - 1
                if not (zero_out and _masked(ws, ids, has_mask, r, t_in, t)):
                    v = gs[out + r * out_stride + o * u + k % u]
        elif s1 == t:
            v = gs[out + r * out_stride + k % u]
        last = s1 == t and st_h >= 0
        if last:
            v += gs[st_h + k]
        gs[h + e] = v
        if cell == _LSTM:
            gs[cs + e] = gs[st_c + k] if last else _ZERO


@cuda.jit(device=True)
def _step_backward(ints, ci, phase, s, b, go_back, rdrop, has_mask, ids, ws, gs, params, wr, zx, gr, cs, h, rm,
                   start, stop, stride):
    """Backpropagation through step s for the (sample r, unit j) pairs e = r * U + j in range(start,
    stop, stride), after step s + 1. Phase 0: completes dh of H[s + 1] with step s + 1's recurrent
    product (row r, column j of dgates Wr^T, the recurrent masks applied), then writes the gates'
    gradients and adds the direct ones of H[s] and C[s]. Phase 1 (GRU, reset_after=False): r's
    gradient through (r * h_prev) Wr."""
    cell, t, u = ints[ci + R.I_CELL], ints[ci + R.I_T], ints[ci + R.I_U]
    act, rec = ints[ci + R.I_ACT], ints[ci + R.I_REC_ACT]
    reset_after = ints[ci + R.I_RESET_AFTER] != 0
    g = 1 if cell == _SIMPLE_RNN else (4 if cell == _LSTM else 3)
    gu = g * u
    t_in = t - 1 - s if go_back else s
    hp = h + s * b * u
    hn = hp + b * u
    zs, grs = zx + s * b * gu, gr + s * b * gu
    cp = cs + s * b * u
    cn = cp + b * u
    # the recurrent products read these gradients: GRU's own, the gates' for the others
    grec = (gr if cell == _GRU else zx) + (s + 1) * b * gu
    n_blocks = 2 if cell == _GRU and not reset_after else g
    for e in range(start, stop, stride):
        r = e // u
        j = e % u
        row = r * gu
        masked = _masked(ws, ids, has_mask, r, t_in, t)
        if phase == 1:
            if masked:
                continue
            tmp = _ZERO
            for i in range(u):
                tmp += gs[grs + row + 2 * u + i] * params[wr + j * gu + 2 * u + i]
            r_ = ws[zs + row + u + j]
            m = ws[rm + row + 2 * u + j] if rdrop else _ONE
            d_r = tmp * ws[hp + e] * m * _derivative(rec, r_)
            gs[zs + row + u + j] = d_r
            gs[grs + row + u + j] = d_r
            gs[hp + e] += tmp * r_ * m
            continue
        dh = gs[hn + e]
        if s < t - 1:
            if rdrop:       # per gate block: (dgates Wr^T) times the block's recurrent mask
                for k in range(n_blocks):
                    acc = _ZERO
                    for i in range(u):
                        acc += gs[grec + row + k * u + i] * params[wr + j * gu + k * u + i]
                    dh += acc * ws[rm + row + k * u + j]
            else:
                for i in range(n_blocks * u):
                    dh += gs[grec + row + i] * params[wr + j * gu + i]
            gs[hn + e] = dh
        if masked:      # the step kept the states: their gradients pass through
            gs[hp + e] += dh
            if cell == _LSTM:
                gs[cp + e] += gs[cn + e]
            for k in range(g):
                gs[zs + row + k * u + j] = _ZERO
                if cell == _GRU:
                    gs[grs + row + k * u + j] = _ZERO
            continue
        if cell == _SIMPLE_RNN:
            gs[zs + row + j] = dh * _derivative(act, ws[zs + row + j])
        elif cell == _LSTM:
            i_, f_ = ws[zs + row + j], ws[zs + row + u + j]
            g_, o_ = ws[zs + row + 2 * u + j], ws[zs + row + 3 * u + j]
            ac = _act(act, ws[cn + e])
            dc = gs[cn + e] + dh * o_ * _derivative(act, ac)
            gs[zs + row + j] = dc * g_ * _derivative(rec, i_)
            gs[zs + row + u + j] = dc * ws[cp + e] * _derivative(rec, f_)
            gs[zs + row + 2 * u + j] = dc * i_ * _derivative(act, g_)
            gs[zs + row + 3 * u + j] = dh * ac * _derivative(rec, o_)
            gs[cp + e] += dc * f_
        else:
            z_, r_, hh = ws[zs + row + j], ws[zs + row + u + j], ws[zs + row + 2 * u + j]
            d_hh = dh * (_ONE - z_) * _derivative(act, hh)
            dz = dh * (ws[hp + e] - hh) * _derivative(rec, z_)
            gs[zs + row + j] = dz
            gs[grs + row + j] = dz
            gs[zs + row + 2 * u + j] = d_hh
            gs[hp + e] += dh * z_
            if reset_after:
                d_r = d_hh * ws[grs + row + 2 * u + j] * _derivative(rec, r_)
                gs[zs + row + u + j] = d_r
                gs[grs + row + u + j] = d_r
                gs[grs + row + 2 * u + j] = d_hh * r_
            else:
                gs[grs + row + 2 * u + j] = d_hh


# The time loops: block k owns samples [k * rows, (k + 1) * rows) and steps them through time, one
# thread per (sample, unit), syncing its threads between steps (and GRU phases). A sample's units read
# only that sample's earlier states, so no grid-wide sync is needed, and a layer's whole loop is one launch.
@cuda.jit(device=True)
def _owned(rows, b, u):
    """(first, end) of the (sample, unit) pairs e = r * U + j this block owns, and this thread's first."""
    lo = cuda.blockIdx.x * rows * u
    return lo, min(b, (cuda.blockIdx.x + 1) * rows) * u, lo + cuda.threadIdx.x


@cuda.jit(cache=True)
def sequence_forward(ints, ci, rows, b, go_back, rdrop, has_mask, ids, ws, params, wr, rbias, zx, gr, cs, h, hr, rm):
    """Every step of one direction, first to last (``_step_forward``); ``rows`` samples per block."""
    t = ints[ci + R.I_T]
    phases = 2 if ints[ci + R.I_CELL] == _GRU and ints[ci + R.I_RESET_AFTER] == 0 else 1
    _, stop, start = _owned(rows, b, ints[ci + R.I_U])
    for s in range(t):
        for phase in range(phases):
            _step_forward(ints, ci, phase, s, b, go_back, rdrop, has_mask, ids, ws, params, wr, rbias, zx, gr, cs, h,
                          hr, rm, start, stop, cuda.blockDim.x)
            cuda.syncthreads()


@cuda.jit(cache=True)
def sequence_backward(ints, ci, rows, b, go_back, rdrop, has_mask, ids, ws, gs, params, wr, zx, gr, cs, h, rm):
    """Every step of one direction, last to first (``_step_backward``); ``rows`` samples per block."""
    t = ints[ci + R.I_T]
    phases = 2 if ints[ci + R.I_CELL] == _GRU and ints[ci + R.I_RESET_AFTER] == 0 else 1
    _, stop, start = _owned(rows, b, ints[ci + R.I_U])
    for s in range(t - 1, -1, -1):
        for phase in range(phases):
            _step_backward(ints, ci, phase, s, b, go_back, rdrop, has_mask, ids, ws, gs, params, wr, zx, gr, cs, h,
                           rm, start, stop, cuda.blockDim.x)
            cuda.syncthreads()


def _time_loop(kernel, b, u, *args):
    """``(configured kernel, args)`` of a time loop over b samples of u units: as many samples per block
    as fill its threads (at least one; a thread then takes several units)."""
    rows = max(1, THREADS // u)
    return configure(kernel, -(-b // rows), THREADS), (args[0], args[1], rows, b, *args[2:])


@cuda.jit(cache=True)
def inputs_backward(t, f, nx, b, go_back, drop, add, ws, gs, x, xd, dm):
    """The input's gradient (b, T, F) at gs[x:] (added to what is there with ``add``) from XD's at
    gs[xd:], back in input order, summed over the nx blocks through their dropout masks."""
    xw = nx * f
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, t * b * f, stride):
        j = e % f
        row = e // f
        r = row % b
        s = row // b
        t_in = t - 1 - s if go_back else s
        v = _ZERO
        for k in range(nx):
            d = gs[xd + row * xw + k * f + j]
            if drop:
                d = d * ws[dm + r * xw + k * f + j]
            v += d
        dst = x + (r * t + t_in) * f + j
        gs[dst] = gs[dst] + v if add else v


@cuda.jit(cache=True)
def merge_forward(mode, u, rows, ws, p, q, a):
    """A Bidirectional's output at ws[a:] from its directions' (``rows`` rows of u at p and q)."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, rows * u, stride):
        r = e // u
        j = e % u
        if mode == R.CONCAT:
            ws[a + r * 2 * u + j] = ws[p + e]
            ws[a + r * 2 * u + u + j] = ws[q + e]
        elif mode == R.SUM:
            ws[a + e] = ws[p + e] + ws[q + e]
        elif mode == R.MUL:
            ws[a + e] = ws[p + e] * ws[q + e]
        else:
            ws[a + e] = (ws[p + e] + ws[q + e]) * _HALF


@cuda.jit(cache=True)
def merge_backward(mode, u, rows, ws, gs, p, q, a):
    """The directions' output gradients at gs[p:] and gs[q:] from the merged one's at gs[a:]."""
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for e in range(start, rows * u, stride):
        r = e // u
        j = e % u
        if mode == R.CONCAT:
            gs[p + e] = gs[a + r * 2 * u + j]
            gs[q + e] = gs[a + r * 2 * u + u + j]
        else:
            ga = gs[a + e]
            if mode == R.SUM:
                gs[p + e], gs[q + e] = ga, ga
            elif mode == R.MUL:
                gs[p + e], gs[q + e] = ga * ws[q + e], ga * ws[p + e]
            else:
                gs[p + e], gs[q + e] = ga * _HALF, ga * _HALF


# -- planning: the op's launches ---------------------------------------------------------------------

def _slot(rec, ints, k):
    """Per-sample position of the op's input k (``kinds.input_slot``, on the host)."""
    return int(ints[int(rec[INS]) + 2 * k])


class _Op:
    """What the launches of Recurrent op ``i`` need, read from the op table once (the CPU kind's
    ``_geometry``, ``_regions`` and ``_state_block``, on the host)."""

    def __init__(self, session, i, b):
        rec = session.prog[i]
        ints = session.ints_host
        self.ci = int(rec[IAUX])
        c = self.c = [int(v) for v in ints[self.ci:self.ci + R.N_INTS]]
        self.cell, self.t, self.f, self.u = c[R.I_CELL], c[R.I_T], c[R.I_F], c[R.I_U]
        self.dirs, self.mode = c[R.I_DIRECTIONS], c[R.I_MERGE]
        self.gu = R.gates(self.cell) * self.u
        self.nx = c[R.I_X_BLOCKS]
        self.t_out = self.t if c[R.I_RETURN_SEQUENCES] else 1
        if c[R.I_INITIAL_STATE]:
            raise NotImplementedError(R.cuda_refusal(rec, ints))
        n_ins = int(rec[N_INS])
        self.has_mask = n_ins > 1       # the token ids, last (initial states are refused above)
        self.ids = b * _slot(rec, ints, n_ins - 1) if self.has_mask else 0
        self.x = b * _slot(rec, ints, 0)
        self.a = b * int(rec[A_POS])
        two = self.dirs == 2 and self.mode in (R.CONCAT, R.NO_MERGE)
        self.seq = self.t_out * self.u * (2 if two else 1)
        consts = session.consts_host
        self.rate, self.rec_rate = np.float32(consts[int(rec[AUX])]), np.float32(consts[int(rec[AUX]) + 1])
        self.flags = int(rec[FLAGS])
        self.b = b
        self.w0, self.z0 = int(rec[W_OFF]), int(rec[Z_POS])

    def state_block(self, d, s):
        """Position of direction d's final state s (0: h, 1: c) in the op's output slot, or -1."""
        if not self.c[R.I_RETURN_STATE]:
            return -1
        return self.a + self.b * (self.seq + (d * R.n_states(self.cell) + s) * self.u)

    def direction(self, d):
        """(go_back, flip_out, weights, regions of ``kinds.recurrent._layout``, out, out_stride) of
        direction d."""
        c, b = self.c, self.b
        base = b * (self.z0 + d * c[R.I_DIR_SCRATCH])
        regions = R._layout(c, b, base)
        if self.dirs == 1:
            return c[R.I_GO_BACKWARDS] != 0, False, self.w0, regions, self.a, self.seq
        out = self.a + b * d * self.t_out * self.u if self.mode == R.NO_MERGE else regions[6]
        return d == 1, d == 1, self.w0 + d * c[R.I_DIR_WEIGHTS], regions, out, self.t_out * self.u


def _mask_launch(session, rate, lo, n):
    blocks = min(blocks_for(n), session.states.shape[0] // THREADS)
    return configure(draw_masks, blocks, THREADS), (session.states, rate, session.ws, lo, n)


def forward(session, i, b, training):
    op = _Op(session, i, b)
    ws, params = session.ws, session.params
    c, t, f, u, gu, nx = op.c, op.t, op.f, op.u, op.gu, op.nx
    xw, bw = nx * f, gu // nx
    drop = training and op.rate > 0
    rdrop = training and op.rec_rate > 0 and c[R.I_REC_MASK] != 0
    launches = []
    for d in range(op.dirs):
        go_back, flip_out, w, (xd, zx, gr, cs, h, dm, _, hr, rm, _), out, out_stride = op.direction(d)
        wr = w + f * gu
        bias = wr + u * gu
        use_bias = c[R.I_USE_BIAS] != 0
        if drop:
            launches.append(_mask_launch(session, op.rate, dm, b * xw))
        if rdrop:
            launches.append(_mask_launch(session, op.rec_rate, rm, b * gu))
        launches.append(planned(inputs_forward, t * b * xw, t, f, nx, b, go_back, drop, ws, op.x, xd, dm))
        for k in range(nx):
            launches.append(blas.gemm_launch(False, False, t * b, bw, f, 1.0, 0.0, ws, xd + k * f, xw, params,
                                             w + k * bw, gu, ws, zx + k * bw, gu, bias=params,
                                             bias_off=bias + k * bw if use_bias else -1))
        launches.append(planned(zero, b * u, ws, h, b * u))         # H[0], C[0]: zero states
        if op.cell == R.LSTM:
            launches.append(planned(zero, b * u, ws, cs, b * u))
        rbias = bias + gu if use_bias and c[R.I_RESET_AFTER] and op.cell == R.GRU else -1
        launches.append(_time_loop(sequence_forward, b, u, session.ints, op.ci, go_back, rdrop, op.has_mask, op.ids, ws,
                                   params, wr, rbias, zx, gr, cs, h, hr, rm))
        st_h = op.state_block(d, 0)
        st_c = op.state_block(d, 1) if op.cell == R.LSTM else -1
        launches.append(planned(outputs_forward, b * op.t_out * u + b * u, session.ints, op.ci, b, go_back, flip_out,
                                op.has_mask, op.ids, ws, h, cs, out, out_stride, st_h, st_c))
    if op.dirs == 2 and op.mode != R.NO_MERGE:
        p, q = op.direction(0)[4], op.direction(1)[4]
        launches.append(planned(merge_forward, b * op.t_out * u, op.mode, u, b * op.t_out, ws, p, q, op.a))
    return launches


def backward(session, i, b, training):
    op = _Op(session, i, b)
    frozen, need_dx = (op.flags & FROZEN) != 0, (op.flags & NEED_DX) != 0
    if frozen and not need_dx:
        return []
    ws, gs, params, grads = session.ws, session.gs, session.params, session.grads
    c, t, f, u, gu, nx = op.c, op.t, op.f, op.u, op.gu, op.nx
    xw, bw = nx * f, gu // nx
    drop = training and op.rate > 0
    rdrop = training and op.rec_rate > 0 and c[R.I_REC_MASK] != 0
    launches = []
    # the outputs nothing reads have no gradient written: take it as zero
    n_seq = 2 if op.dirs == 2 and op.mode == R.NO_MERGE else 1
    n_outs = n_seq + (op.dirs * R.n_states(op.cell) if c[R.I_RETURN_STATE] else 0)
    for o in range(n_outs):
        if (c[R.I_READS] >> o) & 1 == 0:
            lo, size = (o * (op.seq // n_seq), op.seq // n_seq) if o < n_seq else (op.seq + (o - n_seq) * u, u)
            launches.append(planned(zero, b * size, gs, op.a + b * lo, b * size))
    if op.dirs == 2 and op.mode != R.NO_MERGE:
        p, q = op.direction(0)[4], op.direction(1)[4]
        launches.append(planned(merge_backward, b * op.t_out * u, op.mode, u, b * op.t_out, ws, gs, p, q, op.a))
    for d in range(op.dirs):
        go_back, flip_out, w, (xd, zx, gr, cs, h, dm, _, hr, rm, _), out, out_stride = op.direction(d)
        wr = w + f * gu
        bias = wr + u * gu
        st_h = op.state_block(d, 0)
        st_c = op.state_block(d, 1) if op.cell == R.LSTM else -1
        launches.append(planned(outputs_backward, (t + 1) * b * u, session.ints, op.ci, b, go_back, flip_out,
                                op.has_mask, op.ids, ws, gs, h, cs, out, out_stride, st_h, st_c))
        launches.append(_time_loop(sequence_backward, b, u, session.ints, op.ci, go_back, rdrop, op.has_mask, op.ids,
                                   ws, gs, params, wr, zx, gr, cs, h, rm))
        grec = gr if op.cell == R.GRU else zx
        if not frozen:
            for k in range(nx):
                launches.append(blas.gemm_launch(True, False, f, bw, t * b, 1.0, 0.0, ws, xd + k * f, xw, gs,
                                                 zx + k * bw, gu, grads, w + k * bw, gu))
            if c[R.I_H_SEPARATE]:
                for k in range(R.gates(op.cell)):
                    launches.append(blas.gemm_launch(True, False, u, u, t * b, 1.0, 0.0, ws, hr + k * u, gu, gs,
                                                     grec + k * u, gu, grads, wr + k * u, gu))
            else:
                launches.append(blas.gemm_launch(True, False, u, gu, t * b, 1.0, 0.0, ws, h, u, gs, grec, gu,
                                                 grads, wr, gu))
            if c[R.I_USE_BIAS]:
                launches.append(planned(ew.column_sums, gu, gs, zx, t * b, gu, grads, bias))
                if op.cell == R.GRU and c[R.I_RESET_AFTER]:
                    launches.append(planned(ew.column_sums, gu, gs, gr, t * b, gu, grads, bias + gu))
        if need_dx:
            for k in range(nx):
                launches.append(blas.gemm_launch(False, True, t * b, f, bw, 1.0, 0.0, gs, zx + k * bw, gu, params,
                                                 w + k * bw, gu, gs, xd + k * f, xw))
            launches.append(planned(inputs_backward, t * b * f, t, f, nx, b, go_back, drop, d == 1, ws, gs, op.x,
                                    xd, dm))
    return launches


for _kind in R.KINDS:
    register(_kind, forward, backward, random=R.has_dropout)
