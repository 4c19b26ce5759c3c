"""Writes cnn_reference.{npz,json}, cnn_layers_reference.{npz,json} and models/cnn_*.keras: Keras 3's convolutional layers.

Run with a Python that has Keras 3 (TensorFlow backend) installed; the committed
files were written by Keras 3.15.1 / TensorFlow 2.21 on CPU:

    python tests/keras_reference/make_cnn_reference.py

Training parity (``models/<name>``), 64 training + 32 validation images of
16x16x1 (uint8 noise with a class-dependent bright square, stored as uint8 and
as the float32 ``x / 255.0`` the models see), 10 classes, Adam(1e-3),
sparse_categorical_crossentropy, metrics=["accuracy"], 3 epochs, batch 16,
shuffle=False, from NumPy-drawn initial weights (stored):

- ``chapter``: the issue 17 chapter CNN scaled down in width (Conv2D 8 3x3 same
  relu, MaxPooling2D 2, Conv2D 16 3x3 same relu, MaxPooling2D 2, Flatten,
  Dense 32 relu, Dense 10 softmax): the chapter's layer types, without Dropout
  (random masks make exact parity impossible).
- ``variant``: Conv2D 8 3x3 strides 2 valid relu, AveragePooling2D 2,
  Conv2D 16 3x3 strides 2 same relu (on an odd 3x3 map), Flatten, Dense 32 relu,
  Dense 10 softmax.

Loading: ``full_chapter`` is the issue's model exactly (28x28x1, 32/64 filters,
Dense 100, Dropout 0.4, built with ``input_shape=``): weight shapes, summary,
config, and ``models/cnn_full_chapter.keras`` with its weights quantised to
multiples of 1/256 (so the zip deflates them; predictions on 8 stored images).

Per-layer references, in cnn_layers_reference.{npz,json} (``layers/<case>/...``): input ``x``, weights ``w/<i>``
(layer.weights order), output ``y``, and gradients of ``sum(y * r)`` for a
stored random ``r`` w.r.t. the input (``dx``) and weights (``dw/<i>``),
computed with tf.GradientTape. The json gives each case's class, kwargs,
config and weight paths.
"""
import numpy as np

from _common import HERE, history_dict, keras_module, summary_text, weight_records, write

keras, tf = keras_module()
L = keras.layers
MODELS = HERE / "models"


