"""Generators, PyDatasets and memory-mapped arrays for models of several
inputs and outputs: batches ``((x1, x2), (y1, y2))`` or dicts by name, and
memmaps read a chunk of rows at a time, train exactly as in-memory arrays."""
import numpy as np
import pytest

import fastnn as keras
from fastnn.models import outputs, sources

from test_functional_keras import (ATOL, INFO, RTOL, assert_history, init_weights, ref, two_io_data,
                                   two_io_model)


def compiled_two_io():
    model = two_io_model()
    model.set_weights(init_weights("two_io"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2),
                  loss=["sparse_categorical_crossentropy", "mse"], metrics=[["accuracy"], ["mae"]])
    return model


class Batches(keras.utils.PyDataset):
    """Batches of 16 rows of (x, y) (and sample weights), as tuples or as dicts keyed by name."""

    def __init__(self, x, y, sw=None, dicts=False):
        super().__init__()
        self.x, self.y, self.sw, self.dicts = x, y, sw, dicts

    def __len__(self):
        return len(self.x[0]) // 16

    def __getitem__(self, i):
        rows = slice(16 * i, 16 * i + 16)
        x, y = tuple(a[rows] for a in self.x), tuple(a[rows] for a in self.y)
        if self.dicts:
            x, y = dict(zip(("num_a", "num_b"), x)), dict(zip(("class_output", "reg_output"), y))
        return (x, y) if self.sw is None else (x, y, self.sw[rows])


def test_pydataset_of_tuples_and_dicts_trains_as_keras_did_on_arrays():
    model = compiled_two_io()
    history = model.fit(Batches(*two_io_data("train")), epochs=3, shuffle=False, verbose=0,
                        validation_data=Batches(*two_io_data("valid"), dicts=True))
    assert_history(history.history, INFO["two_io"]["tuple"]["history"])
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, ref("two_io", f"final_tuple/{i}"), rtol=RTOL, atol=ATOL)


def test_generator_evaluate_and_pydataset_predict_equal_the_arrays():
    model = compiled_two_io()
    (x, y) = two_io_data("valid")

    def generator():
        for i in range(2):
            rows = slice(16 * i, 16 * i + 16)
            yield (x[0][rows], x[1][rows]), {"class_output": y[0][rows], "reg_output": y[1][rows]}

    # batch_size 16 for the arrays: the same two batches, summed in the same order
    assert model.evaluate(generator(), verbose=0, return_dict=True) == \
        model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    got = model.predict(Batches(x, y), verbose=0)
    want = model.predict(x, verbose=0)
    assert len(got) == 2
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_batches_with_sample_weights_equal_arrays_with_sample_weight():
    (x, y), sw = two_io_data("train"), np.linspace(0.5, 2.0, 64).astype(np.float32)
    a, b = compiled_two_io(), compiled_two_io()
    ha = a.fit(Batches(x, y, sw), epochs=2, shuffle=False, verbose=0)
    hb = b.fit(x, y, sample_weight=sw, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert ha.history == hb.history
    for u, v in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(u, v)


def test_a_batch_of_the_wrong_structure_is_refused_naming_it():
    (x, y) = two_io_data("train")
    model = compiled_two_io()

    def one_input():
        yield x[0][:16], y

    with pytest.raises(ValueError, match="2 inputs .*pass x of a batch of the generator x as a list"):
        model.fit(one_input(), epochs=1, verbose=0)

    def no_targets():
        yield (x[0][:16], x[1][:16]),

    with pytest.raises(ValueError, match="no targets"):
        model.fit(no_targets(), epochs=1, verbose=0)


def _memmaps(tmp_path, arrays, prefix):
    out = []
    for i, a in enumerate(arrays):
        path = tmp_path / f"{prefix}{i}.npy"
        np.save(path, a)
        out.append(np.load(path, mmap_mode="r"))
    return tuple(out)


def test_memmaps_train_in_chunks_exactly_as_arrays(tmp_path, monkeypatch):
    (x, y) = two_io_data("train")
    xm, ym = _memmaps(tmp_path, x, "x"), _memmaps(tmp_path, y, "y")
    monkeypatch.setattr(sources, "CHUNK_BYTES", 4 * 7 * 32)     # 2 batches of 16 rows of 7 features per chunk
    model = compiled_two_io()
    src = model._io().source(xm, ym, True, None, "x", "y", "steps")
    assert isinstance(src, outputs.MappedIOSource) and src._cap(16) == 32     # read in chunks, not loaded whole
    results = []
    for xs, ys in ((x, y), (xm, ym)):
        model = compiled_two_io()
        keras.utils.set_random_seed(1)    # the same shuffles
        history = model.fit(xs, ys, epochs=3, batch_size=16, verbose=0, validation_split=0.25)
        results.append((history.history, model.get_weights(), model.predict(xs, batch_size=8, verbose=0),
                        model.evaluate(xs, ys, verbose=0)))
    (h1, w1, p1, e1), (h2, w2, p2, e2) = results
    assert h1 == h2 and e1 == e2
    for a, b in zip(w1 + p1, w2 + p2):
        np.testing.assert_array_equal(a, b)


def test_bad_values_in_a_memmap_part_are_refused_naming_it(tmp_path):
    (x, y) = two_io_data("train")
    bad = x[1].copy()
    bad[40, 2] = np.nan
    xm = _memmaps(tmp_path, (x[0], bad), "x")
    model = compiled_two_io()
    with pytest.raises(ValueError, match=r"x\['num_b'\] contains NaN or inf \(first at row 40, column 2\)"):
        model.fit(xm, y, epochs=1, verbose=0)
    labels = y[0].copy()
    labels[3] = 7
    with pytest.raises(ValueError, match="class_output"):
        model.fit(x, _memmaps(tmp_path, (labels, y[1]), "y"), epochs=1, verbose=0)
