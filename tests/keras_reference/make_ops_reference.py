"""Writes ops_reference.{npz,json}: Keras 3's keras.ops values and a custom-layer/custom-loss model.

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_ops_reference.py

Training parity (issue 20): ``keras.Sequential([Input((6,)), Linear(8),
Activation("tanh"), Linear(2)])`` with the issue's ``Linear`` layer
(``keras.ops.matmul(inputs, self.w) + self.b``, random_normal / zeros
weights, replaced by stored NumPy-drawn values) and the issue's
``custom_mean_squared_error`` (``mean(square(y_true - y_pred), axis=-1)``),
Adam(1e-2), 3 epochs, batch 16, shuffle=False, validation_data. The same run
with Dense layers and loss="mse" (``builtin``) shows Keras gives the same
numbers. Also: the issue's CategoricalTruePositives metric on a softmax model
(history values show its per-epoch accumulation), a per-batch learning-rate
callback (``lr * 1.1`` through tf.keras.backend.get_value -- Keras 3's keras.backend has none -- and assignment, as
Hands-On's exponential schedule callback), and some keras.backend facts.

``ops/<case>``: the value of ``keras.ops.<call>`` on fixed inputs (``in/<name>``);
the json gives the expression, result dtype and shape, or the error raised.
"""
import numpy as np

from _common import HERE, history_dict, keras_module, summary_text, weight_records, write

keras, tf = keras_module()
L = keras.layers
ops = keras.ops
MODELS = HERE / "models"


