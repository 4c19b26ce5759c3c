"""The classic Keras tutorial: an MLP (784-300-100-10) classifies Fashion-MNIST.

Loads Fashion-MNIST with ``keras.datasets.fashion_mnist.load_data`` (from
``--data-dir``, else ``$FASTNN_DATA_DIR``, fastnn's or Keras's cache, or a
download). Where Fashion-MNIST cannot be had, MNIST digits stand in (from
``--data-dir`` when it holds MNIST, else the MNIST loader's search), and
offline on a fresh clone the 8x8 digits shipped with fastnn, scaled to 28x28:
same shapes, same model, and the output says which data it used.

    PYTHONPATH=. python examples/fashion_mnist_mlp.py --epochs 5 --plot curves.png
"""
import argparse

import numpy as np

import fastnn as keras

DIGITS = tuple(str(d) for d in range(10))


def load(data_dir):
    """``(data, class_names, title)``: Fashion-MNIST, else MNIST, else the shipped digits."""
    fashion = keras.datasets.fashion_mnist
    try:
        return fashion.load_data(path=data_dir), fashion.CLASS_NAMES, "Fashion-MNIST"
    except FileNotFoundError as e:          # not found anywhere
        reason = str(e).splitlines()[0]
    except ValueError as e:                 # --data-dir holds MNIST (same file names); a corrupt file raises
        if "it is MNIST's" not in str(e):
            raise
        reason = f"{data_dir} holds MNIST"
    print(f"NOTE: Fashion-MNIST not available ({reason})")
    try:
        data = keras.datasets.mnist.load_data(path=data_dir if reason.endswith("holds MNIST") else None)
        print("NOTE: using MNIST digits instead: same shapes, same model, classes are digits 0-9.")
        return data, DIGITS, "MNIST (standing in for Fashion-MNIST)"
    except FileNotFoundError as e:
        print(f"NOTE: MNIST not available either ({str(e).splitlines()[0]})")
    print("NOTE: using the 8x8 digits shipped with fastnn, scaled to 28x28 (datasets.digits): same model, "
          "classes are digits 0-9.")
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    return ((_as_28x28(x_train), y_train), (_as_28x28(x_test), y_test)), DIGITS, "digits (shipped, 8x8 scaled)"


def _as_28x28(images):
    """8x8 images with values 0..16 as 28x28 uint8 0..255: each pixel a 3x3 block, a 2-pixel border."""
    big = np.kron(images.astype(np.uint16) * 255 // 16, np.ones((1, 3, 3), dtype=np.uint16))
    return np.pad(big, ((0, 0), (2, 2), (2, 2))).astype(np.uint8)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train the 300-100 MLP on Fashion-MNIST.")
    parser.add_argument("--data-dir", default=None,
                        help="folder with the four .gz files (default: the loader's search)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--limit", type=int, default=None,
                        help="use only the first LIMIT training and LIMIT test images")
    parser.add_argument("--plot", default=None, metavar="PNG", help="save the learning curves there")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    ((x_train, y_train), (x_test, y_test)), class_names, title = load(args.data_dir)
    if args.limit is not None:
        x_train, y_train = x_train[:args.limit], y_train[:args.limit]
        x_test, y_test = x_test[:args.limit], y_test[:args.limit]
    x_train, x_test = x_train / 255.0, x_test / 255.0
    print(f"{title}: {len(x_train)} training and {len(x_test)} test images")

    model = keras.models.Sequential()
    model.add(keras.layers.Input(shape=[28, 28]))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(300, activation="relu"))
    model.add(keras.layers.Dense(100, activation="relu"))
    model.add(keras.layers.Dense(10, activation="softmax"))
    model.summary()
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    history = model.fit(x_train, y_train, epochs=args.epochs, batch_size=args.batch_size,
                        validation_split=0.1, verbose=2)

    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy: {test_accuracy:.4f}")

    y_proba = model.predict(x_test[:3], verbose=0)
    y_pred = np.argmax(y_proba, axis=1)
    for i, (p, t) in enumerate(zip(y_pred, y_test[:3])):
        print(f"image {i}: predicted {class_names[p]} (p={y_proba[i, p]:.2f}), true {class_names[t]}")

    if args.plot:
        keras.utils.plot_history(history, path=args.plot)
        print(f"learning curves saved to {args.plot}")
    return {"test_loss": test_loss, "test_accuracy": test_accuracy, "predicted": [class_names[p] for p in y_pred],
            "history": history.history}


if __name__ == "__main__":
    main()
