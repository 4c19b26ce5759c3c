"""Writes text_datasets_reference.json: Keras 3's ``imdb.load_data`` and ``reuters.load_data`` on small
files in Keras's own format.

Run with a Python that has Keras 3 installed (the committed file: Keras 3.15.1 / TF 2.21):

    python tests/keras_reference/make_text_datasets_reference.py

The raw data (ragged lists of word ranks, labels) are drawn here with NumPy and stored in the json;
a test writes them into ``imdb.npz`` (x_train, y_train, x_test, y_test) and ``reuters.npz`` (x, y)
exactly as Keras's files hold them (object arrays of lists, pickled by ``np.savez``). Keras's
``get_file`` is pointed at those files, so no download happens. Each case records the arguments and
the returned lists and labels (or Keras's error).
"""
import tempfile
from pathlib import Path

import numpy as np

from _common import keras_module, write

keras, tf = keras_module()


def raw_lists(rng, n, vocab=30):
    return [rng.integers(1, vocab, int(rng.integers(2, 9))).tolist() for _ in range(n)]


def object_array(lists):
    out = np.empty(len(lists), dtype=object)
    out[:] = [list(x) for x in lists]
    return out


CASES = {
    "default": {},
    "num_words": {"num_words": 15},
    "skip_top": {"num_words": 20, "skip_top": 6},
    "maxlen": {"maxlen": 7},
    "seed": {"seed": 7},
    "no_start_char": {"start_char": None},
    "no_oov": {"num_words": 12, "oov_char": None},
    "index_from_0": {"index_from": 0, "start_char": None},
    "index_from_5": {"index_from": 5, "start_char": 4, "oov_char": 3, "num_words": 25},
    "maxlen_too_small": {"maxlen": 2},
}


def main():
    from keras.src.datasets import imdb, reuters
    rng = np.random.default_rng(21)
    raw = {"imdb": {"x_train": raw_lists(rng, 12), "y_train": rng.integers(0, 2, 12).tolist(),
                    "x_test": raw_lists(rng, 10), "y_test": rng.integers(0, 2, 10).tolist()},
           "reuters": {"x": raw_lists(rng, 15), "y": rng.integers(0, 46, 15).tolist()}}
    info = {"raw": raw}
    with tempfile.TemporaryDirectory() as tmp:
        files = {}
        for name, arrays in raw.items():
            path = Path(tmp) / f"{name}.npz"
            np.savez(path, **{k: object_array(v) if k.startswith("x") else np.array(v, dtype=np.int64)
                              for k, v in arrays.items()})
            files[name] = str(path)
        for module, name in ((imdb, "imdb"), (reuters, "reuters")):
            module.get_file = lambda fname=None, origin=None, file_hash=None, _p=files[name], **kw: _p
            out = info.setdefault(name, {})
            cases = dict(CASES, **({"test_split": {"test_split": 0.4}} if name == "reuters" else {}))
            for case, kwargs in cases.items():
                rec = {"kwargs": kwargs}
                try:
                    (xa, ya), (xb, yb) = module.load_data(**kwargs)
                    rec.update(x_train=[list(map(int, s)) for s in xa], y_train=np.asarray(ya).tolist(),
                               x_test=[list(map(int, s)) for s in xb], y_test=np.asarray(yb).tolist(),
                               dtypes=[str(xa.dtype), str(np.asarray(ya).dtype)])
                except Exception as e:  # noqa: BLE001
                    rec["error"] = f"{type(e).__name__}: {e}"
                out[case] = rec
    write("text_datasets_reference", {}, info, keras)
    (Path(__file__).parent / "text_datasets_reference.npz").unlink()   # everything is in the json


if __name__ == "__main__":
    main()
