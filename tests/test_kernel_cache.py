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
    for dispatcher in (engine.train_steps, engine.infer_steps, optimizers.adam):
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
