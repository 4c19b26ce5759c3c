"""CPU kernels. ``blas`` is imported first: it picks the SGEMM library and
adds that choice to the kernels' cache stamp before anything is compiled."""
from . import blas  # noqa: F401
