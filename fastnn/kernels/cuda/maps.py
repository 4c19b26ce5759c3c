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


@cuda.jit(device=True)
def reader(i, k, pad, dilation, stride, out_size):
    """The output coordinate whose kernel tap ``k`` reads input coordinate ``i`` (one axis of a
    convolution), or -1 where none does: what an input's gradient gathers from."""
    t = i + pad - k * dilation
    if t < 0 or t % stride != 0 or t // stride >= out_size:
        return -1
    return t // stride
