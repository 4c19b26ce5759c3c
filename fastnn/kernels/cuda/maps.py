"""Index arithmetic shared by the device kernels over channels-last feature maps."""
from numba import cuda


@cuda.jit(device=True)
def pixel(e, H, W, C):
    """Element ``e`` of a (samples, H, W, C) block of maps, row-major, as its
    (sample, row, column, channel)."""
    c = e % C
    r = e // C
    w = r % W
    r = r // W
    return r // H, r % H, w, c
