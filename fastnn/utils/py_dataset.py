"""``PyDataset`` (alias ``Sequence``): Keras's base class for data produced by Python code."""


class PyDataset:
    """A dataset of batches: subclass it and define ``__len__`` (the number of
    batches) and ``__getitem__(index)`` returning batch ``index`` as
    ``(x, y)`` (or ``x`` alone, for ``predict``), NumPy arrays whose first
    axis is the batch. Optionally ``on_epoch_begin``/``on_epoch_end``, which
    ``fit`` calls around every epoch.

    ``fit(dataset)`` visits every batch once per epoch, in a shuffled order
    when ``shuffle=True`` (drawn from fastnn's generator, so
    ``set_random_seed`` makes it repeatable); ``steps_per_epoch`` limits an
    epoch to that many batches. A dataset without ``__len__`` (or whose
    ``num_batches`` is None) is endless and needs ``steps_per_epoch``.

    ``workers``, ``use_multiprocessing`` and ``max_queue_size`` are accepted
    for Keras compatibility; fastnn reads batches in the training thread.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self.workers = workers
        self.use_multiprocessing = use_multiprocessing
        self.max_queue_size = max_queue_size

    def __getitem__(self, index):
        raise NotImplementedError("A PyDataset must define __getitem__(index), returning batch `index`")

    @property
    def num_batches(self):
        """Batches per epoch: ``len(self)``, or None (endless) without ``__len__``."""
        return len(self) if hasattr(self, "__len__") else None

    def on_epoch_begin(self):
        pass

    def on_epoch_end(self):
        pass


Sequence = PyDataset