def images(rng, n):
    """uint8 16x16 images: noise plus a bright 4x4 square whose place is the class."""
    y = rng.integers(0, 10, n)
    x = rng.integers(0, 90, (n, 16, 16, 1)).astype(np.uint8)
    for i, c in enumerate(y):
        r, col = 2 + (c // 5) * 7, (c % 5) * 3
        x[i, r:r + 4, col:col + 4, 0] = rng.integers(180, 256, (4, 4))
    return x, y.astype(np.int64)


def init_weights(model, rng):
    """He-uniform kernels (fan-in over kernel area and channels), small uniform biases."""
    for layer in model.layers:
        ws = layer.get_weights()
        if not ws:
            continue
        new = []
        for w in ws:
            if w.ndim >= 2:
                lim = np.sqrt(6.0 / np.prod(w.shape[:-1]))
                new.append(rng.uniform(-lim, lim, w.shape).astype(np.float32))
            else:
                new.append(rng.uniform(-0.05, 0.05, w.shape).astype(np.float32))
        layer.set_weights(new)


def chapter_model():
    return keras.Sequential([
        L.Input(shape=(16, 16, 1)),
        L.Conv2D(8, kernel_size=3, activation="relu", padding="same"),
        L.MaxPooling2D(2),
        L.Conv2D(16, kernel_size=(3, 3), activation="relu", padding="same"),
        L.MaxPooling2D(2),
        L.Flatten(),
        L.Dense(32, activation="relu"),
        L.Dense(10, activation="softmax"),
    ], name="chapter")


def variant_model():
    return keras.Sequential([
        L.Input(shape=(16, 16, 1)),
        L.Conv2D(8, 3, strides=2, padding="valid", activation="relu"),
        L.AveragePooling2D(2),
        L.Conv2D(16, 3, strides=2, padding="same", activation="relu"),
        L.Flatten(),
        L.Dense(32, activation="relu"),
        L.Dense(10, activation="softmax"),
    ], name="variant")


def full_chapter_model():
    model = keras.Sequential()
    model.add(L.Conv2D(32, kernel_size=3, activation="relu", padding="same", input_shape=(28, 28, 1)))
    model.add(L.MaxPooling2D(2))
    model.add(L.Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"))
    model.add(L.MaxPooling2D(2))
    model.add(L.Flatten())
    model.add(L.Dense(100, activation="relu"))
    model.add(L.Dropout(0.4))
    model.add(L.Dense(10, activation="softmax"))
    return model


def train_models(arrays, info):
    rng = np.random.default_rng(17)
    x8, y = images(rng, 64 + 32)
    x = (x8 / 255.0).astype(np.float32)
    arrays.update({"data/x_uint8": x8, "data/x": x, "data/y": y})
    info["data"] = {"train": "rows 0:64", "valid": "rows 64:96", "x": "(x_uint8 / 255.0).astype(float32)"}
    for name, build in (("chapter", chapter_model), ("variant", variant_model)):
        keras.backend.clear_session()
        keras.utils.set_random_seed(0)
        model = build()
        init_weights(model, rng)
        d = info.setdefault(name, {})
        d["weights_init"] = weight_records(model, f"{name}/init", arrays)
        d["summary_untrained"] = summary_text(model)
        d["layer_names"] = [layer.name for layer in model.layers]
        d["config"] = model.get_config()
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        hist = model.fit(x[:64], y[:64], epochs=3, batch_size=16, shuffle=False, verbose=0,
                         validation_data=(x[64:], y[64:]))
        d["compile"] = 'optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"]'
        d["history"] = history_dict(hist)
        d["evaluate_dict"] = {k: float(v) for k, v in
                              model.evaluate(x[64:], y[64:], verbose=0, return_dict=True).items()}
        d["weights_final"] = weight_records(model, f"{name}/final", arrays)
        arrays[f"{name}/predict_valid"] = np.asarray(model.predict(x[64:], verbose=0))
        # the chapter's feature-map model
        acti = keras.Model(model.inputs, model.layers[0].output)
        arrays[f"{name}/conv_acti_valid"] = np.asarray(acti.predict(x[64:72], verbose=0))
        d["conv_acti"] = "keras.Model(model.inputs, model.layers[0].output).predict(x[64:72])"
        model.save(MODELS / f"cnn_{name}.keras")
        back = keras.saving.load_model(MODELS / f"cnn_{name}.keras")
        d["reload_max_abs_diff"] = float(np.max(np.abs(back.predict(x[64:], verbose=0) - arrays[f"{name}/predict_valid"])))
        d["keras_file"] = f"models/cnn_{name}.keras (predictions: {name}/predict_valid)"

    keras.backend.clear_session()
    keras.utils.set_random_seed(0)
    model = full_chapter_model()
    d = info.setdefault("full_chapter", {})
    d["summary_untrained"] = summary_text(model)
    d["weight_shapes"] = [{"path": v.path, "shape": list(v.shape)} for v in model.weights]
    d["layer_names"] = [layer.name for layer in model.layers]
    d["config"] = model.get_config()
    for layer in model.layers:
        ws = layer.get_weights()
        if ws:
            layer.set_weights([(rng.integers(-4, 5, w.shape) / 32.0).astype(np.float32) for w in ws])
    x28 = rng.random((8, 28, 28, 1)).astype(np.float32)
    arrays["full_chapter/x"] = x28
    arrays["full_chapter/predict"] = np.asarray(model.predict(x28, verbose=0))
    path = MODELS / "cnn_full_chapter.keras"
    model.save(path)
    rezip_deflated(path)
    back = keras.saving.load_model(path)
    d["reload_max_abs_diff"] = float(np.max(np.abs(back.predict(x28, verbose=0) - arrays["full_chapter/predict"])))
    d["keras_file"] = ("models/cnn_full_chapter.keras: not compiled, not trained; weights are integers/32 in "
                       "[-4/32, 4/32]; saved by Keras (ZIP_STORED, 1.3 MB), then the same zip members rewritten "
                       "ZIP_DEFLATED to fit the repository; Keras loads it back identically. "
                       "Predictions of full_chapter/x: full_chapter/predict")


def rezip_deflated(path):
    import zipfile
    with zipfile.ZipFile(path) as z:
        members = [(info, z.read(info.filename)) for info in z.infolist()]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as z:
        for info, data in members:
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)


# ---------------------------------------------------------------- per-layer references
def layer_cases():
    c = []
    add = lambda name, cls, kw, shape, **extra: c.append((name, cls, kw, shape, extra))  # noqa: E731
    # Conv2D
    add("conv2d_valid", L.Conv2D, dict(filters=4, kernel_size=3), (2, 7, 8, 3))
    add("conv2d_same_s2_odd", L.Conv2D, dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 7, 7, 3))
    add("conv2d_same_s2_even", L.Conv2D, dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 8, 8, 3))
    add("conv2d_valid_s2", L.Conv2D, dict(filters=4, kernel_size=3, strides=2), (2, 8, 7, 3))
    add("conv2d_dilation2_same", L.Conv2D, dict(filters=3, kernel_size=3, dilation_rate=2, padding="same"), (2, 7, 8, 2))
    add("conv2d_dilation_2x1_valid", L.Conv2D, dict(filters=3, kernel_size=3, dilation_rate=(2, 1)), (2, 8, 6, 2))
    add("conv2d_k2x3_s2x1_nobias", L.Conv2D, dict(filters=5, kernel_size=(2, 3), strides=(2, 1), use_bias=False), (2, 7, 6, 3))
    add("conv2d_k4_same_relu", L.Conv2D, dict(filters=3, kernel_size=4, padding="same", activation="relu"), (2, 6, 5, 2))
    add("conv2d_1x1", L.Conv2D, dict(filters=3, kernel_size=1), (2, 4, 4, 5))
    # Conv1D
    add("conv1d_valid", L.Conv1D, dict(filters=4, kernel_size=3), (2, 9, 3))
    add("conv1d_same_s2", L.Conv1D, dict(filters=4, kernel_size=3, strides=2, padding="same"), (2, 9, 3))
    add("conv1d_causal_dilation2", L.Conv1D, dict(filters=3, kernel_size=3, dilation_rate=2, padding="causal"), (2, 9, 2))
    add("conv1d_nobias_tanh", L.Conv1D, dict(filters=2, kernel_size=2, use_bias=False, activation="tanh"), (2, 6, 3))
    # DepthwiseConv2D / SeparableConv2D
    add("depthwise_same", L.DepthwiseConv2D, dict(kernel_size=3, padding="same"), (2, 6, 7, 3))
    add("depthwise_s2_valid_dm2", L.DepthwiseConv2D, dict(kernel_size=3, strides=2, depth_multiplier=2), (2, 7, 8, 3))
    add("separable_same", L.SeparableConv2D, dict(filters=4, kernel_size=3, padding="same"), (2, 6, 7, 3))
    add("separable_s2_valid_dm2", L.SeparableConv2D, dict(filters=5, kernel_size=3, strides=2, depth_multiplier=2), (2, 7, 8, 3))
    # pooling 2-D
    add("maxpool2d_2", L.MaxPooling2D, dict(pool_size=2), (2, 7, 8, 3))
    add("avgpool2d_2", L.AveragePooling2D, dict(pool_size=2), (2, 7, 8, 3))
    add("maxpool2d_3_s2_same", L.MaxPooling2D, dict(pool_size=3, strides=2, padding="same"), (2, 7, 8, 3))
    add("avgpool2d_3_s2_same", L.AveragePooling2D, dict(pool_size=3, strides=2, padding="same"), (2, 7, 8, 3))
    add("avgpool2d_3_s1_same", L.AveragePooling2D, dict(pool_size=3, strides=1, padding="same"), (2, 5, 6, 2))
    add("maxpool2d_2x3_s1x2_valid", L.MaxPooling2D, dict(pool_size=(2, 3), strides=(1, 2)), (2, 6, 7, 2))
    add("avgpool2d_2x3_s1x2_valid", L.AveragePooling2D, dict(pool_size=(2, 3), strides=(1, 2)), (2, 6, 7, 2))
    add("maxpool2d_2_s1_same", L.MaxPooling2D, dict(pool_size=2, strides=1, padding="same"), (2, 5, 5, 2))
    # pooling 1-D
    add("maxpool1d_2", L.MaxPooling1D, dict(pool_size=2), (2, 9, 3))
    add("avgpool1d_2", L.AveragePooling1D, dict(pool_size=2), (2, 9, 3))
    add("maxpool1d_3_s2_same", L.MaxPooling1D, dict(pool_size=3, strides=2, padding="same"), (2, 8, 3))
    add("avgpool1d_3_s2_same", L.AveragePooling1D, dict(pool_size=3, strides=2, padding="same"), (2, 8, 3))
    add("avgpool1d_3_s1_same", L.AveragePooling1D, dict(pool_size=3, strides=1, padding="same"), (2, 6, 2))
    # global pooling
    add("gap2d", L.GlobalAveragePooling2D, {}, (2, 4, 5, 3))
    add("gmp2d", L.GlobalMaxPooling2D, {}, (2, 4, 5, 3))
    add("gap2d_keepdims", L.GlobalAveragePooling2D, dict(keepdims=True), (2, 4, 5, 3))
    add("gap1d", L.GlobalAveragePooling1D, {}, (2, 6, 3))
    add("gmp1d", L.GlobalMaxPooling1D, {}, (2, 6, 3))
    add("gmp1d_keepdims", L.GlobalMaxPooling1D, dict(keepdims=True), (2, 6, 3))
    # shape layers
    add("zeropad2d_1", L.ZeroPadding2D, dict(padding=1), (2, 3, 4, 2))
    add("zeropad2d_asym", L.ZeroPadding2D, dict(padding=((1, 2), (3, 0))), (2, 3, 4, 2))
    add("cropping2d", L.Cropping2D, dict(cropping=((1, 0), (2, 1))), (2, 5, 6, 2))
    add("cropping2d_sym", L.Cropping2D, dict(cropping=1), (2, 5, 6, 2))
    add("upsampling2d_2", L.UpSampling2D, dict(size=2), (2, 3, 4, 2))
    add("upsampling2d_2x3", L.UpSampling2D, dict(size=(2, 3)), (2, 3, 4, 2))
    add("upsampling2d_bilinear", L.UpSampling2D, dict(size=2, interpolation="bilinear"), (2, 3, 4, 2))
    add("flatten_4d", L.Flatten, {}, (2, 3, 4, 5))
    add("reshape_to_image", L.Reshape, dict(target_shape=(3, 4, 2)), (2, 24))
    add("reshape_from_image", L.Reshape, dict(target_shape=(-1,)), (2, 3, 4, 2))
    # BatchNormalization over the channel axis of 4-D inputs
    add("batchnorm_4d_inference", L.BatchNormalization, {}, (4, 3, 5, 3), training=False)
    add("batchnorm_4d_training", L.BatchNormalization, {}, (4, 3, 5, 3), training=True)
    add("batchnorm_4d_training_momentum0.9_eps1e-2", L.BatchNormalization, dict(momentum=0.9, epsilon=1e-2),
        (4, 3, 5, 3), training=True)
    return c


