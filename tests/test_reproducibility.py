"""set_random_seed makes initialization, shuffling and dropout repeatable: the
same seed and thread count give bit-identical weights, in one process or two;
another thread count stays within float32 round-off."""
import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

import fastnn as keras

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAIN = textwrap.dedent("""
    import numpy as np
    import fastnn as keras

    def train(seed, epochs=2):
        '''Seeded: initial weights, three shuffles and the dropout masks all draw from it.'''
        keras.utils.set_random_seed(seed)
        rng = np.random.default_rng(123)            # the data itself is fixed
        x = rng.random((96, 20), dtype=np.float32)
        y = rng.integers(0, 10, 96)
        model = keras.Sequential([keras.layers.Input(shape=(20,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dropout(0.3), keras.layers.Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        model.fit(x, y, epochs=epochs, batch_size=16, validation_split=0.25, verbose=0)
        return model.get_weights()
""")
namespace = {}
exec(TRAIN, namespace)
train = namespace["train"]


def test_the_same_seed_gives_bit_identical_weights():
    first, second = train(7), train(7)
    assert all(np.array_equal(a, b) for a, b in zip(first, second))
    other = train(8)
    assert not np.array_equal(first[0], other[0])


def test_the_seed_covers_shuffling_and_dropout_not_only_initialization():
    """Same initial weights (seed 7) but the generators re-seeded differently
    before fit: the results must differ, so fit really draws from the seed."""
    def run(fit_seed):
        keras.utils.set_random_seed(7)
        model = keras.Sequential([keras.layers.Input(shape=(20,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dropout(0.3), keras.layers.Dense(10, activation="softmax")])
        model.compile(loss="sparse_categorical_crossentropy", optimizer="adam")
        initial = model.get_weights()
        keras.utils.set_random_seed(fit_seed)
        rng = np.random.default_rng(123)
        model.fit(rng.random((96, 20), dtype=np.float32), rng.integers(0, 10, 96), epochs=1, batch_size=16,
                  verbose=0, shuffle=False)     # no shuffle: only dropout differs
        return initial, model.get_weights()
    (init_a, a), (init_b, b), (_, c) = run(1), run(2), run(1)
    assert all(np.array_equal(p, q) for p, q in zip(init_a, init_b))
    assert not np.array_equal(a[0], b[0])
    assert all(np.array_equal(p, q) for p, q in zip(a, c))


def weights_from_subprocess(seed, threads, tmp_path):
    out = tmp_path / f"w_{seed}_{threads}.npz"
    script = TRAIN + f"\nnp.savez({str(out)!r}, *train({seed}))\n"
    env = {**os.environ, "NUMBA_NUM_THREADS": str(threads),
           "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with np.load(out) as f:
        return [f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))]


def test_two_processes_with_the_same_seed_end_on_the_same_weights(tmp_path):
    threads = numba.get_num_threads()
    first = weights_from_subprocess(3, threads, tmp_path)
    second = weights_from_subprocess(3, threads, tmp_path)
    here = train(3)     # this process runs the same thread count
    for a, b, c in zip(first, second, here):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two Numba threads")
def test_one_and_two_threads_agree_within_float32_round_off():
    """The thread count changes how each matrix product is split into
    blocks (one per thread), hence possibly the BLAS kernel and summation
    order for some elements; never the batches, shuffles or dropout masks."""
    previous = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = train(11, epochs=3)
        numba.set_num_threads(2)
        two = train(11, epochs=3)
    finally:
        numba.set_num_threads(previous)
    for a, b in zip(one, two):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
