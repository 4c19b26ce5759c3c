"""Losses written with ``keras.ops``, traced into the model's program.

``compile(loss=fn)`` with ``fn(y_true, y_pred)`` (or a ``losses.Loss``
subclass defining ``call(y_true, y_pred)``) returns per-sample values
written with ``keras.ops``. For training, ``fn`` is traced once on
symbolic tensors: ``y_pred`` is the model's output, ``y_true`` a slot the
loop fills with the batch's targets; its ops join the program, so their
gradients are the compiled backward pass. The per-sample loss is the mean
of ``fn``'s values over each sample's axes (Keras's "sum_over_batch_size":
the mean over all values, the same thing for samples of one shape), and
the loop's loss is the mean over the batch (weighted by sample weights).

The loop hands that loss to the existing own-loss route (``losses.Loss``
with compiled ``value``/``gradient``): the traced graph writes the sample's
loss into the first value of a slot as wide as the output (``value`` reads
it, ``gradient`` is 1 there), so the loop's loss stage needs nothing new.
Targets must have the output's shape (dense, float), as Keras's
elementwise losses take them.
"""
import numpy as np

from ..layers.node import KerasTensor
from ..losses import Loss
from . import graph


class TracedLoss(Loss):
    """A loss computed by the traced ops of ``fn(y_true, y_pred)``."""

    def __init__(self, fn, name=None):
        super().__init__(name=name or getattr(fn, "__name__", None) or "custom_loss")
        self.graph_fn = fn

    # the compiled per-sample functions: the traced graph put the sample's loss at y_pred[0]
    def value(y_true, y_pred, constants):
        return y_pred[0]

    def gradient(y_true, y_pred, constants, out):
        out[0] = 1.0
        for j in range(1, y_pred.shape[0]):
            out[j] = 0.0

    def trace(self, y_pred):
        """(y_true, per-sample loss slot) for the output tensor ``y_pred``: the
        ops of ``fn`` on them, reduced to each sample's mean and placed first
        in a tensor of the output's shape."""
        y_true = KerasTensor(y_pred.shape, name="y_true")
        with graph.loss_trace():
            values = self.graph_fn(y_true, y_pred)
            if not isinstance(values, KerasTensor):
                raise TypeError(f"Loss {self.name!r} returned {type(values).__name__}; written with keras.ops on "
                                "y_true and y_pred it must return their per-sample values")
            if values.sample_shape:
                values = graph.reduce("mean", values, tuple(range(1, len(values.shape))), False)
            first = np.zeros(y_pred.sample_shape, dtype=np.float32)
            first.reshape(-1)[0] = 1.0
            slot = graph.binary("multiply", graph.expand_all(values, len(y_pred.sample_shape)), first)
        return y_true, slot

    def per_sample(self, y_true, y_pred):
        values = np.asarray(self.graph_fn(np.asarray(y_true, dtype=np.float32), np.asarray(y_pred, dtype=np.float32)),
                            dtype=np.float64)
        n = len(y_pred)
        if values.ndim == 0:
            return np.full(n, float(values))
        return values.reshape(n, -1).mean(axis=1)

    def get_config(self):
        return {"name": self.name, "reduction": self.reduction}


class _CallLoss(TracedLoss):
    """A ``losses.Loss`` subclass with its own ``call``, wrapped to be traced."""

    def __init__(self, loss):
        super().__init__(loss.call, name=loss.name)
        self.wrapped = loss


def traced(identifier):
    """The TracedLoss for a function or a Loss object with its own ``call``.

    It is traced once here on a stand-in output of shape (None, 1), so a
    function that uses NumPy or Python branches on the values is refused at
    ``compile``; errors of shape wait for the real output."""
    loss = _CallLoss(identifier) if isinstance(identifier, Loss) else TracedLoss(identifier)
    try:
        loss.trace(KerasTensor((None, 1)))
    except ValueError:
        pass
    except Exception as exc:    # noqa: BLE001 -- any failure of the user's code on symbolic tensors
        raise ValueError(f"loss={loss.name!r} could not be traced with keras.ops ({type(exc).__name__}: {exc}). "
                         "fastnn trains inside compiled code, so a loss function must be written with keras.ops "
                         "on y_true and y_pred (no NumPy, no Python branches on the values), or be a "
                         "fastnn.losses.Loss subclass with compiled value/gradient functions") from None
    return loss