@keras.saving.register_keras_serializable(package="fastnn_reference")
class Linear(keras.layers.Layer):
    def __init__(self, units=32, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal", trainable=True)
        self.b = self.add_weight(shape=(self.units,), initializer="zeros", trainable=True)

    def call(self, inputs):
        return keras.ops.matmul(inputs, self.w) + self.b

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def custom_mean_squared_error(y_true, y_pred):
    return keras.ops.mean(keras.ops.square(y_true - y_pred), axis=-1)


class CategoricalTruePositives(keras.metrics.Metric):
    def __init__(self, name="categorical_true_positives", **kwargs):
        super().__init__(name=name, **kwargs)
        self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = keras.ops.reshape(keras.ops.argmax(y_pred, axis=1), (-1, 1))
        values = keras.ops.cast(y_true, "int32") == keras.ops.cast(y_pred, "int32")
        self.true_positives.assign_add(keras.ops.sum(keras.ops.cast(values, "float32")))

    def result(self):
        return self.true_positives


class CategoricalTruePositivesCopy(CategoricalTruePositives):
    """The same metric, but result() returns a new tensor instead of the variable itself."""

    def result(self):
        return keras.ops.add(self.true_positives, 0.0)


def training(arrays, info):
    rng = np.random.default_rng(20)
    x = rng.standard_normal((96, 6)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]) + 0.5 * x[:, 1], x[:, 2] * x[:, 3]], axis=1).astype(np.float32)
    arrays.update({"data/x": x, "data/y": y})
    init = [rng.normal(0, 0.3, (6, 8)).astype(np.float32), rng.uniform(-0.1, 0.1, 8).astype(np.float32),
            rng.normal(0, 0.3, (8, 2)).astype(np.float32), rng.uniform(-0.1, 0.1, 2).astype(np.float32)]
    for i, w in enumerate(init):
        arrays[f"linear/init/{i}"] = w
    info["data"] = {"train": "rows 0:64", "valid": "rows 64:96"}
    for name in ("linear", "builtin"):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        if name == "linear":
            layers = [Linear(8), L.Activation("tanh"), Linear(2)]
            loss = custom_mean_squared_error
        else:
            layers = [L.Dense(8), L.Activation("tanh"), L.Dense(2)]
            loss = "mse"
        model = keras.Sequential([L.Input((6,)), *layers])
        model.set_weights(init)
        d = info.setdefault(name, {})
        d["weights_init"] = weight_records(model, f"{name}/init_check", {})
        d["summary_untrained"] = summary_text(model)
        d["config"] = model.get_config()
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss=loss)
        hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(x[64:], y[64:]))
        d["compile"] = f"optimizer=Adam(1e-2), loss={'custom_mean_squared_error' if name == 'linear' else 'mse'}"
        d["history"] = history_dict(hist)
        d["evaluate"] = float(model.evaluate(x[64:], y[64:], verbose=0))
        d["weights_final"] = weight_records(model, f"{name}/final", arrays)
        arrays[f"{name}/predict_valid"] = np.asarray(model.predict(x[64:], verbose=0))
        if name == "linear":
            model.save(MODELS / "ops_linear.keras")
            d["keras_file"] = ("models/ops_linear.keras: Linear registered as 'fastnn_reference>Linear'; the loss is "
                               "saved by name; load with custom_objects={'Linear': ..., "
                               "'custom_mean_squared_error': ...} (predictions: linear/predict_valid)")
            back = keras.saving.load_model(MODELS / "ops_linear.keras",
                                           custom_objects={"custom_mean_squared_error": custom_mean_squared_error})
            d["reload_max_abs_diff"] = float(np.max(np.abs(back.predict(x[64:], verbose=0)
                                                           - arrays["linear/predict_valid"])))
    info["linear_vs_builtin_max_abs_weight_diff"] = float(max(
        np.max(np.abs(arrays[f"linear/final/{i}"] - arrays[f"builtin/final/{i}"])) for i in range(4)))

    # the CategoricalTruePositives metric (labels of shape (n,), so the guide's
    # reshape(argmax, (-1, 1)) compares every row with every row of the batch: 16x16 pairs)
    labels = np.argmax(x[:, :3], axis=1).astype(np.int64)
    arrays["ctp/y"] = labels
    ctp_init = [rng.normal(0, 0.3, (6, 3)).astype(np.float32), np.zeros(3, np.float32)]
    arrays["ctp/init/0"], arrays["ctp/init/1"] = ctp_init
    for name, metric in (("ctp", CategoricalTruePositives), ("ctp_copy", CategoricalTruePositivesCopy)):
        keras.backend.clear_session()
        model = keras.Sequential([L.Input((6,)), Linear(3), L.Activation("softmax")])
        model.set_weights(ctp_init)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                      metrics=[metric()])
        hist = model.fit(x[:64], labels[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(x[64:], labels[64:]))
        info[name] = {"compile": f"SGD(0.1), sparse_categorical_crossentropy, metrics=[{metric.__name__}()]",
                      "history": history_dict(hist),
                      "evaluate_dict": {k: float(v) for k, v in model.evaluate(x[64:], labels[64:], verbose=0,
                                                                                return_dict=True).items()}}
        for i, w in enumerate(model.get_weights()):
            arrays[f"{name}/final/{i}"] = w
    info["ctp"]["note"] = ("result() returns the Variable itself: the logged train value aliases the variable, "
                           "which validation then overwrites, so History's train entries equal the val entries; "
                           "ctp_copy (result() = ops.add(var, 0.0)) shows the true per-epoch counts "
                           "(summed over the epoch's batches, reset per epoch); evaluate() defaults to batch_size=32, "
                           "so its count (32x32 pairs) differs from fit's validation count (two 16x16 batches)")

    # per-batch learning-rate change through keras.backend and assignment
    keras.backend.clear_session()
    lrs = []

    class Grow(keras.callbacks.Callback):
        def on_batch_end(self, batch, logs=None):
            # Keras 3's keras.backend has no get_value; tf.keras.backend (keras._tf_keras) has it
            lr = tf.keras.backend.get_value(self.model.optimizer.learning_rate)
            lrs.append(float(lr))
            self.model.optimizer.learning_rate = lr * 1.1

    model = keras.Sequential([L.Input((6,)), L.Dense(8, activation="tanh"), L.Dense(2)])
    model.set_weights(init)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.01), loss="mse")
    hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0, callbacks=[Grow()])
    lr_var = model.optimizer.learning_rate
    info["lr_callback"] = {
        "compile": "SGD(0.01), mse; callback on_batch_end: lr = tf.keras.backend.get_value(opt.learning_rate); "
                   "opt.learning_rate = lr * 1.1",
        "history": history_dict(hist), "lr_seen_by_callback": lrs,
        "get_value_type": type(tf.keras.backend.get_value(lr_var)).__name__,
        "learning_rate_type": type(lr_var).__name__,
        "learning_rate_numpy": float(np.asarray(lr_var.numpy() if hasattr(lr_var, "numpy") else lr_var)),
        "iterations": int(np.asarray(model.optimizer.iterations.numpy())),
        "iterations_type": type(model.optimizer.iterations).__name__}
    for i, w in enumerate(model.get_weights()):
        arrays[f"lr_callback/final/{i}"] = w
    sched = keras.optimizers.schedules.ExponentialDecay(0.1, decay_steps=4, decay_rate=0.5)
    opt = keras.optimizers.SGD(learning_rate=sched)
    info["lr_callback"]["schedule_learning_rate_type"] = type(opt.learning_rate).__name__
    info["lr_callback"]["schedule_learning_rate_value_at_0"] = float(np.asarray(opt.learning_rate))

    keras.backend.clear_session()
    names = [L.Dense(1).name, L.Dense(1).name]
    keras.backend.clear_session()
    names.append(L.Dense(1).name)
    info["backend"] = {"floatx": keras.backend.floatx(), "epsilon": keras.backend.epsilon(),
                       "image_data_format": keras.backend.image_data_format(),
                       "dense_names_before_and_after_clear_session": names,
                       "keras_backend_public_names": [n for n in dir(keras.backend) if not n.startswith("_")],
                       "keras_backend_has_get_value": hasattr(keras.backend, "get_value"),
                       "tf_keras_backend_has_get_value": hasattr(tf.keras.backend, "get_value"),
                       "tf_keras_backend_has_set_value": hasattr(tf.keras.backend, "set_value"),
                       "tf_keras_module": tf.keras.__name__}


