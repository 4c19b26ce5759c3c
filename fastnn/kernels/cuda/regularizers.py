"""Weight penalties on the device: ``fastnn.kernels.cpu.regularizers`` as one kernel.

``regs`` rows are ``[offset, size, c]`` with the L1 factor at ``consts[c]``
and the L2 factor at ``consts[c + 1]``; the penalty is
``l1 * sum(|w|) + l2 * sum(w^2)`` and its gradient ``l1 * sign(w) + 2 * l2 * w``
(sign(0) = 0), as on the CPU. Each block sums its share in float64 and adds
it to the running loss with one atomic add.
"""
import numpy as np
from numba import cuda, float64

from .elementwise import block_sum
from .launch import THREADS

_ZERO = np.float32(0.0)
_TWO = np.float32(2.0)


@cuda.jit(cache=True)
def add_penalty(regs, consts, params, grads, want_grad, scale, sums):
    """Adds ``scale`` times the penalty of ``params`` to ``sums[0]`` and,
    with ``want_grad``, its gradient to ``grads``. Launch with ``THREADS``
    threads per block (the size of the block's reduction buffer)."""
    partial = cuda.shared.array(THREADS, float64)
    tid = cuda.threadIdx.x
    start, stride = cuda.grid(1), cuda.gridsize(1)
    total = 0.0
    for k in range(regs.shape[0]):
        off, size, c = regs[k, 0], regs[k, 1], regs[k, 2]
        l1, l2 = consts[c], consts[c + 1]
        two_l2 = _TWO * l2
        for i in range(off + start, off + size, stride):
            w = params[i]
            total += l1 * np.float64(abs(w)) + l2 * np.float64(w * w)
            if want_grad:
                sign = np.float32(w > _ZERO) - np.float32(w < _ZERO)
                grads[i] += l1 * sign + two_l2 * w
    partial[tid] = total
    block_sum(partial, tid, THREADS)
    if tid == 0:
        cuda.atomic.add(sums, 0, scale * partial[0])
