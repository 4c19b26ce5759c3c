"""``pad_sequences``: lists of sequences to one padded array, as Keras does."""
import numpy as np


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pads (and truncates) sequences to a common length: Keras's ``pad_sequences``.

    Args:
        sequences: a list (or any sized iterable) of sequences; each a list or
            array of values, or of equal-shaped vectors.
        maxlen: the length of the result's second axis; default: the longest sequence.
        dtype: of the result (default "int32": float values are truncated toward
            zero, as NumPy casts); ``object`` or a string dtype for strings.
        padding: "pre" (default) puts the padding before each sequence, "post" after.
        truncating: "pre" (default) drops the first values of a longer sequence, "post" the last.
        value: the padding value (default 0).

    Returns:
        An array of shape ``(len(sequences), maxlen, *value_shape)``.

    Raises:
        ValueError: a sequence is not iterable, shapes of values differ, padding
            or truncating is not "pre"/"post", maxlen is negative, or a string
            ``value`` with a numeric dtype.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    lengths, sample_shape, found = [], (), False
    for x in sequences:
        try:
            lengths.append(len(x))
        except TypeError:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {x}") from None
        if not found and len(x):
            sample_shape, found = np.asarray(x).shape[1:], True
    if maxlen is None:
        maxlen = int(np.max(lengths)) if lengths else 0
    if isinstance(maxlen, bool) or not isinstance(maxlen, (int, np.integer)) or maxlen < 0:
        raise ValueError(f"maxlen must be a non-negative integer or None, got {maxlen!r}")
    is_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_str:
        raise ValueError(f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
                         "You should set `dtype=object` for variable length strings.")
    out = np.full((len(sequences), maxlen) + sample_shape, value, dtype=dtype)
    for i, s in enumerate(sequences):
        if not len(s):
            continue
        if maxlen == 0:
            raise ValueError(f"maxlen=0 leaves no room for sequence {i} (length {len(s)})")
        kept = np.asarray(s[-maxlen:] if truncating == "pre" else s[:maxlen], dtype=dtype)
        if kept.shape[1:] != sample_shape:
            raise ValueError(f"Shape of sample {kept.shape[1:]} of sequence at position {i} is different from "
                             f"expected shape {sample_shape}")
        if padding == "post":
            out[i, :len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out
