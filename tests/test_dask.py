"""A GridSearchCV over a Dask cluster of 2 worker processes on 127.0.0.1 finds the
same best parameters and scores as the same search with n_jobs=1; each worker
trains on one thread (fastnn sizes its pool from Dask's OMP_NUM_THREADS=1) and
loads the compiled kernels from the on-disk cache instead of compiling them.

About 10 s on 2 cores: most of it is starting the two worker processes."""
import os
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn")
distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
import joblib  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import fastnn as keras  # noqa: E402


def build(hidden=16, lr=1e-3, seed=0):
    """The README's builder, seeded: the same candidate gives the same model on any worker."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def worker_report():
    """(Numba threads, what sized them, kernel cache hits, kernel cache misses) in this process."""
    from numba.core.dispatcher import Dispatcher
    hits = misses = 0
    for name, module in list(sys.modules.items()):
        if not name.startswith("fastnn.kernels.cpu"):
            continue
        for obj in vars(module).values():
            if isinstance(obj, Dispatcher):
                hits += sum(obj.stats.cache_hits.values())
                misses += sum(obj.stats.cache_misses.values())
    threads, source = keras.config.num_threads()
    return threads, source, hits, misses


def _search():
    grid = {"sklearnclassifier__model_kwargs": [{"hidden": h, "lr": lr} for h in (8, 32) for lr in (1e-3, 1e-2)]}
    clf = make_pipeline(StandardScaler(), keras.wrappers.SKLearnClassifier(build, fit_kwargs={"epochs": 4,
                                                                                            "verbose": 0}))
    return GridSearchCV(clf, grid, cv=3, n_jobs=-1)


@pytest.fixture(scope="module")
def client():
    # Functions of this module travel by value: the workers need not import the tests.
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    # The workers inherit this environment: without NUMBA_NUM_THREADS in it, they size
    # their pools from the OMP_NUM_THREADS=1 Dask's nanny gives them, the case under test.
    saved = os.environ.pop("NUMBA_NUM_THREADS", None)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=":0", silence_logs=40)
    # Connect by address, as to a remote scheduler: Client("tcp://scheduler:8786").
    client = distributed.Client(cluster.scheduler_address)
    if saved is not None:
        os.environ["NUMBA_NUM_THREADS"] = saved
    try:
        yield client
    finally:
        client.close()
        cluster.close()
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def _digits():
    (x, y), _ = keras.datasets.digits.load_data()
    return x[:600].reshape(600, -1).astype(np.float64), y[:600]


def _search_n_jobs_1():
    x, y = _digits()
    return _search().set_params(n_jobs=1).fit(x, y)


def test_grid_search_on_dask_equals_n_jobs_1(client):
    import concurrent.futures
    import multiprocessing
    x, y = _digits()
    # Each matrix product is split into one block per thread of the process's pool
    # (NUMBA_NUM_THREADS), and the blocks change the last bits of the weights. So the
    # n_jobs=1 search runs in a process sized as the workers are (OMP_NUM_THREADS=1, the
    # variable Dask's nanny sets): then the results must be identical.
    saved = {k: os.environ.pop(k, None) for k in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS")}
    os.environ["OMP_NUM_THREADS"] = "1"
    try:
        with concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            local = pool.submit(_search_n_jobs_1).result(timeout=300)
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
    with joblib.parallel_backend("dask"):
        remote = _search().fit(x, y)
    assert remote.best_params_ == local.best_params_
    assert remote.best_score_ == local.best_score_
    for key in [k for k in local.cv_results_ if k.startswith("split") or k == "mean_test_score"]:
        np.testing.assert_array_equal(remote.cv_results_[key], local.cv_results_[key], err_msg=key)
    assert local.best_score_ > 0.8     # a real search, not all-equal chance scores
    np.testing.assert_array_equal(remote.predict(x), local.predict(x))

    reports = client.run(worker_report)
    assert len(reports) == 2
    for threads, source, hits, misses in reports.values():
        assert (threads, source) == (1, "OMP_NUM_THREADS")
        # the kernels the baseline compiled (or found) on disk were loaded, none compiled again
        assert hits > 0 and misses == 0


def test_worker_thread_count_follows_numba_num_threads(client):
    """NUMBA_NUM_THREADS in a worker's environment wins over Dask's OMP_NUM_THREADS=1."""
    cluster = distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                                       dashboard_address=":0", silence_logs=40, env={"NUMBA_NUM_THREADS": "2"})
    try:
        with distributed.Client(cluster) as other:
            [(threads, source, _, _)] = other.run(worker_report).values()
    finally:
        cluster.close()
    assert (threads, source) == (2, "NUMBA_NUM_THREADS")


def test_example_runs_against_a_scheduler_address(client, capsys):
    """examples/grid_search_dask.py pointed at a running scheduler, as at a real cluster."""
    import runpy
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples",
                        "grid_search_dask.py")
    main = runpy.run_path(path, run_name="example_grid_search_dask")["main"]
    result = main(["--scheduler", client.scheduler.address, "--epochs", "3", "--folds", "2"])
    out = capsys.readouterr().out
    assert "Dask cluster: 2 workers" in out and "16 candidates x 2 folds" in out
    assert result["best_score"] > 0.8 and result["test_accuracy"] > 0.8     # chance: 0.1
