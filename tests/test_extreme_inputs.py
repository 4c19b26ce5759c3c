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


# -- numbers finite in float64 but not in float32 --------------------------------------------
@pytest.mark.parametrize("make, message", [
    (lambda: keras.layers.Rescaling(scale=1e300), "Rescaling scale must be a finite number"),
    (lambda: keras.layers.Rescaling(1.0, offset=-1e39), "Rescaling offset must be a finite number"),
    (lambda: keras.layers.LeakyReLU(negative_slope=1e300), "must be finite in float32"),
    (lambda: keras.layers.BatchNormalization(momentum=1e300), "momentum must be a finite float32 number"),
    (lambda: keras.layers.BatchNormalization(epsilon=1e-50), "epsilon must be positive in float32"),
    (lambda: keras.optimizers.Adam(learning_rate=1e300), "learning_rate must be a finite number within float32"),
    (lambda: keras.optimizers.SGD(clipnorm=1e39), "clipnorm must be a finite number within float32"),
    (lambda: keras.optimizers.schedules.ExponentialDecay(1e300, 10, 0.9), "initial_learning_rate"),
    (lambda: keras.regularizers.l2(1e300), "l2"),
])
def test_constructor_numbers_beyond_float32_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_configs_with_numbers_beyond_float32_are_refused_on_loading():
    for record, message in [
            ({"class_name": "Rescaling", "config": {"scale": 1e300, "offset": 0.0}}, "Rescaling scale"),
            ({"class_name": "LeakyReLU", "config": {"negative_slope": 1e300}}, "negative_slope"),
            ({"class_name": "BatchNormalization", "config": {"epsilon": 1e-50}}, "epsilon")]:
        with pytest.raises(ValueError, match=message):
            keras.layers.deserialize({"module": "keras.layers", **record})
    with pytest.raises(ValueError, match="learning_rate"):
        keras.optimizers.deserialize({"class_name": "Adam", "config": {"learning_rate": 1e300}})


@pytest.mark.parametrize("weights", ["sample", "class"])
def test_sample_and_class_weights_beyond_float32_are_refused(weights):
    x, y = data()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    labels = (x[:, 0] > 0.5).astype(np.int64)
    before = model._params.copy()
    if weights == "sample":
        with pytest.raises(ValueError, match=r"sample_weight contains NaN or inf \(after conversion to float32\)"):
            model.fit(x, labels, sample_weight=np.full(10, 1e300), verbose=0)
    else:
        with pytest.raises(ValueError, match=r"class_weight\[1\] must be a non-negative finite number"):
            model.fit(x, labels, class_weight={0: 1.0, 1: 1e300}, verbose=0)
    np.testing.assert_array_equal(model._params, before)


def _replace_dataset(path, key, value):
    import h5py
    with h5py.File(path, "r+") as h5:
        del h5[key]
        h5[key] = value


def test_weights_and_optimizer_slots_beyond_float32_in_a_file_are_refused(tmp_path):
    x, y = data()
    model = regression(optimizer="adam")
    model.fit(x, y, verbose=0)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    kernel = model.layers[0].get_weights()[0].astype(np.float64)
    kernel[0, 0] = 1e300
    _replace_dataset(path, "layers/dense/vars/0", kernel)
    fresh = regression(optimizer="adam")
    fresh.fit(x, y, verbose=0)
    before = fresh._params.copy()
    with pytest.raises(ValueError, match=r"weight 'dense(_\d+)?/kernel'.*NaN or inf \(after conversion to float32"):
        fresh.load_weights(path)
    model.save_weights(path)
    slot = np.full(model.layers[0].get_weights()[0].shape, 1e300)
    _replace_dataset(path, "optimizer/vars/2", slot)
    with pytest.raises(ValueError, match=r"optimizer slot 2.*NaN or inf \(after conversion to float32"):
        fresh.load_weights(path)
    np.testing.assert_array_equal(fresh._params, before)


@pytest.mark.parametrize("iterations", [2**64 - 1, 2**63 - 1, 2**62 + 1])
def test_optimizer_iterations_in_a_file_are_bounded(tmp_path, iterations):
    x, y = data()
    model = regression(optimizer="adam")
    model.fit(x, y, verbose=0)
    path = tmp_path / "m.weights.h5"
    model.save_weights(path)
    _replace_dataset(path, "optimizer/vars/0", np.array(iterations, dtype=np.uint64))
    with pytest.raises(ValueError, match=rf"iterations \({iterations}\) are outside \[0, 2\*\*62\]"):
        model.load_weights(path)
    _replace_dataset(path, "optimizer/vars/0", np.array(2**62, dtype=np.int64))
    model.load_weights(path)
    assert model.optimizer.iterations == 2**62
    before = model._params.copy()
    model.fit(x, y, verbose=0)       # trains (Adam's bias correction is 1 by then) and saves
    assert model.optimizer.iterations == 2**62 + 1 and not np.array_equal(model._params, before)
    model.save_weights(path)
