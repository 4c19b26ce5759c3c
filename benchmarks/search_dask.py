"""A 16-candidate x 5-fold GridSearchCV on the digits, n_jobs=1 against a Dask cluster.

    python3 benchmarks/search_dask.py [--epochs 20] [--workers 2] [--rounds 2] [--skip-cold]

Prints, on this machine:

1. a cold and a warm worker: the time a fresh worker process takes from
   ``import fastnn`` to the end of its first fit, with an empty Numba cache
   (it compiles the kernels) and with the cache the cold one left (it loads
   them), then its second fit;
2. the search's wall time with ``n_jobs=1`` in this process (fastnn's
   default threads) and on a ``LocalCluster(n_workers=2,
   threads_per_worker=1)`` through joblib's Dask backend (cluster start-up
   timed apart), in interleaved rounds, with the speed-up of the medians.
   (That the two find the same scores is tested, with equal pool sizes, in
   ``tests/test_dask.py``: the pool size changes the last bits.)

Needs ``pip install "fastnn[distributed]"``. Not a test: timings depend on the machine
and on what else runs there.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build(hidden=32, lr=1e-3, seed=0):
    import fastnn as keras
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def digits():
    import fastnn as keras
    (x, y), (xt, yt) = keras.datasets.digits.load_data()
    return np.concatenate([x, xt]).reshape(-1, 64) / 16.0, np.concatenate([y, yt])


def search(epochs, n_jobs):
    from sklearn.model_selection import GridSearchCV
    import fastnn as keras
    grid = {"model_kwargs": [{"hidden": h, "lr": lr} for h in (16, 32, 64, 128) for lr in (1e-3, 3e-3, 1e-2, 3e-2)]}
    clf = keras.wrappers.SKLearnClassifier(build, fit_kwargs={"epochs": epochs, "batch_size": 32, "verbose": 0})
    return GridSearchCV(clf, grid, cv=5, n_jobs=n_jobs)


def first_fits(epochs):
    """In a fresh worker: seconds from import fastnn to the end of the first fit, and of a second fit."""
    t0 = time.perf_counter()
    import fastnn as keras  # noqa: F401  (first import in this process: that is what is timed)
    x, y = digits()
    t1 = time.perf_counter()
    build().fit(x, y, epochs=epochs, verbose=0)
    t2 = time.perf_counter()
    build().fit(x, y, epochs=epochs, verbose=0)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t0, t3 - t2, keras.config.num_threads()


def cold_and_warm(epochs):
    from distributed import Client, LocalCluster
    with tempfile.TemporaryDirectory(prefix="fastnn-numba-cache-") as cache:
        for label in ("cold (empty cache)", "warm (cache the cold worker left)"):
            with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                              dashboard_address=":0", env={"NUMBA_CACHE_DIR": cache}) as cluster, \
                    Client(cluster) as client:
                imported, first, second, threads = client.submit(first_fits, epochs, pure=False).result()
            print(f"  {label:36s} import {imported:5.2f} s, import to end of first fit {first:6.2f} s, "
                  f"second fit {second:5.2f} s  (threads {threads[0]}, from {threads[1]})")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-cold", action="store_true", help="skip the cold/warm worker measurement")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of n_jobs=1 and Dask")
    args = parser.parse_args()

    import cloudpickle
    import joblib
    import numba
    from distributed import Client, LocalCluster
    cloudpickle.register_pickle_by_value(sys.modules[__name__])    # workers need not import this script
    import fastnn as keras
    x, y = digits()
    print(f"digits {x.shape}, 16 candidates x 5 folds = 80 fits + 1 refit, {args.epochs} epochs each; "
          f"this process: {keras.config.num_threads()[0]} Numba threads, {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.1f} (other processes compete for the CPUs)")

    if not args.skip_cold:
        print("worker start-up:")
        cold_and_warm(args.epochs)

    def timed(label, run):
        t = time.perf_counter()
        result = run()
        seconds = time.perf_counter() - t
        busy = (result.cv_results_["mean_fit_time"] + result.cv_results_["mean_score_time"]).sum() * 5
        print(f"  {label:42s} {seconds:7.2f} s   best {result.best_params_['model_kwargs']} "
              f"score {result.best_score_:.4f}; fitting and scoring inside the tasks {busy:.2f} s")
        return seconds, result

    print("search:")
    t = time.perf_counter()
    cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                           dashboard_address=":0")
    client = Client(cluster.scheduler_address)
    client.run(lambda: __import__("fastnn.wrappers"))   # workers import fastnn and sklearn outside the timing
    print(f"  (cluster of {args.workers} workers started and fastnn imported in {time.perf_counter() - t:.2f} s)")
    local, dask = [], []
    try:
        # Interleaved rounds: on a shared machine the load drifts, and a ratio is only
        # meaningful between runs made under the same load.
        for _ in range(args.rounds):
            local.append(timed(f"n_jobs=1, pool of {numba.config.NUMBA_NUM_THREADS} threads",
                               lambda: search(args.epochs, 1).fit(x, y)))
            with joblib.parallel_backend("dask"):
                dask.append(timed(f"Dask, {args.workers} workers x 1 thread",
                                  lambda: search(args.epochs, -1).fit(x, y)))
    finally:
        client.close()
        cluster.close()
    local_s, dask_s = np.median([s for s, _ in local]), np.median([s for s, _ in dask])
    print(f"median of {args.rounds}: n_jobs=1 {local_s:.2f} s, Dask {dask_s:.2f} s; speed-up of Dask "
          f"{local_s / dask_s:.2f}x; load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