def layer_refs(arrays, info):
    rng = np.random.default_rng(1717)
    out = info.setdefault("layers", {})
    for name, cls, kw, shape, extra in layer_cases():
        keras.backend.clear_session()
        layer = cls(**kw)
        x = rng.standard_normal(shape).astype(np.float32)
        layer.build(shape)
        ws = []
        for v in layer.weights:
            if v.path.endswith("moving_variance") or v.path.endswith("gamma"):
                val = rng.uniform(0.5, 1.5, v.shape)
            elif v.path.endswith("moving_mean") or v.path.endswith("beta"):
                val = rng.uniform(-0.5, 0.5, v.shape)
            else:
                val = rng.uniform(-0.5, 0.5, v.shape)
            v.assign(val.astype(np.float32))
            ws.append(val.astype(np.float32))
        training = extra.get("training")
        xt = tf.constant(x)
        with tf.GradientTape() as tape:
            tape.watch(xt)
            y = layer(xt, training=training) if training is not None else layer(xt)
            r = tf.constant(rng.standard_normal(y.shape).astype(np.float32))
            loss = tf.reduce_sum(y * r)
        tvars = list(layer.trainable_variables)
        grads = tape.gradient(loss, [xt] + [v.value for v in tvars])
        p = f"layers/{name}"
        arrays[f"{p}/x"] = x
        for i, w in enumerate(ws):
            arrays[f"{p}/w/{i}"] = w
        arrays[f"{p}/y"] = np.asarray(y)
        arrays[f"{p}/r"] = np.asarray(r)
        if grads[0] is not None:
            arrays[f"{p}/dx"] = np.asarray(grads[0])
        for i, g in enumerate(grads[1:]):
            arrays[f"{p}/dw/{i}"] = np.asarray(g)
        rec = {"class": cls.__name__, "kwargs": kw, "input_shape": list(shape), "output_shape": list(y.shape),
               "weights": [{"path": v.path, "shape": list(v.shape), "trainable": bool(v.trainable)} for v in layer.weights],
               "dw_for": [v.path for v in tvars], "config": layer.get_config()}
        if training is not None:
            rec["training"] = training
        if cls is L.BatchNormalization and training:
            for i, v in enumerate(layer.weights):
                arrays[f"{p}/w_after/{i}"] = np.asarray(v.numpy())
            rec["w_after"] = "weights after the one training call (moving stats updated)"
        out[name] = rec
    info["layers_note"] = ("y = layer(x) (training=... where given); r random; dx = d sum(y*r)/dx; "
                           "dw/<i> = d sum(y*r)/d trainable_variables[i] (order: dw_for)")


def main():
    MODELS.mkdir(exist_ok=True)
    arrays, info = {}, {}
    train_models(arrays, info)
    write("cnn_reference", arrays, info, keras)
    arrays, info = {}, {}
    layer_refs(arrays, info)
    write("cnn_layers_reference", arrays, info, keras)


if __name__ == "__main__":
    main()
