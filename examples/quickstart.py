"""Quickstart: a small MLP learns the handwritten digits shipped with fastnn.

Nothing to download: ``keras.datasets.digits`` (1,797 8x8 images) is inside the
package. Run it with fastnn installed (``pip install .``) or from the repository
root as ``PYTHONPATH=. python examples/quickstart.py``.
"""
import argparse

import fastnn as keras


def main(argv=None):
    parser = argparse.ArgumentParser(description="Train an MLP on the digits shipped with fastnn.")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.digits.load_data()
    x_train, x_test = x_train / 16.0, x_test / 16.0       # pixel counts are 0..16

    model = keras.Sequential([
        keras.layers.Input(shape=[8, 8]),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, activation="softmax"),
    ])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.1, verbose=2)

    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy: {test_accuracy:.4f} on {len(x_test)} images")
    return {"test_loss": test_loss, "test_accuracy": test_accuracy}


if __name__ == "__main__":
    main()
