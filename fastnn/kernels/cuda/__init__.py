"""numba.cuda kernels for the operations of ``fastnn.kernels.cpu``, over the
same op table and flat buffers (layout in ``fastnn.kernels.program``).

Importing anything here imports ``numba.cuda``: only ``fastnn.config`` (when
CUDA is chosen or probed) and the training hook in ``fastnn.models.training``
do it, lazily, so CPU-only machines never load it.
"""
