"""Extreme values where a number enters fastnn: batch sizes, numbers beyond
float32's range, optimizer step counts. Each is trained as Keras would or
refused with a ValueError naming the argument, before memory or compiled
code is spent on it."""
import numpy as np
import pytest

import fastnn as keras


def regression(units=1, optimizer="sgd"):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(units), keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer=optimizer)
    return model


def data(n=10):
    x = np.random.default_rng(0).random((n, 3)).astype(np.float32)
    return x, x.sum(axis=1, keepdims=True)


@pytest.mark.parametrize("batch_size", [10**10, 2**62])
def test_a_batch_size_beyond_the_rows_trains_on_one_batch_of_all_rows(batch_size):
    x, y = data()
    a, b = regression(), regression()
    a.fit(x, y, batch_size=batch_size, epochs=2, shuffle=False, verbose=0)
    b.fit(x, y, batch_size=10, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_array_equal(a._params, b._params)
    assert a.evaluate(x, y, batch_size=batch_size, verbose=0) == b.evaluate(x, y, batch_size=10, verbose=0)
    np.testing.assert_array_equal(a.predict(x, batch_size=batch_size, verbose=0), a.predict(x, verbose=0))


def test_a_batch_that_cannot_fit_in_memory_is_refused_before_allocating():
    x, y = data(2**20)
    model = regression(units=2**16)   # 2**20 rows x 2**16 activations: far beyond any machine's RAM
    with pytest.raises(ValueError, match=r"batch_size=1048576 needs [\d,.]+ GiB of working memory .* use a "
                                         r"smaller batch_size"):
        model.fit(x, y, batch_size=2**20, verbose=0)
    with pytest.raises(ValueError, match="batch_size=1048576 needs"):
        model.predict(x, batch_size=2**20, verbose=0)
