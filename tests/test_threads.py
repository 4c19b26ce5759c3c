"""Thread policy (``fastnn.threads``): the compiled loops run with as many
threads as the cores other processes leave free, unless the user fixes the
count, and the results never depend on how many threads ran them."""
import os

import numba
import numpy as np
import pytest

import fastnn as keras
from fastnn import threads


class _Clock:
    """Stands in for /proc/stat, os.times and the wall clock during a chunk."""

    def __init__(self, monkeypatch):
        self.wall = self.busy = self.own = 0.0
        monkeypatch.setattr(threads, "_cpu_busy_seconds", lambda: self.busy)
        monkeypatch.setattr(threads.time, "perf_counter", lambda: self.wall)
        monkeypatch.setattr(threads.os, "times", lambda: (self.own, 0.0, 0.0, 0.0, 0.0))

    def chunk(self, seconds, ours, others):
        """A chunk of ``seconds`` in which we used ``ours`` cores and other processes ``others``."""
        self.wall += seconds
        self.own += ours * seconds
        self.busy += (ours + others) * seconds


@pytest.fixture
def free_choice(monkeypatch):
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(numba.config, "NUMBA_NUM_THREADS", 2)
    monkeypatch.setattr(threads, "_last_choice", None)
    monkeypatch.setattr(threads, "_fixed_threads", None)
    monkeypatch.setattr(numba, "set_num_threads", lambda n: None)
    monkeypatch.setattr(numba, "get_num_threads", lambda: 2)
    return _Clock(monkeypatch)


def test_a_busy_core_takes_a_thread_away_and_an_idle_one_gives_it_back(free_choice):
    chooser = threads.ThreadChooser()
    assert chooser.begin() == 2
    free_choice.chunk(0.1, ours=1.2, others=0.8)      # another process holds most of a core
    chooser.end()
    assert chooser.begin() == 1
    free_choice.chunk(0.1, ours=1.0, others=0.9)
    chooser.end()
    assert chooser.begin() == 1
    free_choice.chunk(0.1, ours=1.0, others=0.05)     # it stopped
    chooser.end()
    assert chooser.begin() == 2
    free_choice.chunk(0.1, ours=2.0, others=0.3)      # a little background work is not worth a thread
    chooser.end()
    assert chooser.begin() == 2


def test_a_chunk_too_short_to_measure_changes_nothing(free_choice):
    chooser = threads.ThreadChooser()
    chooser.begin()
    free_choice.chunk(0.001, ours=0.0, others=2.0)
    chooser.end()
    assert chooser.begin() == 2


def test_the_users_count_wins(free_choice, monkeypatch):
    keras.config.set_threads(1)
    try:
        chooser = threads.ThreadChooser()
        assert chooser.begin() == 1
        free_choice.chunk(0.1, ours=1.0, others=0.0)
        chooser.end()
        assert chooser.begin() == 1
    finally:
        keras.config.set_threads(None)
    monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
    chooser = threads.ThreadChooser()
    chooser.begin()
    free_choice.chunk(0.1, ours=1.0, others=1.0)
    chooser.end()
    assert chooser.begin() == 2
    with pytest.raises(ValueError, match="threads"):
        keras.config.set_threads(0)


def test_bounded_spinning_unless_the_user_chose_a_wait_policy(monkeypatch):
    for user in ({}, {"OMP_WAIT_POLICY": "active"}, {"GOMP_SPINCOUNT": "5"}):
        monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
        monkeypatch.delenv("GOMP_SPINCOUNT", raising=False)
        for k, v in user.items():
            monkeypatch.setenv(k, v)
        threads.configure_waiting()
        assert os.environ.get("GOMP_SPINCOUNT") == user.get("GOMP_SPINCOUNT", None if user else threads.SPIN_COUNT)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
def test_one_or_two_threads_train_bit_identical_weights():
    # Products are split in one block per thread of the full pool, whichever threads run them.
    rng = np.random.default_rng(0)
    x, y = rng.random((96, 20), dtype=np.float32), rng.integers(0, 4, 96)
    weights = []
    for n in (1, 2):
        keras.config.set_threads(n)
        try:
            keras.utils.set_random_seed(4)
            model = keras.Sequential([keras.Input(shape=(20,)), keras.layers.Dense(40, activation="tanh"),
                                      keras.layers.Dense(4, activation="softmax")])
            model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
            model.fit(x, y, epochs=2, batch_size=16, verbose=0)
            weights.append(model.get_weights())
        finally:
            keras.config.set_threads(None)
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
