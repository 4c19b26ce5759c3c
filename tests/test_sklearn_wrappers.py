"""keras.wrappers.SKLearnClassifier / SKLearnRegressor / SKLearnTransformer against
scikit-learn's conventions: clone, params, pipelines, searches, labels, the shapes of
predict / predict_proba / decision_function / transform, score, pickling, errors,
and scikit-learn's own estimator checks."""
import pickle
import re

import numpy as np

import pytest

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV, RandomizedSearchCV, cross_validate  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

import fastnn as keras  # noqa: E402
from fastnn.wrappers import SKLearnClassifier, SKLearnRegressor, SKLearnTransformer  # noqa: E402


def dynamic_model(X, y, loss, out_activation="softmax", layers=(10,), seed=0, optimizer="rmsprop"):
    """Keras's test builder: input and output sizes from X and y (y as the model sees it)."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Input(shape=X.shape[1:])])
    for units in layers:
        model.add(keras.layers.Dense(units, activation="relu"))
    model.add(keras.layers.Dense(y.shape[1], activation=out_activation))
    model.compile(loss=loss, optimizer=optimizer)
    return model


def build(hidden=16, lr=1e-2, classes=3, seed=0):
    """The README's builder: takes neither X nor y."""
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.layers.Dense(hidden, activation="relu"),
                              keras.layers.Dense(classes, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(lr), loss="sparse_categorical_crossentropy")
    return model


