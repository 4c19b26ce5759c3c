"""Configuring training with objects instead of strings, as in Chollet's
*Deep Learning with Python* (chapter 4, "Classifying movie reviews"): an
``RMSprop`` optimizer with its learning rate, a loss object, a metric object,
a validation set held out by hand and passed as ``validation_data``, and the
per-epoch figures read back from ``history.history``. Data: the breast cancer
set shipped with fastnn, standardised with the training set's mean and std.

    PYTHONPATH=. python examples/custom_training.py
"""
import argparse

import fastnn as keras


def main(argv=None):
    parser = argparse.ArgumentParser(description="RMSprop, loss and metric objects, validation_data.")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.breast_cancer.load_data()
    mean, std = x_train.mean(axis=0), x_train.std(axis=0)
    x_train, x_test = (x_train - mean) / std, (x_test - mean) / std
    y_train, y_test = y_train.astype("float32"), y_test.astype("float32")
    x_val, partial_x_train = x_train[:100], x_train[100:]
    y_val, partial_y_train = y_train[:100], y_train[100:]

    model = keras.Sequential([
        keras.layers.Input(shape=x_train.shape[1:]),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=args.learning_rate),
                  loss=keras.losses.BinaryCrossentropy(),
                  metrics=[keras.metrics.BinaryAccuracy()])
    history = model.fit(partial_x_train, partial_y_train, epochs=args.epochs, batch_size=32,
                        validation_data=(x_val, y_val), verbose=0)

    history_dict = history.history
    print("history.history keys:", sorted(history_dict))
    for key, values in history_dict.items():
        print(f"{key}: " + " ".join(f"{v:.4f}" for v in values))
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test loss: {test_loss:.4f}")
    print(f"test binary_accuracy: {test_accuracy:.4f}")
    return {"history": history_dict, "test_loss": test_loss, "test_accuracy": test_accuracy}


if __name__ == "__main__":
    main()
