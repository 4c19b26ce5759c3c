"""Binary classification with two sigmoid outputs on one-hot targets, as in the
stock-prediction tutorials: ``Dense(2, activation="sigmoid")``, ``binary_crossentropy``,
SGD, on the breast cancer data set shipped with fastnn (malignant vs benign).

    PYTHONPATH=. python examples/binary_classifier.py
"""
import argparse

import numpy as np

import fastnn as keras


def main(argv=None):
    parser = argparse.ArgumentParser(description="Two-output sigmoid classifier on breast_cancer.")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.breast_cancer.load_data()
    t_train, t_test = np.eye(2)[y_train], np.eye(2)[y_test]     # one-hot: column 0 malignant, 1 benign

    norm = keras.layers.Normalization(input_shape=x_train.shape[1:])
    norm.adapt(x_train)                 # features range from 1e-3 to 4e3: scale them first
    model = keras.Sequential([
        norm,
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(2, activation="sigmoid"),
    ])
    model.compile(loss="binary_crossentropy", optimizer=keras.optimizers.SGD(learning_rate=0.01),
                  metrics=["accuracy"])
    model.fit(x_train, t_train, epochs=args.epochs, batch_size=16, validation_split=0.1, verbose=2)

    test_loss, test_accuracy = model.evaluate(x_test, t_test, verbose=0)
    predicted = np.argmax(model.predict(x_test, verbose=0), axis=1)
    class_accuracy = float(np.mean(predicted == y_test))
    majority = max(np.mean(y_test), 1 - np.mean(y_test))
    print(f"test loss: {test_loss:.4f}")
    print(f"test accuracy (binary, per output): {test_accuracy:.4f}")
    print(f"test accuracy (argmax of the two outputs): {class_accuracy:.4f} "
          f"(always guessing the commoner class: {majority:.4f})")
    return {"test_loss": test_loss, "test_accuracy": test_accuracy, "class_accuracy": class_accuracy}


if __name__ == "__main__":
    main()
