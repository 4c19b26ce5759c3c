"""Loss, its gradient and the running metric sums of one batch, one thread per row.

The per-row formulas are ``fastnn.kernels.cpu.losses.row_loss`` and
``row_metric``: the very functions the CPU loop runs, compiled for the GPU. Row sums go to ``sums`` (float64) by atomic
adds: ``sums[0]`` the loss, ``sums[1]`` the sample count, ``sums[2 + k]``
metric ``k``'s per-sample values, as the CPU loops accumulate them.
"""
import numpy as np
from numba import cuda

from ..cpu import losses as _cpu
from .launch import SIMULATOR

# The simulator runs kernels as Python and cannot pass its arrays to compiled
# CPU code, so there the rows run the same functions' Python source.
row_loss = _cpu.row_loss.py_func if SIMULATOR else _cpu.row_loss
row_metric = _cpu.row_metric.py_func if SIMULATOR else _cpu.row_metric

_ONE = np.float32(1.0)


@cuda.jit(cache=True)
def loss_rows(code, mode, src, src_off, grad, grad_off, want_grad, yf, yi, wb, weighted, b, n, metric_codes,
              out, out_off, sums):
    """Adds the batch's loss, count and metric sums to ``sums`` and (when
    ``want_grad``) writes d(mean loss)/d src to ``grad[grad_off:]``.

    ``src[src_off:]``: the ``b x n`` outputs, or logits when ``mode`` is
    ON_LOGITS; ``out[out_off:]``: the outputs the metrics read; ``yf``
    (``b x n`` dense targets) or ``yi`` (``b`` labels) as the CPU kernel.
    ``code < 0`` skips the loss (metrics only). With ``weighted``, ``wb``
    holds the rows' sample weights: as ``cpu.sample_loss.rowwise_loss``, row ``r``'s loss
    counts ``wb[r]`` times and its gradient is scaled by ``wb[r] / b``."""
    inv_b = _ONE / np.float32(b)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, b, stride):
        if code >= 0:
            g = grad_off + r * n
            if weighted:
                w = wb[r]
                loss = w * row_loss(code, mode, src, src_off + r * n, grad, g, want_grad, yf, yi, r, n, _ONE)
                if want_grad:
                    scale = w * inv_b
                    for j in range(n):
                        grad[g + j] *= scale
            else:
                loss = row_loss(code, mode, src, src_off + r * n, grad, g, want_grad, yf, yi, r, n, inv_b)
            cuda.atomic.add(sums, 0, loss)
        for k in range(metric_codes.shape[0]):
            cuda.atomic.add(sums, 2 + k, row_metric(metric_codes[k], out, out_off + r * n, yf, yi, r, n))
    if start == 0:
        cuda.atomic.add(sums, 1, np.float64(b))
