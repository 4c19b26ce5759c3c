"""Numba type names for the fixed signatures of internal kernels.

Kernels that compiled code calls with constant arguments get an explicit
signature: otherwise Numba compiles a separate specialisation for every
literal value passed (five copies of the parallel dispatcher, four of
GEMM), and the cold compile grows by seconds per copy.
"""
F1 = "float32[::1]"     # flat float32 buffer
F2 = "float32[:, ::1]"  # row-major float32 matrix
I1 = "int64[::1]"       # op record, labels, metric codes
I2 = "int64[:, ::1]"    # program table
D1 = "float64[::1]"     # running sums