def _blobs(n=150, classes=3, features=4, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(scale=3.0, size=(classes, features))
    y = np.arange(n) % classes
    return centers[y] + rng.normal(size=(n, features)), y


FIT = {"epochs": 10, "verbose": 0}


@pytest.fixture(autouse=True)
def one_thread():
    """These tests fit hundreds of tiny models: on one thread each fit takes milliseconds, while
    two threads spinning against another busy process took seconds (a 2-core machine shared
    with other jobs). What is tested here does not depend on the thread count."""
    import numba
    previous = numba.get_num_threads()
    numba.set_num_threads(1)
    yield
    numba.set_num_threads(previous)


# -- scikit-learn's estimator checks ------------------------------------------------
class _Seeded:
    """The builders below seed fastnn's generator, so fits are reproducible and the
    checks that need that (idempotent fit, pipeline consistency, 1-D vs 2-D y,
    list vs array input, int vs float y) run instead of being skipped."""

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class SeededClassifier(_Seeded, SKLearnClassifier):
    pass


class SeededRegressor(_Seeded, SKLearnRegressor):
    pass


class SeededTransformer(_Seeded, SKLearnTransformer):
    pass


# Minibatch training sees a row of weight 2 once per epoch, a repeated row twice in
# different batches: the fits differ, as for every minibatch SGD estimator.
# A row's float32 outputs can differ in the last bit (3e-8 seen, against rtol 1e-7) with
# the row's place in the batch: the matrix products are split into blocks of rows per
# thread and BLAS computes a block's edge rows with other kernels. Passes on most data.
_EXPECTED_FAILURES = {
    "check_sample_weight_equivalence_on_dense_data": "minibatch SGD: weighting a row is not the same as "
                                                     "repeating it",
    "check_methods_sample_order_invariance": "float32 outputs may differ in the last bit with row order",
}


_ESTIMATOR_CHECKS = parametrize_with_checks(
    [SeededClassifier(dynamic_model, model_kwargs={"loss": "categorical_crossentropy", "layers": [20, 20, 20]},
                      fit_kwargs={"epochs": 5, "verbose": 0}),
     SeededRegressor(dynamic_model, model_kwargs={"loss": "mse", "out_activation": "linear"},
                     fit_kwargs={"verbose": 0}),
     SeededTransformer(dynamic_model, model_kwargs={"loss": "mse", "out_activation": "linear"},
                       fit_kwargs={"verbose": 0})],
    expected_failed_checks=lambda estimator: _EXPECTED_FAILURES)


def _stable_id(obj):
    """scikit-learn's test id without the model function's address, so that parallel
    test workers (pytest-xdist) collect the same ids."""
    return re.sub(r"at0x[0-9a-f]+", "", _ESTIMATOR_CHECKS.kwargs["ids"](obj))


@pytest.mark.parametrize(*_ESTIMATOR_CHECKS.args, ids=_stable_id)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# -- params, clone, pipelines, searches ---------------------------------------------
def test_params_and_clone_follow_sklearn():
    clf = SKLearnClassifier(build, model_kwargs={"hidden": 8}, fit_kwargs=FIT)
    assert clf.get_params() == {"model": build, "warm_start": False, "model_kwargs": {"hidden": 8},
                                "fit_kwargs": FIT}
    twin = clone(clf)
    assert twin.get_params()["fit_kwargs"] == FIT and twin.model is build   # Keras's clone drops fit_kwargs
    twin.set_params(model_kwargs={"hidden": 4}, warm_start=True)
    assert clf.model_kwargs == {"hidden": 8} and twin.warm_start
    X, y = _blobs()
    twin.fit(X, y)
    assert twin.model_.layers[0].get_weights()[0].shape == (4, 4)
    assert not hasattr(clf, "model_") and not hasattr(clone(twin), "model_")
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_pipeline_grid_search_and_cross_validate():
    X, y = _blobs()
    pipe = make_pipeline(StandardScaler(), SKLearnClassifier(build, fit_kwargs=FIT))
    grid = {"sklearnclassifier__model_kwargs": [{"hidden": h, "lr": lr} for h in (4, 16) for lr in (1e-3, 3e-2)]}
    search = GridSearchCV(pipe, grid, cv=3).fit(X, y)
    assert search.best_params_["sklearnclassifier__model_kwargs"] in grid["sklearnclassifier__model_kwargs"]
    assert search.cv_results_["mean_test_score"].shape == (4,)
    assert search.best_score_ > 0.9         # three well separated blobs
    assert search.predict(X[:5]).shape == (5,)
    scores = cross_validate(SKLearnClassifier(build, fit_kwargs=FIT), X, y, cv=3)["test_score"]
    assert scores.shape == (3,) and scores.min() > 0.8
    randomized = RandomizedSearchCV(SKLearnClassifier(build, fit_kwargs=FIT),
                                    {"model_kwargs": [{"hidden": h} for h in (2, 4, 8, 16)]}, n_iter=2, cv=2,
                                    random_state=0).fit(X, y)
    assert len(randomized.cv_results_["params"]) == 2
    # fit_kwargs given to a search's fit reach model.fit: one epoch instead of FIT's ten
    one = GridSearchCV(SKLearnClassifier(build, fit_kwargs=FIT), {"warm_start": [False]}, cv=2).fit(X, y, epochs=1)
    assert one.best_estimator_.epoch_ == 1


# -- labels and output shapes --------------------------------------------------------
@pytest.mark.parametrize("labels", [np.array(["cat", "dog", "emu"]), np.array([3, 7, 10]), np.array([-1.0, 0.0, 2.0])],
                         ids=["strings", "ints", "integral-floats"])
def test_any_class_labels(labels):
    X, y = _blobs()
    clf = SKLearnClassifier(build, fit_kwargs=FIT).fit(X, labels[y])
    np.testing.assert_array_equal(clf.classes_, labels)
    pred = clf.predict(X)
    assert pred.shape == (150,) and set(pred) <= set(labels)
    proba = clf.predict_proba(X[:7])
    assert proba.shape == (7, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    np.testing.assert_array_equal(labels[proba.argmax(1)], pred[:7])
    assert clf.decision_function(X[:7]).shape == (7, 3)
    assert clf.score(X, labels[y]) > 0.9


def _binary_model(out, activation, loss):
    def make():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.layers.Dense(8, activation="relu"), keras.layers.Dense(out, activation=activation)])
        model.compile(optimizer=keras.optimizers.Adam(0.03), loss=loss)
        return model
    return make


@pytest.mark.parametrize("out,activation,loss", [
    (1, "sigmoid", "binary_crossentropy"),
    (1, None, keras.losses.BinaryCrossentropy(from_logits=True)),
    (2, "softmax", "categorical_crossentropy"),
    (2, "softmax", "sparse_categorical_crossentropy"),
    (2, None, keras.losses.SparseCategoricalCrossentropy(from_logits=True)),
], ids=["sigmoid-1", "logit-1", "softmax-onehot", "softmax-sparse", "logits-sparse"])
def test_binary_classifiers_every_output_form(out, activation, loss):
    X, y = _blobs(classes=2)
    labels = np.array(["no", "yes"])[y]
    clf = SKLearnClassifier(_binary_model(out, activation, loss), fit_kwargs=FIT).fit(X, labels)
    assert clf.model_.output_shape == (None, out)
    proba, decision, pred = clf.predict_proba(X), clf.decision_function(X), clf.predict(X)
    assert proba.shape == (150, 2) and decision.shape == (150,) and pred.shape == (150,)
    np.testing.assert_allclose(proba.sum(axis=1), 1, atol=1e-5)
    assert ((proba >= 0) & (proba <= 1)).all()
    # scikit-learn's convention: positive decision <=> classes_[1]
    np.testing.assert_array_equal(np.where(decision > 0, "yes", "no"), pred)
    assert clf.score(X, labels) > 0.9


