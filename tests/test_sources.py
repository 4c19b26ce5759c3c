"""fit/evaluate/predict read memory-mapped arrays a chunk at a time, and
generators and PyDatasets a batch at a time, training on exactly the
batches the in-memory path would; peak memory stays bounded on a 2 GB file."""
import json
import os
import subprocess
import sys
import textwrap
import warnings

import numba
import numpy as np
import pytest

import fastnn as keras
from fastnn.models import sources

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N, F, K = 200, 6, 3


def dataset(n=N, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, F), dtype=np.float32)
    return x, (x[:, 0] * K).astype(np.int64)


def model_for(seed=0, loss="sparse_categorical_crossentropy", units=K, activation="softmax"):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Input(shape=(F,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dropout(0.1), keras.layers.Dense(units, activation=activation)])
    model.compile(loss=loss, optimizer="adam", metrics=["accuracy"])
    return model


def same_weights(a, b):
    return all(np.array_equal(p, q) for p, q in zip(a.get_weights(), b.get_weights()))


def fit_both(x_mem, y_mem, x_other, y_other, **kwargs):
    """The same seeded model trained on in-memory arrays and on another source."""
    kwargs = {"epochs": 3, "batch_size": 16, "verbose": 0, **kwargs}
    a, b = model_for(), model_for()
    keras.utils.set_random_seed(1)
    ha = a.fit(x_mem, y_mem, **kwargs)
    keras.utils.set_random_seed(1)
    hb = b.fit(x_other, y_other, **kwargs)
    return a, b, ha.history, hb.history


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 64 rows, so a small file spans several chunks."""
    monkeypatch.setattr(sources, "CHUNK_BYTES", 64 * F * 4)


def save(tmp_path, name, arr):
    path = tmp_path / f"{name}.npy"
    np.save(path, arr)
    return np.load(path, mmap_mode="r")


def test_memmapped_arrays_train_exactly_like_in_memory_ones(tmp_path, small_chunks):
    x, y = dataset()
    xm, ym = save(tmp_path, "x", x), save(tmp_path, "y", y)
    a, b, ha, hb = fit_both(x, y, xm, ym, validation_split=0.2)
    assert isinstance(sources.make(xm, ym), sources.MappedSource)
    assert same_weights(a, b) and ha == hb
    np.testing.assert_array_equal(a.predict(x, verbose=0), b.predict(xm, verbose=0))
    assert a.evaluate(x, y, verbose=0) == b.evaluate(xm, ym, verbose=0)


def test_memmaps_of_other_dtypes_and_shapes_are_converted_per_chunk(tmp_path, small_chunks):
    rng = np.random.default_rng(2)
    pixels = rng.integers(0, 256, (N, 2, 3), dtype=np.uint8)           # images of 2x3 uint8
    y = pixels[:, 0, 0] % K
    model = lambda: keras.Sequential([keras.layers.Input(shape=(2, 3)), keras.layers.Flatten(),
                                      keras.layers.Dense(K, activation="softmax")])
    a, b = model(), model()
    b.set_weights(a.get_weights())
    for m in (a, b):
        m.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")
    keras.utils.set_random_seed(4)
    a.fit(pixels.astype(np.float32), y.astype(np.float64), epochs=2, batch_size=8, verbose=0)
    keras.utils.set_random_seed(4)
    b.fit(save(tmp_path, "p", pixels), save(tmp_path, "y", y.astype(np.int16)), epochs=2, batch_size=8, verbose=0)
    assert same_weights(a, b)


def test_large_in_memory_arrays_of_other_dtypes_are_read_per_chunk(monkeypatch, small_chunks):
    x, y = dataset()
    monkeypatch.setattr(sources, "COPY_LIMIT_BYTES", x.nbytes - 1)
    x64 = x.astype(np.float64)
    assert isinstance(sources.make(x64, y), sources.MappedSource)
    assert isinstance(sources.make(x, y), sources.ArraySource)      # float32 is never copied
    a, b, ha, hb = fit_both(x, y, x64, y)
    assert same_weights(a, b) and ha == hb


def test_bad_values_in_a_memmap_are_found_in_the_chunk_that_holds_them(tmp_path, small_chunks):
    x, y = dataset()
    x[150, 4] = np.nan
    model = model_for()
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 150, column 4\)"):
        model.fit(save(tmp_path, "x", x), y, epochs=1, batch_size=16, shuffle=False, verbose=0)
    # the chunks before row 150 were trained on (their size depends on timing), never the batch holding it
    assert 1 <= model.optimizer.iterations <= 150 // 16 and not np.array_equal(model._params, before)
    with pytest.raises(ValueError, match=r"x contains NaN or inf \(first at row 150, column 4\)"):
        model.predict(save(tmp_path, "x2", x), verbose=0)
    y[77] = 5
    with pytest.raises(ValueError, match=r"y: labels must be integers in \[0, 2\] .*got 5 at row 77"):
        model.evaluate(x[:100], save(tmp_path, "y", y[:100]), verbose=0)


def test_sample_and_class_weights_travel_with_memmapped_rows(tmp_path, small_chunks):
    x, y = dataset()
    w = np.random.default_rng(3).random(N).astype(np.float32)
    xm, ym = save(tmp_path, "x", x), save(tmp_path, "y", y)
    for weights in ({"sample_weight": w}, {"class_weight": {0: 0.5, 1: 2.0, 2: 1.0}}):
        a, b, ha, hb = fit_both(x, y, xm, ym, validation_split=0.2, **weights)
        assert same_weights(a, b) and ha == hb
    assert model_for().evaluate(x, y, sample_weight=w, verbose=0) == \
        model_for().evaluate(xm, ym, sample_weight=w, verbose=0)


def test_a_generator_of_weighted_batches_trains_like_weighted_arrays():
    x, y = dataset()
    w = np.random.default_rng(4).random(N).astype(np.float32)
    a, b = model_for(), model_for()
    keras.utils.set_random_seed(1)
    ha = a.fit(x, y, sample_weight=w, epochs=1, batch_size=20, shuffle=False, verbose=0).history
    keras.utils.set_random_seed(1)
    hb = b.fit(((x[i:i + 20], y[i:i + 20], w[i:i + 20]) for i in range(0, N, 20)), epochs=1, verbose=0).history
    assert same_weights(a, b) and ha == hb


def test_a_memmap_of_the_wrong_shape_is_refused_before_reading(tmp_path):
    x, y = dataset()
    model = model_for()
    with pytest.raises(ValueError, match=r"x has per-sample shape \(5,\), but the model expects \(6,\)"):
        model.fit(save(tmp_path, "x", x[:, :5]), y, verbose=0)
    with pytest.raises(ValueError, match=r"y has 199 samples but x has 200"):
        model.fit(save(tmp_path, "x2", x), save(tmp_path, "y", y[:-1]), verbose=0)


def test_rows_read_from_the_file_are_exactly_the_rows_indexing_reads(tmp_path, monkeypatch):
    rng = np.random.default_rng(5)
    mm = save(tmp_path, "r", rng.standard_normal((3000, 7)))
    labels = save(tmp_path, "l", rng.integers(0, 9, 3000))
    monkeypatch.setattr(sources._FileRows, "_SPAN_BYTES", 2048)     # split long spans too
    for view in (mm, mm[100:], mm[:, 2:5], mm[::3], labels, labels[7:]):
        assert sources._file_rows_usable(view)
        reader = sources._FileRows(view)
        n = view.shape[0]
        for rows in (np.arange(50, 90), np.sort(rng.choice(n, 200, replace=False)), np.array([0, n - 1]),
                     np.sort(rng.choice(n, n // 2, replace=False))):
            np.testing.assert_array_equal(reader.read(rows), np.asarray(view)[rows])


def test_memmaps_are_read_from_their_file_or_their_mapping_as_they_must(tmp_path, small_chunks):
    x, y = dataset()
    # w+: values written but not flushed are in the page cache, which pread reads
    mm = np.lib.format.open_memmap(tmp_path / "w.npy", mode="w+", dtype=np.float32, shape=x.shape)
    mm[:] = x
    a, b, ha, hb = fit_both(x, y, mm, y)
    assert same_weights(a, b) and ha == hb
    # c (copy-on-write): changes live in this process only, so rows are read through the mapping
    cow = np.load(save(tmp_path, "c", np.zeros_like(x)).filename, mmap_mode="c")
    cow[:] = x
    a, b, ha, hb = fit_both(x, y, cow, y)
    assert same_weights(a, b) and ha == hb
    # views: a row range and a column range of a memmap
    whole = save(tmp_path, "x", np.c_[x, x[:, :2]])
    keras.utils.set_random_seed(0)
    a, b, ha, hb = fit_both(x[20:], y[20:], whole[20:, :F], y[20:])
    assert same_weights(a, b) and ha == hb


class Batches(keras.utils.PyDataset):
    """Batches of ``size`` rows of (x, y), counting what fit asks for."""

    def __init__(self, x, y, size, **kwargs):
        super().__init__(**kwargs)
        self.x, self.y, self.size = x, y, size
        self.served, self.epochs_begun, self.epochs_ended = [], 0, 0

    def __len__(self):
        return -(-len(self.x) // self.size)

    def __getitem__(self, i):
        self.served.append(i)
        return self.x[i * self.size:(i + 1) * self.size], self.y[i * self.size:(i + 1) * self.size]

    def on_epoch_begin(self):
        self.epochs_begun += 1

    def on_epoch_end(self):
        self.epochs_ended += 1


def test_a_pydataset_in_order_trains_like_the_same_arrays_unshuffled():
    x, y = dataset()
    ds = Batches(x, y, 16)
    a, b, ha, hb = fit_both(x, y, ds, None, shuffle=False, validation_data=(x[:50], y[:50]))
    assert same_weights(a, b) and ha == hb
    assert ds.epochs_begun == ds.epochs_ended == 3


def test_a_shuffled_pydataset_serves_every_batch_once_per_epoch_in_a_seeded_order():
    x, y = dataset()
    orders = []
    for _ in range(2):
        ds = Batches(x, y, 16)
        model_for().fit(ds, epochs=2, verbose=0)    # seeded by model_for
        orders.append(ds.served)
    steps = len(Batches(x, y, 16))
    assert orders[0] == orders[1]
    for epoch in range(2):
        assert sorted(orders[0][epoch * steps:(epoch + 1) * steps]) == list(range(steps))
    assert orders[0][:steps] != list(range(steps))


def test_steps_per_epoch_limits_a_pydataset_and_predict_evaluate_read_it():
    x, y = dataset()
    ds = Batches(x, y, 16)
    model = model_for()
    model.fit(ds, epochs=2, steps_per_epoch=5, verbose=0)
    assert model.optimizer.iterations == 10
    assert model.evaluate(ds, verbose=0) == model.evaluate(x, y, batch_size=16, verbose=0)
    np.testing.assert_array_equal(model.predict(ds, verbose=0), model.predict(x, batch_size=16, verbose=0))
    assert model.evaluate(ds, steps=2, verbose=0) == model.evaluate(x[:32], y[:32], batch_size=16, verbose=0)


def generator(x, y, sizes, repeat=1):
    for _ in range(repeat):
        pos = 0
        for size in sizes:
            yield x[pos:pos + size], y[pos:pos + size]
            pos += size


def test_a_generator_of_uneven_batches_trains_like_fitting_each_batch_in_turn():
    x, y = dataset()
    sizes = [32, 32, 17, 50, 50, 19]
    a = model_for()
    a.fit(generator(x, y, sizes), epochs=1, verbose=0)
    b = model_for()     # the same seed again: the same dropout masks follow
    pos = 0
    for size in sizes:   # Adam's step count carries over between fit calls
        b.fit(x[pos:pos + size], y[pos:pos + size], batch_size=size, epochs=1, shuffle=False, verbose=0)
        pos += size
    assert same_weights(a, b) and a.optimizer.iterations == len(sizes)


def test_a_generator_with_steps_per_epoch_is_read_across_epochs_and_warns_when_it_runs_out():
    x, y = dataset()
    model = model_for()
    history = model.fit(generator(x, y, [20] * 10, repeat=3), epochs=6, steps_per_epoch=5, verbose=0)
    assert len(history.history["loss"]) == 6 and model.optimizer.iterations == 30
    with pytest.warns(UserWarning, match=r"The training data ran out at epoch 2"):
        history = model.fit(generator(x, y, [20] * 10), epochs=5, verbose=0)
    assert len(history.history["loss"]) == 1
    with pytest.warns(UserWarning, match=r"ran out after 3 of 4 batches in epoch 3"):
        history = model.fit(generator(x, y, [18] * 11), epochs=5, steps_per_epoch=4, verbose=0)
    assert len(history.history["loss"]) == 3


def test_predict_reads_a_generator_of_inputs_alone():
    x, _ = dataset()
    model = model_for()
    out = model.predict((x[i:i + 30] for i in range(0, N, 30)), verbose=0)
    np.testing.assert_array_equal(out, model.predict(x, batch_size=30, verbose=0))


def test_a_bad_batch_is_named_and_its_chunk_never_trained_on():
    x, y = dataset()
    bad = x.copy()
    bad[40, 2] = np.inf
    model = model_for()
    before = model._params.copy()
    with pytest.raises(ValueError, match=r"x of batch 2 of x contains NaN or inf \(first at row 8, column 2\)"):
        model.fit(Batches(bad, y, 16), shuffle=False, verbose=0)
    np.testing.assert_array_equal(model._params, before)   # batches 0-2 form one chunk, checked before it runs
    with pytest.raises(ValueError, match=r"y of a batch of the generator x: labels must be integers in \[0, 2\]"):
        model.fit(generator(x, y + 3, [10] * 20), verbose=0)
    inputs_only = type("InputsOnly", (Batches,), {"__getitem__": lambda self, i: self.x[i * 16:(i + 1) * 16]})
    with pytest.raises(ValueError, match=r"batch 0 of x has no targets: fit and evaluate need \(x, y\) batches"):
        model.fit(inputs_only(x, y, 16), shuffle=False, verbose=0)


@pytest.mark.parametrize("call, match", [
    (lambda m, x, y: m.fit(generator(x, y, [10]), y), r"y must not be given when x is a generator or PyDataset"),
    (lambda m, x, y: m.fit(Batches(x, y, 16), validation_split=0.2), r"validation_split needs arrays"),
    (lambda m, x, y: m.fit(x, y, validation_data=generator(x, y, [10])), r"validation_data is a generator: pass"
                                                                          r" validation_steps"),
    (lambda m, x, y: m.fit(Batches(x, y, 16), steps_per_epoch=0), r"steps_per_epoch must be an integer >= 1"),
    (lambda m, x, y: m.fit(iter([(x[:4], y[:4], np.ones(4)), (x[:4], y[:4])])), r"a batch of the generator x "
                                                                                 r"lacks sample weights, unlike"),
    (lambda m, x, y: m.fit(iter([(x[:4], y[:4], np.ones(4))]), class_weight={0: 2.0}),
     r"cannot use class_weight and sample_weight at the same time"),
    (lambda m, x, y: m.fit(iter([(x[:4], y[:4], -np.ones(4))])), r"sample_weight of a batch of the generator x "
                                                                 r"must be non-negative"),
    (lambda m, x, y: m.fit(iter([(x[:4], y[:4])]), sample_weight=np.ones(4)), r"sample_weight must not be given"),
    (lambda m, x, y: m.fit(iter([{"x": x[:4]}])), r"is a dict; fastnn takes batches as \(x, y\) tuples"),
    (lambda m, x, y: m.fit(iter([(x[:4], y[:4], None, 1)])), r"must be a tuple \(x, y\), \(x, y, sample_weight\) "
                                                             r"or \(x,\), got a tuple of 4"),
    (lambda m, x, y: m.evaluate(iter([])), r"x is an empty generator"),
    (lambda m, x, y: m.predict(iter([])), r"x yielded no batches"),
], ids=["y-with-generator", "split", "val-generator", "steps-0", "mixed-weights", "class-and-sample-weights",
        "negative-weights", "sample-weight-argument", "dict", "four-items", "empty-evaluate", "empty-predict"])
def test_producers_are_refused_with_clear_messages(call, match):
    x, y = dataset()
    with pytest.raises(ValueError, match=match):
        call(model_for(), x, y)


def test_validation_from_a_generator_reads_validation_steps_batches_each_epoch():
    x, y = dataset()
    model = model_for()
    history = model.fit(x, y, epochs=2, verbose=0, validation_data=generator(x, y, [25] * 8, repeat=2),
                        validation_steps=4)
    first = model_for()
    ref = first.fit(x, y, epochs=1, verbose=0, validation_data=(x[:100], y[:100]))
    assert history.history["val_loss"][0] == pytest.approx(ref.history["val_loss"][0], rel=1e-6)
    assert len(history.history["val_loss"]) == 2


@pytest.mark.skipif(not numba.config.BOUNDSCHECK, reason="only under NUMBA_BOUNDSCHECK=1 (.ci/run runs it so)")
def test_bounds_checking_is_live_in_the_compiled_gather():
    """.ci/run reruns the kernel-level tests with NUMBA_BOUNDSCHECK=1: this shows the check is on there."""
    from fastnn.kernels.cpu import engine
    with pytest.raises(IndexError):
        engine._gather_columns(np.zeros(12, np.float32), 3, 0, 3, np.array([0, 1, 9, 2]), 4, np.zeros(12, np.float32), 0)


RSS_CHILD = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import fastnn as keras

    def peak_kib():
        with open("/proc/self/status") as f:
            return int(next(l for l in f if l.startswith("VmHWM")).split()[1])

    x = np.load(sys.argv[1], mmap_mode="r")
    y = np.arange(x.shape[0], dtype=np.float32) % 2
    model = keras.Sequential([keras.layers.Input(shape=x.shape[1:]), keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(1)])
    model.compile(loss="mse", optimizer="sgd")
    model.fit(np.zeros((64, x.shape[1]), np.float32), np.zeros(64, np.float32), verbose=0)   # compile, warm up
    before, steps = peak_kib(), model.optimizer.iterations
    t = time.perf_counter()
    history = model.fit(x, y, epochs=1, batch_size=128, verbose=0)
    print(json.dumps({"before_kib": before, "after_kib": peak_kib(), "seconds": time.perf_counter() - t,
                      "steps": model.optimizer.iterations - steps, "loss": history.history["loss"][0]}))
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads VmHWM from /proc")
def test_one_epoch_over_a_2gb_memmap_keeps_peak_memory_bounded(tmp_path):
    rows, width = 1 << 17, 4096                                  # 2 GiB of float32, rows of 16 KiB
    path = tmp_path / "big.npy"
    big = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, width))   # sparse: instant
    big[::997, ::61] = 1.0
    del big
    try:
        # one Numba thread: this test is about memory, and its time should not depend on how busy the cores are
        env = {**os.environ, "NUMBA_NUM_THREADS": "1",
               "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
        done = subprocess.run([sys.executable, "-c", RSS_CHILD, str(path)], capture_output=True, text=True,
                              env=env, timeout=180)
    finally:
        path.unlink()
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    grown_mib = (report["after_kib"] - report["before_kib"]) / 1024
    assert report["steps"] == rows // 128 and np.isfinite(report["loss"])
    # a chunk's float32 buffer (32 MiB) and the epoch's order (1 MiB), against a 2048 MiB file
    assert grown_mib < 128, f"peak memory grew by {grown_mib:.0f} MiB over one epoch of a 2 GiB memmap"
