"""``keras.callbacks.TensorBoard``: the scalars Keras 3 logs, written with tensorboardX.

TensorFlow's summary writer is not a dependency of fastnn; the event files are
written by tensorboardX (the optional extra ``fastnn[tensorboard]``), imported
when a ``TensorBoard`` callback is created. TensorBoard reads them as it reads
Keras's (``tensorboard --logdir logs``).
"""
import itertools
import os
import time

from .callbacks import Callback

# tensorboardX names a file by the second and the host, and opens it with "wb": two writers of
# one folder in one second would truncate each other, so each gets the pid and a count too
# (TensorFlow's writers do the same).
_WRITERS = itertools.count()

_INSTALL = 'pip install "fastnn[tensorboard]" (or pip install tensorboardX)'


def _summary_writer():
    """tensorboardX's SummaryWriter class, or an ImportError that says how to get it."""
    try:
        from tensorboardX import SummaryWriter
    except ImportError as e:
        raise ImportError("keras.callbacks.TensorBoard writes its event files with the tensorboardX package, "
                          f"which is not installed; install fastnn's optional extra: {_INSTALL}") from e
    return SummaryWriter


class TensorBoard(Callback):
    """Logs what Keras 3's TensorBoard callback logs as scalars, under ``log_dir``
    (default "logs"): ``log_dir/train`` and ``log_dir/validation``.

    - at each epoch end, step = the epoch (from 0): ``epoch_<key>`` for every
      training log (``epoch_loss``, ``epoch_accuracy``...) and
      ``epoch_learning_rate`` in ``train``; the ``val_`` logs without their
      prefix (``epoch_loss``...) in ``validation``;
    - at the end of each validation run (and of ``evaluate`` given this
      callback), step = the optimizer's iteration count:
      ``evaluation_<key>_vs_iterations`` in ``validation``;
    - ``update_freq``: "epoch" (default), "batch" (= 1) or an integer N:
      also ``batch_<key>`` (the running means of the epoch so far) in
      ``train`` every N batches, step = batches trained since ``fit``
      started (from 1). Batch logging makes fit return to Python after every
      step, which costs speed at small batches;
    - ``write_steps_per_second``: also ``epoch_steps_per_second`` (and
      ``batch_steps_per_second`` with batch logging).

    ``write_graph`` (default True) is accepted and ignored: fastnn has no
    TensorFlow graph to write. What fastnn cannot log, ``histogram_freq`` > 0,
    ``write_images=True``, ``profile_batch`` other than 0 and
    ``embeddings_freq`` > 0, raises ValueError. Needs tensorboardX (see
    the module's docstring); without it the constructor raises ImportError.
    """

    def __init__(self, log_dir="logs", histogram_freq=0, write_graph=True, write_images=False,
                 write_steps_per_second=False, update_freq="epoch", profile_batch=0, embeddings_freq=0,
                 embeddings_metadata=None):
        super().__init__()
        for arg, value, why in (("histogram_freq", histogram_freq, "weight histograms"),
                                ("write_images", write_images, "weight images"),
                                ("profile_batch", profile_batch, "TensorFlow's profiler"),
                                ("embeddings_freq", embeddings_freq, "the embedding projector")):
            if value:
                raise ValueError(f"TensorBoard({arg}={value!r}) is not supported by fastnn ({why}); leave it at "
                                 f"{0 if arg != 'write_images' else False!r}: fastnn logs scalars only")
        if embeddings_metadata is not None:
            raise ValueError("TensorBoard(embeddings_metadata=...) is not supported by fastnn (no embedding projector)")
        if update_freq == "batch":
            update_freq = 1
        if update_freq != "epoch" and (isinstance(update_freq, bool) or not isinstance(update_freq, int)
                                       or update_freq < 1):
            raise ValueError(f"TensorBoard update_freq must be 'epoch', 'batch' or a positive integer (batches), "
                             f"got {update_freq!r}")
        self._writer_class = _summary_writer()
        self.log_dir = str(os.fspath(log_dir))
        self.histogram_freq, self.write_graph, self.write_images = histogram_freq, write_graph, write_images
        self.write_steps_per_second = bool(write_steps_per_second)
        self.update_freq = update_freq
        self.profile_batch, self.embeddings_freq, self.embeddings_metadata = profile_batch, embeddings_freq, None
        self._writers = {}
        self._training = False
        self._global_train_batch = 0
        self._epoch_start = (0, 0.0)      # (iterations, time) at the epoch's start
        self._batch_start_time = 0.0
        if update_freq != "epoch":        # only then batch hooks: they make fit step one batch at a time
            self.on_train_batch_begin = self._on_batch_begin
            self.on_train_batch_end = self._on_batch_end

    # -- writers: created on first use, as Keras's, so a run that logs nothing leaves no files. ---------
    # tensorboardX writes from a queue on its own thread (to disk at its first event, then every 120 s,
    # as TensorFlow's writers); only close() waits for the queue, so fit's end closes them, and so
    # does the end of an evaluate outside fit.
    def _writer(self, which):
        if which not in self._writers:
            self._writers[which] = self._writer_class(os.path.join(self.log_dir, which),
                                                      filename_suffix=f".{os.getpid()}.{next(_WRITERS)}")
        return self._writers[which]

    def _write(self, which, scalars, step):
        writer = self._writer(which)
        for tag, value in scalars.items():
            writer.add_scalar(tag, float(value), global_step=int(step))

    def _close_writers(self):
        for writer in self._writers.values():
            writer.close()
        self._writers = {}

    # -- hooks ---------------------------------------------------------------------------------------
    def set_model(self, model):
        self._close_writers()
        super().set_model(model)

    def on_train_begin(self, logs=None):
        self._training = True
        self._global_train_batch = 0

    def on_train_end(self, logs=None):
        self._training = False
        self._close_writers()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch_start = (int(self.model.optimizer.iterations), time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        if not logs:
            return
        train = {f"epoch_{k}": v for k, v in logs.items() if not k.startswith("val_")}
        train["epoch_learning_rate"] = float(self.model.optimizer.learning_rate)
        if self.write_steps_per_second:
            steps, start = self._epoch_start
            train["epoch_steps_per_second"] = ((int(self.model.optimizer.iterations) - steps)
                                               / max(time.perf_counter() - start, 1e-9))
        self._write("train", train, epoch)
        validation = {f"epoch_{k[4:]}": v for k, v in logs.items() if k.startswith("val_")}
        if validation:
            self._write("validation", validation, epoch)

    def on_test_end(self, logs=None):
        optimizer = getattr(self.model, "optimizer", None)
        if logs and optimizer is not None:
            self._write("validation", {f"evaluation_{k}_vs_iterations": v for k, v in logs.items()},
                        int(optimizer.iterations))
        if not self._training:      # evaluate() on its own: its scalars are on disk when it returns
            self._close_writers()

    def _on_batch_begin(self, batch, logs=None):
        self._global_train_batch += 1
        self._batch_start_time = time.perf_counter()

    def _on_batch_end(self, batch, logs=None):
        if self._global_train_batch % self.update_freq:
            return
        scalars = {f"batch_{k}": v for k, v in (logs or {}).items()}
        if self.write_steps_per_second:
            scalars["batch_steps_per_second"] = 1.0 / max(time.perf_counter() - self._batch_start_time, 1e-9)
        self._write("train", scalars, self._global_train_batch)