def test_builder_taking_x_and_y_sees_one_hot_targets():
    seen = {}

    def builder(X, y, hidden):
        seen.update(X=X.shape, y=y.shape, values=np.unique(y))
        return dynamic_model(X, y, "categorical_crossentropy", layers=(hidden,))
    X, y = _blobs()
    SKLearnClassifier(builder, model_kwargs={"hidden": 5}, fit_kwargs={"epochs": 1, "verbose": 0}).fit(X, y)
    assert seen["X"] == (150, 4) and seen["y"] == (150, 3)
    np.testing.assert_array_equal(seen["values"], [0, 1])


def test_regressor_shapes_and_score():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1
    reg = SKLearnRegressor(dynamic_model, model_kwargs={"loss": "mse", "out_activation": "linear",
                                                        "optimizer": keras.optimizers.Adam(0.02)},
                           fit_kwargs={"epochs": 40, "verbose": 0})
    pred = reg.fit(X, y).predict(X)
    assert pred.shape == (200,) and pred.dtype == np.float64
    assert reg.score(X, y) > 0.9
    two = reg.fit(X, np.column_stack([y, -y])).predict(X)
    assert two.shape == (200, 2)
    assert reg.fit(X, y.reshape(-1, 1)).predict(X).shape == (200, 1)


def test_transformer_in_a_pipeline():
    X, y = _blobs()
    embed = SKLearnTransformer(dynamic_model, model_kwargs={"loss": "mse", "out_activation": "linear"},
                               fit_kwargs={"epochs": 5, "verbose": 0})
    target = np.eye(3)[y] @ np.ones((3, 2))
    assert embed.fit(X, target).transform(X).shape == (150, 2)
    # in a pipeline the transformer learns to regress y, and the next step reads its outputs
    pipe = make_pipeline(StandardScaler(), clone(embed), LogisticRegression()).fit(X, y)
    assert pipe[1].transform(X).shape == (150, 1) and pipe.predict(X).shape == (150,)
    assert embed.fit_transform(X, target).shape == (150, 2)


# -- a given model, warm start --------------------------------------------------------
def test_given_model_is_cloned_unless_warm_start():
    X, y = _blobs()
    model = build()
    before = model.get_weights()
    clf = SKLearnClassifier(model, fit_kwargs=FIT).fit(X, y)
    assert clf.model_ is not model
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))   # the param is untouched
    assert clf.model_.optimizer.iterations == 10 * 5
    warm = SKLearnClassifier(model, warm_start=True, fit_kwargs=FIT).fit(X, y)
    assert warm.model_ is model and model.optimizer.iterations == 50
    warm.fit(X, y)
    assert warm.model_ is model and model.optimizer.iterations == 100       # training continued


# -- pickling ------------------------------------------------------------------------
def test_fitted_wrapper_pickles():
    cloudpickle = pytest.importorskip("cloudpickle")
    X, y = _blobs()
    labels = np.array(["a", "b", "c"])[y]
    clf = make_pipeline(StandardScaler(), SKLearnClassifier(build, fit_kwargs=FIT)).fit(X, labels)
    for dumps in (pickle.dumps, cloudpickle.dumps):
        back = pickle.loads(dumps(clf))
        np.testing.assert_array_equal(back.predict_proba(X), clf.predict_proba(X))
        np.testing.assert_array_equal(back.predict(X), clf.predict(X))
    # an unfitted one holding a model instance too
    back = pickle.loads(pickle.dumps(SKLearnClassifier(build(), fit_kwargs=FIT)))
    assert back.fit(X, y).score(X, y) > 0.9


