"""Saving under interrupts, kills and full disks: the caller hears of every
fault, the previous file survives it, and nothing is left behind."""
import errno
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import fastnn as keras
from fastnn.saving import atomic

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")])}


def small_model(value=1.0):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.set_weights([np.full(w.shape, value, np.float32) for w in model.get_weights()])
    return model


def dead_pid():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_a_later_save_removes_temp_files_of_dead_writers_only(tmp_path):
    path = tmp_path / "m.keras"
    stale = tmp_path / f".m.keras.{atomic._HOST}-{dead_pid()}.abc123.tmp"
    live = tmp_path / f".m.keras.{atomic._HOST}-{os.getppid()}.def456.tmp"     # a writer still running
    other_host = tmp_path / f".m.keras.0000beef-{dead_pid()}.ghi789.tmp"     # can't tell from here: kept
    other_target = tmp_path / f".n.keras.{atomic._HOST}-{dead_pid()}.jkl000.tmp"
    for p in (stale, live, other_host, other_target):
        p.write_bytes(b"x" * 100)
    small_model().save(path)
    assert not stale.exists()
    assert live.exists() and other_host.exists() and other_target.exists()
    assert keras.models.load_model(path).get_weights()[0][0, 0] == 1.0


def test_a_full_disk_names_the_file_and_keeps_the_old_one(tmp_path, monkeypatch):
    path = tmp_path / "m.weights.h5"
    small_model(1.0).save_weights(path)
    before = path.read_bytes()

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(atomic.os, "fsync", no_space)
    with pytest.raises(OSError, match="No space left on device") as info:
        small_model(2.0).save_weights(path)
    assert info.value.errno == errno.ENOSPC and str(path) in str(info.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.weights.h5"]


_INTERRUPTED_SAVER = textwrap.dedent("""
    import os, signal, sys, threading
    import numpy as np
    import fastnn as keras
    path, rounds = sys.argv[1], int(sys.argv[2])
    model = keras.Sequential([keras.Input((256,)), keras.layers.Dense(1024), keras.layers.Dense(256)])
    model.save(path)
    rng = np.random.default_rng(0)
    caught = 0
    for k in range(rounds):
        # one Ctrl-C at a random moment of a run of saves; the loop must hear of it
        threading.Timer(rng.uniform(0.0, 0.05), os.kill, (os.getpid(), signal.SIGINT)).start()
        try:
            for _ in range(1000):
                model.save(path)
        except KeyboardInterrupt:
            caught += 1
    keras.models.load_model(path)
    print("caught", caught, "leftovers", sorted(n for n in os.listdir(os.path.dirname(path)) if n.endswith(".tmp")))
""")


def test_ctrl_c_during_saves_always_reaches_the_caller(tmp_path):
    rounds = 10
    out = subprocess.run([sys.executable, "-c", _INTERRUPTED_SAVER, str(tmp_path / "m.keras"), str(rounds)],
                         capture_output=True, text=True, env=ENV, timeout=600)
    assert out.returncode == 0, out.stderr
    assert "Exception ignored" not in out.stderr, out.stderr
    assert out.stdout.split() == ["caught", str(rounds), "leftovers", "[]"]


def test_ctrl_c_held_during_a_save_raises_before_the_rename(tmp_path, monkeypatch):
    import signal
    path = tmp_path / "m.keras"
    small_model(1.0).save(path)
    before = path.read_bytes()
    real_write = keras.saving.keras_format.h5_weights.write

    def write_then_interrupt(h5, model):   # Ctrl-C arrives while the weights are being written
        os.kill(os.getpid(), signal.SIGINT)
        real_write(h5, model)
    monkeypatch.setattr(keras.saving.keras_format.h5_weights, "write", write_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        small_model(2.0).save(path)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.keras"]
