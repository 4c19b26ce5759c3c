"""The exceptions fastnn raises, besides Python's own.

Bad arguments and bad data (shapes, dtypes, NaN/inf, label ranges, unknown
names) raise ``ValueError`` naming the argument; arguments of the wrong kind
in constructors may raise ``TypeError``; ``fit``/``evaluate`` before
``compile`` raise ``RuntimeError``. All of these are raised before any
compiled code runs and leave the model unchanged (for data read a chunk at
a time, before the chunk holding the bad value is trained on).
"""


class NonFiniteLossError(FloatingPointError):
    """``fit`` stopped because a batch's loss was NaN or inf, or an update
    made the weights NaN or inf (checked at the end of every epoch).

    The compiled loop stops before that batch updates anything, so the
    model keeps the last weights it had before the batch; if those were
    already non-finite (an earlier update overflowed), the weights and
    optimizer state are restored to those at the start of the epoch (on the
    GPU, whose loop runs its whole chunk, always; ``batch`` is then the
    chunk's end). The
    model stays usable and ``model.history`` holds the finished epochs.
    Attributes: ``epoch`` and ``batch`` (0-based) of the offending batch,
    ``restored`` (True when the epoch-start weights were restored).

    A subclass of ``FloatingPointError`` (an ``ArithmeticError``).
    ``keras.callbacks.TerminateOnNaN()`` (or any callback that sets
    ``model.stop_training`` on a NaN loss) ends training quietly instead,
    with the same weights: unlike Keras, the non-finite batch is never applied.
    """

    def __init__(self, message, epoch=None, batch=None, restored=False):
        super().__init__(message)
        self.epoch, self.batch, self.restored = epoch, batch, restored
