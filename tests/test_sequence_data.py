"""pad_sequences and the IMDB / Reuters loaders against Keras 3's results
(``keras_reference/make_recurrent_reference.py`` for pad_sequences,
``keras_reference/make_text_datasets_reference.py`` for the loaders, on small
files in Keras's own format that these tests write)."""
import ast
import json
import pickle
from pathlib import Path

import numpy as np
import pytest

import fastnn as keras
from fastnn.datasets import imdb, reuters

HERE = Path(__file__).with_name("keras_reference")
PAD = json.loads((HERE / "rnn_layers_reference.json").read_text())["pad_sequences"]
TEXT = json.loads((HERE / "text_datasets_reference.json").read_text())


def _arg(text):
    """A recorded argument (repr text) back as a value."""
    if text.startswith("array("):
        return np.array(ast.literal_eval(text[len("array("):-1].replace("\n", "")))
    if text == "<class 'object'>":
        return object
    if text == "nan":
        return float("nan")
    return ast.literal_eval(text)


def _sequences(text):
    if text.startswith("[array("):
        return [np.array(ast.literal_eval(part.split(")")[0])) for part in text.split("array(")[1:]]
    return _arg(text)


@pytest.mark.parametrize("case", sorted(PAD))
def test_pad_sequences_matches_keras(case):
    rec = PAD[case]
    sequences = _sequences(rec["sequences"])
    kwargs = {k: _arg(v) for k, v in rec["kwargs"].items()}
    if "error" in rec:
        kind = rec["error"].split(":")[0]
        with pytest.raises(OverflowError if kind == "OverflowError" else ValueError):
            keras.utils.pad_sequences(sequences, **kwargs)
        return
    out = keras.utils.pad_sequences(sequences, **kwargs)
    assert out.shape == tuple(rec["shape"])
    assert str(out.dtype) == rec["dtype"]
    expected = np.array(rec["result"], dtype=out.dtype).reshape(out.shape)
    if out.dtype.kind == "f":
        np.testing.assert_array_equal(out, expected)     # NaN padding compares equal to NaN here
    else:
        assert out.tolist() == expected.tolist()


def test_pad_sequences_is_also_in_keras_preprocessing():
    assert keras.preprocessing.sequence.pad_sequences is keras.utils.pad_sequences


def _object_array(lists):
    out = np.empty(len(lists), dtype=object)
    out[:] = [list(x) for x in lists]
    return out


def _write(folder, name):
    """Keras's file for ``name`` (object arrays of lists, pickled by np.savez, as Keras's own files)."""
    raw = TEXT["raw"][name]
    path = folder / f"{name}.npz"
    np.savez(path, **{k: _object_array(v) if k.startswith("x") else np.array(v, dtype=np.int64)
                      for k, v in raw.items()})
    return path


@pytest.mark.parametrize("name", ["imdb", "reuters"])
def test_load_data_matches_keras(name, tmp_path):
    module = {"imdb": imdb, "reuters": reuters}[name]
    path = _write(tmp_path, name)
    for case, rec in TEXT[name].items():
        if "error" in rec:     # Keras: a ValueError (for Reuters, max() of an empty list)
            assert rec["error"].startswith("ValueError")
            with pytest.raises(ValueError, match="maxlen"):
                module.load_data(path=path, **rec["kwargs"])
            continue
        (xa, ya), (xb, yb) = module.load_data(path=path, **rec["kwargs"])
        assert xa.dtype == object and [list(s) for s in xa] == rec["x_train"], case
        assert [list(s) for s in xb] == rec["x_test"], case
        assert ya.tolist() == rec["y_train"] and yb.tolist() == rec["y_test"], case


def test_files_are_found_in_the_data_dir_then_keras_cache(tmp_path, monkeypatch):
    home = tmp_path / "home"
    (home / ".keras" / "datasets").mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("FASTNN_DATA_DIR", raising=False)
    _write(home / ".keras" / "datasets", "imdb")
    expected = TEXT["imdb"]["default"]["x_train"]
    assert [list(s) for s in imdb.load_data()[0][0]] == expected
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    raw = TEXT["raw"]["imdb"]
    np.savez(data_dir / "imdb.npz", x_train=_object_array(raw["x_train"][::-1]), y_train=np.array(raw["y_train"]),
             x_test=_object_array(raw["x_test"]), y_test=np.array(raw["y_test"]))
    monkeypatch.setenv("FASTNN_DATA_DIR", str(data_dir))
    assert [list(s) for s in imdb.load_data()[0][0]] != expected     # the data dir comes first
    (data_dir / "imdb_word_index.json").write_text(json.dumps({"the": 1, "movie": 2}))
    assert imdb.get_word_index() == {"the": 1, "movie": 2}


def test_a_missing_explicit_path_is_an_error_without_download(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        imdb.load_data(path=tmp_path / "nothing.npz")


class _Boom:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_files_that_unpickle_anything_but_arrays_are_refused(tmp_path, capsys):
    path = tmp_path / "imdb.npz"
    bad = np.empty(1, dtype=object)
    bad[0] = _Boom()
    np.savez(path, x_train=bad, y_train=np.zeros(1), x_test=bad, y_test=np.zeros(1))
    with pytest.raises(ValueError, match="only NumPy arrays"):
        imdb.load_data(path=path)
    assert "must never run" not in capsys.readouterr().out


def test_bad_arguments_are_refused(tmp_path):
    path = _write(tmp_path, "reuters")
    with pytest.raises(ValueError, match="test_split"):
        reuters.load_data(path=path, test_split=1.5)
    with pytest.raises(ValueError, match="num_words"):
        reuters.load_data(path=path, num_words=2.5)
