"""The IDX format of MNIST and Fashion-MNIST, parsed strictly.

An IDX file is a 4-byte magic number ``00 00 TYPE NDIM``, then NDIM big-endian
uint32 dimensions, then the values in C order, big-endian. Anything else (a
wrong magic, an unknown type code, a length that is not exactly header + data)
is refused with ``ValueError`` rather than read as garbage.
"""
import numpy as np

# IDX type codes -> big-endian NumPy dtypes (from the format's definition).
_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def parse_idx(data, name="IDX data"):
    """Array of the values in ``data`` (the bytes of one decompressed IDX file).

    Returns a writable copy in native byte order with the file's shape
    and dtype (uint8 for MNIST). ``name`` is used in error messages.
    Raises ``ValueError`` when the bytes are not a well-formed IDX file.
    """
    data = bytes(data)
    if len(data) < 4:
        raise ValueError(f"{name}: {len(data)} bytes is too short for an IDX header")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: not an IDX file (magic number {data[:4].hex()} does not start with 0000)")
    code, ndim = data[2], data[3]
    if code not in _DTYPES:
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02x}; expected one of "
                         f"{', '.join(f'0x{c:02x}' for c in _DTYPES)}")
    if ndim == 0:
        raise ValueError(f"{name}: IDX header declares 0 dimensions")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated header ({len(data)} bytes, {ndim} dimensions need {header})")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_DTYPES[code])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{name}: {len(data)} bytes, but a {dtype.name} array of shape {shape} "
                         f"with its header is {expected} bytes")
    values = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))