# -- errors --------------------------------------------------------------------------
def test_clear_errors():
    X, y = _blobs()
    uncompiled = keras.Sequential([keras.layers.Dense(3, activation="softmax")])
    with pytest.raises(RuntimeError, match="compiled"):
        SKLearnClassifier(uncompiled).fit(X, y)
    with pytest.raises(TypeError, match="must return a compiled fastnn model"):
        SKLearnClassifier(lambda: "not a model").fit(X, y)
    with pytest.raises(TypeError, match="model must be"):
        SKLearnClassifier(42).fit(X, y)
    with pytest.raises(ValueError, match="4 outputs but y has 3 classes"):
        SKLearnClassifier(build, model_kwargs={"classes": 4}, fit_kwargs=FIT).fit(X, y)
    with pytest.raises(ValueError, match="Unknown label type"):
        SKLearnClassifier(build, fit_kwargs=FIT).fit(X, y + 0.5)
    with pytest.raises(ValueError, match="one class"):
        SKLearnClassifier(build, fit_kwargs=FIT).fit(X, np.zeros(len(X)))
    with pytest.raises(TypeError, match="model_kwargs must be a dict"):
        SKLearnClassifier(build, model_kwargs=[("hidden", 3)]).fit(X, y)
    with pytest.raises(ValueError, match="NaN"):
        SKLearnClassifier(build, fit_kwargs=FIT).fit(np.where(X > 2, np.nan, X), y)
    clf = SKLearnClassifier(build, fit_kwargs=FIT).fit(X, y)
    with pytest.raises(ValueError, match="features"):
        clf.predict(X[:, :3])
    with pytest.raises(ValueError, match="sample_weight"):
        SKLearnClassifier(build, fit_kwargs=FIT).fit(X, y, sample_weight=np.ones(3))


def test_fit_kwargs_are_not_modified():
    X, y = _blobs()
    fit_kwargs = {"epochs": 2, "verbose": 0}
    clf = SKLearnClassifier(build, fit_kwargs=fit_kwargs).fit(X, y, epochs=3, batch_size=64)
    assert fit_kwargs == {"epochs": 2, "verbose": 0} and clf.epoch_ == 3
    assert set(clf.history_) == {"loss"} and len(clf.history_["loss"]) == 3


def test_scikit_learn_is_imported_only_when_used(monkeypatch):
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = ("import sys, fastnn; assert not {'sklearn', 'dask', 'distributed'} & set(sys.modules), "
            "sorted({'sklearn', 'dask', 'distributed'} & set(sys.modules)); "
            "fastnn.wrappers.SKLearnClassifier; assert 'sklearn' in sys.modules")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    subprocess.run([sys.executable, "-c", code], env=env, check=True, timeout=120)
    # without scikit-learn, the classes can be named and say what to install when used
    from fastnn.wrappers import sklearn_wrapper
    monkeypatch.setattr(sklearn_wrapper, "sklearn", None)
    with pytest.raises(ImportError, match=r"fastnn\[distributed\]"):
        SKLearnRegressor(build)


def functional_build(hidden=8, seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(4,))
    outputs = keras.layers.Dense(3, activation="softmax")(keras.layers.Dense(hidden, activation="relu")(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy")
    return model


def test_functional_models_through_a_builder():
    X, y = _blobs()
    labels = np.array(["a", "b", "c"])[y]
    clf = SKLearnClassifier(functional_build, fit_kwargs=FIT).fit(X, labels)
    assert clf.predict_proba(X).shape == (150, 3) and clf.score(X, labels) > 0.9
    search = GridSearchCV(SKLearnClassifier(functional_build, fit_kwargs=FIT),
                          {"model_kwargs": [{"hidden": 4}, {"hidden": 16}]}, cv=2).fit(X, labels)
    assert search.best_score_ > 0.9
    # a functional model instance is cloned (new weights, same compile settings) and left as it was
    given = functional_build()
    before = given.get_weights()
    cloned = SKLearnClassifier(given, fit_kwargs=FIT).fit(X, y)
    assert cloned.model_ is not given and cloned.score(X, y) > 0.9
    assert all(np.array_equal(a, b) for a, b in zip(before, given.get_weights()))
    warm = SKLearnClassifier(given, warm_start=True, fit_kwargs=FIT).fit(X, y)
    assert warm.model_ is given and warm.score(X, y) > 0.9
    back = pickle.loads(pickle.dumps(warm))     # a fitted functional model travels too
    np.testing.assert_array_equal(back.predict_proba(X), warm.predict_proba(X))
