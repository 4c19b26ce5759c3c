"""A file truncated behind a memory-mapped input during fit: reading the
lost pages through the mapping would kill the process with SIGBUS, so every
kind of memmap input gets a ValueError instead (read-only, copy-on-write,
strided views, plain arrays viewing a mapping)."""
import os
import subprocess
import sys
import textwrap

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_TRUNCATE_DURING_FIT = textwrap.dedent("""
    import os, sys
    import numpy as np
    import fastnn as keras
    path, kind = sys.argv[1], sys.argv[2]
    rng = np.random.default_rng(0)
    np.save(path, rng.random((4096, 16), dtype=np.float32))
    y = rng.integers(0, 2, 4096)
    x = np.load(path, mmap_mode="c" if kind == "copy-on-write" else "r")
    if kind == "strided view":
        x = x[:, ::2]
    elif kind == "plain view":
        x = np.asarray(x)
    model = keras.Sequential([keras.Input(x.shape[1:]), keras.layers.Dense(2, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd")

    class Truncate(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 2:
                os.truncate(path, 128)
    try:
        model.fit(x, y, batch_size=32, epochs=1, verbose=0, callbacks=[Truncate()])
        print("trained")
    except ValueError as e:
        print("ValueError:", e)
""")


@pytest.mark.skipif(not hasattr(os, "truncate"), reason="needs os.truncate")
@pytest.mark.parametrize("kind", ["read-only", "copy-on-write", "strided view", "plain view"])
def test_a_file_truncated_behind_a_memmap_during_fit_raises_a_clear_error(tmp_path, kind):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", _TRUNCATE_DURING_FIT, str(tmp_path / "x.npy"), kind],
                         capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, f"exit {out.returncode}: {out.stderr[-2000:]}"
    if kind == "plain view":     # fit copied it in memory before training: the file is not read again
        assert out.stdout == "trained\n", out.stdout
    else:
        assert out.stdout.startswith("ValueError: the file behind the memory-mapped array ends before byte"), \
            out.stdout
        assert "was it truncated?" in out.stdout
