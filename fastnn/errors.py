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
    optimizer state are restored to those at the start of the epoch. The
    model stays usable and ``model.history`` holds the finished epochs.
    Attributes: ``epoch`` and ``batch`` (0-based) of the offending batch,
    ``restored`` (True when the epoch-start weights were restored).

    A subclass of ``FloatingPointError`` (an ``ArithmeticError``). A
    callback that sets ``model.stop_training`` in ``on_train_batch_end``
    on a NaN loss (Keras's TerminateOnNaN) ends training quietly instead.
    """

    def __init__(self, message, epoch=None, batch=None, restored=False):
        super().__init__(message)
        self.epoch, self.batch, self.restored = epoch, batch, restored
