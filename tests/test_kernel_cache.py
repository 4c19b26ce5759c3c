"""Editing any kernel file must invalidate every cached kernel.

Numba stamps a cache entry with its own file's hash only; engine.py's
cached training loop inlines code from optimizers.py, losses.py, ... so a
stale loop would silently keep old maths after an edit (or an upgrade that
changes one file). fastnn.kernels.cache stamps all kernels with one hash of
the whole kernel tree.
"""
from fastnn.kernels import cache
from fastnn.kernels.cpu import engine, optimizers


def test_kernels_are_stamped_with_the_whole_tree():
    for dispatcher in (engine.run_steps, engine.loss_gradients, optimizers.adam):
        locator = dispatcher._cache._impl.locator
        assert isinstance(locator, cache._TreeStamp)
        assert locator.get_source_stamp() == cache.stamp()
        assert cache.stamp().startswith(cache._tree_hash())


def test_tree_hash_changes_with_any_kernel_file(tmp_path, monkeypatch):
    for rel in ("program.py", "cpu/optimizers.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text((cache.KERNEL_DIR / rel).read_text())
    monkeypatch.setattr(cache, "KERNEL_DIR", tmp_path)
    before = cache._tree_hash()
    (tmp_path / "cpu/optimizers.py").write_text((tmp_path / "cpu/optimizers.py").read_text() + "\n# edit\n")
    assert cache._tree_hash() != before


def test_a_model_compiles_only_the_kernel_parts_it_uses():
    """Cold compile is part of the user's wait: a Dense-only MLP trained with
    plain Adam must not compile (or load) the other optimizers, schedules and
    clipping, the other layer kinds, activations other than ReLU and softmax,
    weight penalties, the weighted loss, any loss but its own (sparse
    categorical cross-entropy on the logits of its fused softmax; ``row_loss``
    holds them all) or the forward block that splits large
    inference batches by rows; a model that uses them gets them (sample
    weights run every loss family), and ``predict`` alone compiles no loss.
    Run in
    fresh processes with an empty Numba cache: they see only their own
    compiles, and a function loaded from a cache does not list the
    functions compiled into it. No compile worker: one compiles the model-independent kernels
    (predict's row blocks among them) whatever the model, and this process takes the last of them
    while it waits, so where a CPU was free the probes listed them (on an idle machine, every run)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    probe = """
import numpy as np
import fastnn as keras
from fastnn.kernels import program as P
from fastnn.kernels.cpu import activations, batch_loss, engine, losses, optimizers, regularizers
from fastnn.kernels.kinds import elementwise, merging
x = np.random.default_rng(0).random((40, 6), dtype=np.float32)
y = np.arange(40) % 3
model = keras.Sequential([keras.Input(shape=(6,)), keras.layers.Dense(5, activation="{act}"{reg}), {extra}
                          keras.layers.Dense(3, activation="softmax")])
model.compile(loss="sparse_categorical_crossentropy", optimizer={opt})
if {train}:
    model.fit(x, y, epochs=1, batch_size=8, verbose=0{weights})
model.predict(np.tile(x, (8, 1)), verbose=0{predict})   # 320 rows: batch_size=256 is a full batch
parts = {{"adam": optimizers.adam, "sgd": optimizers.sgd, "prepare_step": optimizers.prepare_step,
         "parallel_update": optimizers.parallel_update,
         "dropout": elementwise.dropout_forward, "merge": merging.merge_forward, "penalty": regularizers.penalty,
         "weighted_loss": batch_loss._batch_loss(P.SCCE, P.ON_LOGITS, True, -1), "elementwise": activations.elementwise,
         "rows_forward": engine._dense_forward_by_rows, "all_losses": losses.row_loss,
         "own_loss": batch_loss._batch_loss(P.SCCE, P.ON_LOGITS, False, -1),
         "other_mode": batch_loss._batch_loss(P.SCCE, P.ON_OUTPUT, False, -1)}}
print(sorted(name for name, fn in parts.items() if fn.signatures))
"""
    root = Path(__file__).resolve().parents[1]
    env = dict(os.environ, PYTHONPATH=str(root) + os.pathsep + os.environ.get("PYTHONPATH", ""))

    def compiled(**options):
        code = probe.format(**{"act": "relu", "reg": "", "extra": "", "opt": '"adam"', "train": True, "weights": "",
                               "predict": "", **options})
        with tempfile.TemporaryDirectory() as cache:
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                 env=dict(env, NUMBA_CACHE_DIR=cache, FASTNN_COMPILE_WORKERS="0"), cwd=root)
        assert out.returncode == 0, out.stderr[-2000:]
        return out.stdout.strip().splitlines()[-1]

    assert compiled() == "['adam', 'own_loss', 'parallel_update']"
    assert compiled(train=False) == "[]"    # predict alone: no optimizer (nor its parallel region), no loss
    assert compiled(act="tanh", reg=', kernel_regularizer="l2"', extra="keras.layers.Dropout(0.5),",
                    opt='keras.optimizers.SGD(momentum=0.9, clipnorm=1.0)',
                    weights=", sample_weight=np.ones(40)", predict=", batch_size=256") == (
        "['all_losses', 'dropout', 'elementwise', 'parallel_update', 'penalty', 'prepare_step', "
        "'rows_forward', 'sgd', 'weighted_loss']")