# ---------------------------------------------------------------- keras.ops values
def ops_values(arrays, info):
    rng = np.random.default_rng(2020)
    I = {
        "a": rng.standard_normal((2, 3)).astype(np.float32),
        "b": rng.standard_normal((3,)).astype(np.float32),
        "c": rng.standard_normal((2, 1, 3)).astype(np.float32),
        "d": rng.standard_normal((4, 1)).astype(np.float32),
        "m": rng.standard_normal((3, 4)).astype(np.float32),
        "bm": rng.standard_normal((2, 2, 3)).astype(np.float32),
        "p": np.abs(rng.standard_normal((2, 3))).astype(np.float32) + 0.1,
        "big": (rng.standard_normal((2, 4)) * 30).astype(np.float32),
        "wide": np.linspace(-6, 6, 13).astype(np.float32),
        "ties": np.array([[1.0, 3.0, 3.0], [2.0, 2.0, -1.0]], np.float32),
        "i": np.array([[1, 5, 2], [7, 0, 3]], np.int32),
        "f64": rng.standard_normal((2, 3)),
        "idx": np.array([0, 2, 1, 3], np.int32),
        "idx_neg": np.array([0, -1, 2], np.int32),
        "nan": np.array([1.0, np.nan, -2.0], np.float32),
    }
    for k, v in I.items():
        arrays[f"in/{k}"] = v
    a, b, c, d, m, bm, p, big, wide, ties, i, f64 = (I[k] for k in
                                                      ("a", "b", "c", "d", "m", "bm", "p", "big", "wide", "ties", "i", "f64"))
    cases = {
        # arithmetic and broadcasting
        "add_a_b": "ops.add(a, b)", "subtract_c_d": "ops.subtract(c, d)", "multiply_c_d": "ops.multiply(c, d)",
        "divide_a_p": "ops.divide(a, p)", "divide_int": "ops.divide(i, 2)", "true_divide_int": "ops.true_divide(i, i + 1)",
        "floor_divide_int": "ops.floor_divide(i, 2)", "mod_float": "ops.mod(a, 0.7)",
        "power_p_1.5": "ops.power(p, 1.5)", "power_int": "ops.power(i, 2)",
        "square": "ops.square(a)", "sqrt": "ops.sqrt(p)", "exp": "ops.exp(a)", "log": "ops.log(p)",
        "log_int": "ops.log(i + 1)", "abs": "ops.abs(a)", "negative": "ops.negative(a)", "sign": "ops.sign(a)",
        "clip": "ops.clip(a, -0.5, 0.5)", "where": "ops.where(a > 0, a, b)", "where_scalar": "ops.where(a > 0, a, 0.0)",
        "maximum_bcast": "ops.maximum(c, d)", "minimum_scalar": "ops.minimum(a, 0.1)",
        "greater": "ops.greater(a, b)", "equal_int": "ops.equal(i, 3)", "less_equal": "ops.less_equal(a, 0.0)",
        "operator_add_scalar": "ops.convert_to_tensor(a) + 1", "operator_mul_bcast": "ops.convert_to_tensor(c) * d",
        "operator_rsub": "1.0 - ops.convert_to_tensor(a)", "operator_pow": "ops.convert_to_tensor(p) ** 2",
        "operator_gt": "ops.convert_to_tensor(a) > 0", "operator_matmul": "ops.convert_to_tensor(a) @ m",
        "operator_neg": "-ops.convert_to_tensor(a)", "operator_truediv_int": "ops.convert_to_tensor(i) / 2",
        # activations
        "relu": "ops.relu(wide)", "relu6": "ops.relu6(wide)", "sigmoid": "ops.sigmoid(wide)", "tanh": "ops.tanh(wide)",
        "softmax": "ops.softmax(big)", "softmax_axis0": "ops.softmax(big, axis=0)", "log_softmax": "ops.log_softmax(big)",
        "log_softmax_axis0": "ops.log_softmax(big, axis=0)", "elu": "ops.elu(wide)", "elu_alpha0.5": "ops.elu(wide, alpha=0.5)",
        "selu": "ops.selu(wide)", "gelu": "ops.gelu(wide)", "gelu_exact": "ops.gelu(wide, approximate=False)",
        "softplus": "ops.softplus(wide)", "silu": "ops.silu(wide)", "swish": "ops.swish(wide)",
        "leaky_relu": "ops.leaky_relu(wide)", "leaky_relu_0.3": "ops.leaky_relu(wide, negative_slope=0.3)",
        "hard_sigmoid": "ops.hard_sigmoid(wide)", "softsign": "ops.softsign(wide)", "mish": "ops.mish(wide)",
        "keras_activations_gelu": "keras.activations.gelu(wide)", "keras_activations_softmax_3d": "keras.activations.softmax(bm)",
        "keras_activations_leaky_relu": "keras.activations.leaky_relu(wide)",
        # reductions
        "sum_all": "ops.sum(a)", "sum_0": "ops.sum(a, axis=0)", "sum_1_keepdims": "ops.sum(a, axis=1, keepdims=True)",
        "sum_01": "ops.sum(bm, axis=(0, 2))", "sum_neg1": "ops.sum(bm, axis=-1)", "sum_int": "ops.sum(i)",
        "sum_bool": "ops.sum(a > 0)", "mean_all": "ops.mean(a)", "mean_0_keepdims": "ops.mean(bm, axis=0, keepdims=True)",
        "mean_int": "ops.mean(i)", "mean_int_axis": "ops.mean(i, axis=1)", "max_1": "ops.max(a, axis=1)",
        "max_all": "ops.max(a)", "min_0_keepdims": "ops.min(a, axis=0, keepdims=True)", "max_int": "ops.max(i, axis=0)",
        "logsumexp_all": "ops.logsumexp(big)", "logsumexp_1": "ops.logsumexp(big, axis=1)",
        "logsumexp_1_keepdims": "ops.logsumexp(big, axis=1, keepdims=True)",
        "argmax_1": "ops.argmax(ties, axis=1)", "argmax_0": "ops.argmax(ties, axis=0)", "argmax_none": "ops.argmax(ties)",
        "argmin_1": "ops.argmin(ties, axis=1)", "argmax_keepdims": "ops.argmax(a, axis=-1, keepdims=True)",
        "prod_1": "ops.prod(p, axis=1)", "std_0": "ops.std(a, axis=0)", "var_all": "ops.var(a)",
        "any_1": "ops.any(a > 1, axis=1)", "all_0": "ops.all(a > -1, axis=0)", "cumsum_1": "ops.cumsum(a, axis=1)",
        "max_nan": "ops.max(nan)", "sum_nan": "ops.sum(nan)", "argmax_nan": "ops.argmax(nan)",
        # linear algebra and shapes
        "matmul": "ops.matmul(a, m)", "matmul_batched": "ops.matmul(bm, m)", "matmul_vec_mat": "ops.matmul(b, m)",
        "matmul_mat_vec": "ops.matmul(a, b)", "dot_mat": "ops.dot(a, m)", "dot_vec": "ops.dot(b, b)",
        "matmul_int": "ops.matmul(i, ops.transpose(i))",
        "reshape": "ops.reshape(bm, (3, -1))", "reshape_flat": "ops.reshape(bm, (-1,))",
        "transpose": "ops.transpose(bm)", "transpose_perm": "ops.transpose(bm, (0, 2, 1))",
        "expand_dims_0": "ops.expand_dims(a, 0)", "expand_dims_neg1": "ops.expand_dims(a, -1)",
        "squeeze_all": "ops.squeeze(c)", "squeeze_1": "ops.squeeze(c, axis=1)",
        "concatenate_0": "ops.concatenate([a, a], axis=0)", "concatenate_default": "ops.concatenate([a, p])",
        "stack_0": "ops.stack([a, p])", "stack_1": "ops.stack([a, p], axis=1)",
        "slice_basic": "ops.convert_to_tensor(bm)[:, 1]", "slice_step": "ops.convert_to_tensor(bm)[..., ::2]",
        "slice_neg": "ops.convert_to_tensor(a)[-1]", "slice_newaxis": "ops.convert_to_tensor(a)[:, None, 1:]",
        "tile": "ops.tile(b, (2, 1))", "repeat": "ops.repeat(a, 2, axis=1)", "flip": "ops.flip(a, axis=1)",
        # creation, dtype
        "cast_int": "ops.cast(a * 3, 'int32')", "cast_float": "ops.cast(i, 'float32')", "cast_bool": "ops.cast(a > 0, 'float32')",
        "one_hot": "ops.one_hot(idx, 4)", "one_hot_neg": "ops.one_hot(idx_neg, 3)", "one_hot_axis0": "ops.one_hot(idx, 4, axis=0)",
        "one_hot_2d": "ops.one_hot(i % 4, 4)", "ones": "ops.ones((2, 3))", "zeros_int": "ops.zeros((2,), dtype='int32')",
        "ones_like_int": "ops.ones_like(i)", "zeros_like": "ops.zeros_like(a)", "array": "ops.array([[1, 2], [3, 4]])",
        "array_float": "ops.array([1.5, 2.0])", "convert_float64": "ops.convert_to_tensor(f64)",
        "convert_float64_to_float32": "ops.convert_to_tensor(f64, dtype='float32')",
        "add_float64": "ops.add(f64, 1.0)", "add_float64_float32": "ops.add(f64, a)", "add_int_float": "ops.add(i, a)",
        "add_int_pyfloat": "ops.add(i, 0.5)", "mean_float64": "ops.mean(f64)", "exp_float64": "ops.exp(f64)",
        "convert_python_list": "ops.convert_to_tensor([1.0, 2.0])", "convert_python_int_list": "ops.convert_to_tensor([1, 2])",
        "shape": "ops.shape(bm)", "arange": "ops.arange(5)", "arange_float": "ops.arange(0, 1, 0.25)",
        "eye": "ops.eye(3)", "linspace": "ops.linspace(0, 1, 5)",
        # losses/metrics written with ops and keras functions on arrays
        "custom_mse": "custom_mean_squared_error(a, p)",
        "keras_losses_mse": "keras.losses.mean_squared_error(a, p)",
        "keras_metrics_sparse_cat_acc": "keras.metrics.sparse_categorical_accuracy(np.array([0, 1]), ops.softmax(a))",
        "keras_losses_scce": "keras.losses.sparse_categorical_crossentropy(np.array([0, 2]), ops.softmax(a))",
        "keras_losses_bce": "keras.losses.binary_crossentropy(np.array([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]]), ops.sigmoid(a))",
    }
    env = dict(I, ops=ops, keras=keras, np=np, custom_mean_squared_error=custom_mean_squared_error)
    out = info.setdefault("ops", {})
    for name, expr in cases.items():
        rec = {"expr": expr}
        try:
            r = eval(expr, env)  # noqa: S307 -- fixed expressions written above
            rec["result_type"] = type(r).__name__
            if isinstance(r, tuple):
                rec["value"] = [int(s) for s in r]
            else:
                v = keras.ops.convert_to_numpy(r)
                arrays[f"ops/{name}"] = v
                rec.update(dtype=str(v.dtype), shape=list(v.shape))
        except Exception as e:  # noqa: BLE001
            rec["error"] = f"{type(e).__name__}: {e}"[:400]
        out[name] = rec
    info["ops_note"] = ("inputs in/<name> are bound to the names used in expr; float32 unless named f64 "
                        "(float64) or i/idx (int32). result_type is the Python type keras.ops returned on "
                        "NumPy inputs (TensorFlow backend: EagerTensor).")


def main():
    MODELS.mkdir(exist_ok=True)
    arrays, info = {}, {}
    training(arrays, info)
    ops_values(arrays, info)
    write("ops_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
