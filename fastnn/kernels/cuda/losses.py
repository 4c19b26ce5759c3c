"""Loss, its gradient and the running metric sums of one batch, one thread per row.

The per-row formulas are ``fastnn.kernels.cpu.losses.row_loss`` and
``row_metric`` (and ``cpu.activations.softmax_rows`` for a fused softmax's
outputs): the very functions the CPU loop runs, compiled for the GPU. Row
sums go to ``sums`` (float64) by atomic adds: ``sums[0]`` the loss,
``sums[1]`` the sample count, ``sums[2 + k]`` metric ``k``'s per-sample
values, as the CPU loops accumulate them.
"""
import numpy as np
from numba import cuda

from ..cpu import activations as _cpu_act
from ..cpu import losses as _cpu
from .launch import device_function

# The CPU's functions, run by the kernel (see ``launch.device_function``).
row_loss = device_function(_cpu.row_loss)
row_metric = device_function(_cpu.row_metric)
softmax_rows = device_function(_cpu_act.softmax_rows)

_ONE = np.float32(1.0)


@cuda.jit(cache=True)
def loss_rows(code, mode, src, src_off, grad, grad_off, want_grad, Yf, Yi, sw, weighted, ids, pos, b, n,
              metric_codes, out, out_off, softmax_out, sums):
    """Adds the batch's loss, count and metric sums to ``sums`` and (when
    ``want_grad``) writes d(mean loss)/d src to ``grad[grad_off:]``.

    ``src[src_off:]``: the ``b x n`` outputs, or logits when ``mode`` is
    ON_LOGITS; ``out[out_off:]``: the outputs the metrics read. Batch row
    ``r`` is data set row ``ids[pos + r]``, whose targets the kernel reads in
    place: ``Yf`` (flat N x n dense targets, or empty) or ``Yi`` (N labels,
    or empty), as the CPU kernel; with ``weighted``, ``sw`` (N) holds sample
    weights: as ``cpu.sample_loss.rowwise_loss``, row ``r``'s loss counts
    ``w`` times and its gradient is scaled by ``w / b``. ``code < 0`` skips
    the loss (metrics only). With ``softmax_out`` the row's outputs are
    first computed here as the softmax of the logits in ``src`` (the loss
    fuses the softmax, so the forward pass skips that launch)."""
    inv_b = _ONE / np.float32(b)
    start, stride = cuda.grid(1), cuda.gridsize(1)
    for r in range(start, b, stride):
        t = ids[pos + r]
        if softmax_out:
            softmax_rows(src, src_off + r * n, out, out_off + r * n, 1, n)
        if code >= 0:
            g = grad_off + r * n
            if weighted:
                w = sw[t]
                loss = w * row_loss(code, mode, src, src_off + r * n, grad, g, want_grad, Yf, Yi, t, n, _ONE)
                if want_grad:
                    scale = w * inv_b
                    for j in range(n):
                        grad[g + j] *= scale
            else:
                loss = row_loss(code, mode, src, src_off + r * n, grad, g, want_grad, Yf, Yi, t, n, inv_b)
            cuda.atomic.add(sums, 0, loss)
        for k in range(metric_codes.shape[0]):
            cuda.atomic.add(sums, 2 + k, row_metric(metric_codes[k], out, out_off + r * n, Yf, Yi, t, n))
    if start == 0:
        cuda.atomic.add(sums, 1, np.float64(b))
