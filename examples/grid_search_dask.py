"""A scikit-learn grid search over fastnn models, spread over a Dask cluster.

16 candidates (hidden units x learning rate) x 5 folds on the digits shipped with
fastnn: 80 fits, run by the cluster's workers, then the best candidate refitted and
scored on the held-out test images. Nothing to download.

    python examples/grid_search_dask.py                      # a local cluster of 2 worker processes
    python examples/grid_search_dask.py --scheduler tcp://scheduler:8786    # a real cluster

Needs ``pip install "fastnn[distributed]"`` here and on every worker (the same fastnn
version, since the models travel to the workers as ``.keras`` bytes). Each worker
trains on as many threads as Dask gave it (``OMP_NUM_THREADS``, which Dask's nanny
sets to 1 per worker thread) and loads the compiled kernels from its on-disk cache
after its first run.
"""
import argparse
import time

import numpy as np

import fastnn as keras


def build(hidden=32, lr=1e-3, seed=0):
    """One candidate. Seeding here makes a candidate train the same on any worker."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(10, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description="Grid search of fastnn models on a Dask cluster.")
    parser.add_argument("--scheduler", help="address of a running Dask scheduler (default: start a local cluster)")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local cluster")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args(argv)

    import joblib
    from dask.distributed import Client, LocalCluster
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    x_train, x_test = x_train.reshape(len(x_train), -1) / 16.0, x_test.reshape(len(x_test), -1) / 16.0

    clf = make_pipeline(StandardScaler(),
                        keras.wrappers.SKLearnClassifier(build, fit_kwargs={"epochs": args.epochs, "verbose": 0}))
    grid = {"sklearnclassifier__model_kwargs": [{"hidden": h, "lr": lr} for h in (16, 32, 64, 128)
                                                for lr in (1e-3, 3e-3, 1e-2, 3e-2)]}
    search = GridSearchCV(clf, grid, cv=args.folds, n_jobs=-1)

    cluster = None
    if args.scheduler:
        client = Client(args.scheduler)
    else:
        # One thread per worker process: each worker trains on its own core.
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, dashboard_address=":0")
        client = Client(cluster)
    try:
        print(f"Dask cluster: {len(client.scheduler_info()['workers'])} workers at {client.scheduler.address}")
        start = time.perf_counter()
        with joblib.parallel_backend("dask"):
            search.fit(x_train, y_train)
        seconds = time.perf_counter() - start
    finally:
        client.close()
        if cluster is not None:
            cluster.close()

    best = search.best_params_["sklearnclassifier__model_kwargs"]
    print(f"{len(grid['sklearnclassifier__model_kwargs'])} candidates x {args.folds} folds in {seconds:.1f} s")
    print(f"best: hidden={best['hidden']}, lr={best['lr']}, cross-validated accuracy {search.best_score_:.4f}")
    ranking = np.argsort(search.cv_results_["rank_test_score"])[:3]
    for i in ranking:
        params = search.cv_results_["params"][i]["sklearnclassifier__model_kwargs"]
        print(f"  {params}: {search.cv_results_['mean_test_score'][i]:.4f} "
              f"+- {search.cv_results_['std_test_score'][i]:.4f}")
    test_accuracy = search.score(x_test, y_test)
    print(f"test accuracy: {test_accuracy:.4f} on {len(x_test)} images")
    return {"best_params": best, "best_score": search.best_score_, "test_accuracy": test_accuracy}


if __name__ == "__main__":
    main()
