"""The CNN chapter: two 3x3 convolutions with max pooling classify Fashion-MNIST,
then the first layer's feature maps are drawn.

The program is the chapter's, after ``import fastnn as keras``: a
Sequential of Conv2D(32) / MaxPooling2D / Conv2D(64) / MaxPooling2D /
Flatten / Dense(100) / Dropout(0.4) / Dense(10), Adam, a validation split,
ModelCheckpoint (``best-cnn-model.keras``) and EarlyStopping(patience=2,
restore_best_weights=True); then ``keras.Model(model.inputs,
model.layers[0].output)`` gives the 32 feature maps of one image, saved as a
PNG with matplotlib.

Loads Fashion-MNIST with ``keras.datasets.fashion_mnist.load_data`` (from
``--data-dir``, else ``$FASTNN_DATA_DIR/fashion_mnist/``, the cache
``~/.fastnn/datasets/fashion_mnist/`` or a download). Where Fashion-MNIST cannot
be had, MNIST digits stand in (same shapes, same model) and the output says so.

    PYTHONPATH=. python examples/fashion_mnist_cnn.py --epochs 20 --out-dir cnn_out
"""
import argparse
from pathlib import Path

import numpy as np

import fastnn as keras

# The repository keeps test data beside it, in ../shared/data (see its README).
SHARED_MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def _has_mnist_files(folder):
    return folder is not None and all((Path(folder) / f.name).is_file() for f in keras.datasets.mnist.FILES)


def load(data_dir):
    """``(data, class_names, title)``: Fashion-MNIST, or MNIST when it is not found."""
    fashion = keras.datasets.fashion_mnist
    try:
        return fashion.load_data(path=data_dir), fashion.CLASS_NAMES, "Fashion-MNIST"
    except FileNotFoundError as e:          # not found anywhere; a corrupt file still raises
        reason = str(e).splitlines()[0]
    for folder in (data_dir, SHARED_MNIST):
        if _has_mnist_files(folder):
            source, data = Path(folder).resolve(), keras.datasets.mnist.load_data(path=folder)
            break
    else:
        source, data = "the MNIST loader's search", keras.datasets.mnist.load_data()
    print(f"NOTE: Fashion-MNIST not available ({reason})\n"
          f"NOTE: using MNIST digits from {source} instead: same shapes, same model, classes are digits 0-9.")
    return data, tuple(str(d) for d in range(10)), "MNIST (standing in for Fashion-MNIST)"


def plot_feature_maps(feature_maps, path):
    """The 32 maps of one image (1, 28, 28, 32) in a 4 x 8 grid, saved to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(4, 8, figsize=(15, 8))
    for i in range(4):
        for j in range(8):
            axs[i, j].imshow(feature_maps[0, :, :, i * 8 + j])
            axs[i, j].axis("off")
    fig.savefig(path)
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the chapter's CNN on Fashion-MNIST.")
    parser.add_argument("--data-dir", default=None, help="folder with the four .gz files (default: the loader's search)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first LIMIT training and LIMIT test images")
    parser.add_argument("--out-dir", default=".", help="where best-cnn-model.keras and feature_maps.png go")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    ((train_input, train_target), (test_input, test_target)), class_names, title = load(args.data_dir)
    if args.limit is not None:
        train_input, train_target = train_input[:args.limit], train_target[:args.limit]
        test_input, test_target = test_input[:args.limit], test_target[:args.limit]
    # the chapter: scale to [0, 1], add the channel axis, hold out 20% for validation
    train_scaled = train_input.reshape(-1, 28, 28, 1) / 255.0
    order = np.random.default_rng(args.seed).permutation(len(train_scaled))
    n_val = len(train_scaled) // 5
    val_scaled, val_target = train_scaled[order[:n_val]], train_target[order[:n_val]]
    train_scaled, train_target = train_scaled[order[n_val:]], train_target[order[n_val:]]
    test_scaled = test_input.reshape(-1, 28, 28, 1) / 255.0
    print(f"{title}: {len(train_scaled)} training, {len(val_scaled)} validation and {len(test_scaled)} test images")

    model = keras.Sequential()
    model.add(keras.layers.Conv2D(32, kernel_size=3, activation="relu", padding="same", input_shape=(28, 28, 1)))
    model.add(keras.layers.MaxPooling2D(2))
    model.add(keras.layers.Conv2D(64, kernel_size=(3, 3), activation="relu", padding="same"))
    model.add(keras.layers.MaxPooling2D(2))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(100, activation="relu"))
    model.add(keras.layers.Dropout(0.4))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.summary()

    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    checkpoint_cb = keras.callbacks.ModelCheckpoint(str(out / "best-cnn-model.keras"), save_best_only=True)
    early_stopping_cb = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    history = model.fit(train_scaled, train_target, epochs=args.epochs, batch_size=args.batch_size,
                        validation_data=(val_scaled, val_target), callbacks=[checkpoint_cb, early_stopping_cb],
                        verbose=2)
    print(f"epochs run: {len(history.history['loss'])} (early stopping: best epoch "
          f"{int(np.argmin(history.history['val_loss'])) + 1})")

    val_loss, val_accuracy = model.evaluate(val_scaled, val_target, verbose=0)
    test_loss, test_accuracy = model.evaluate(test_scaled, test_target, verbose=0)
    print(f"validation accuracy: {val_accuracy:.4f}")
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy: {test_accuracy:.4f}")
    preds = model.predict(test_scaled[:3], verbose=0)
    for i, (p, t) in enumerate(zip(np.argmax(preds, axis=1), test_target[:3])):
        print(f"image {i}: predicted {class_names[p]} (p={preds[i, p]:.2f}), true {class_names[t]}")

    # the feature maps of the first convolution on the first training image
    conv_acti = keras.Model(model.inputs, model.layers[0].output)
    feature_maps = conv_acti.predict(train_scaled[0:1], verbose=0)
    print(f"feature maps: {feature_maps.shape}")
    png = out / "feature_maps.png"
    plot_feature_maps(feature_maps, png)
    print(f"feature maps saved to {png}")
    return {"test_accuracy": test_accuracy, "history": history.history, "feature_maps": feature_maps}


if __name__ == "__main__":
    main()
