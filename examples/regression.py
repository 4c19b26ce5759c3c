"""Regression: Normalization adapted to the data, three Dense(50, relu), Dense(1),
Adam, mean squared error, RootMeanSquaredError, on the diabetes data set shipped
with fastnn (disease progression one year after ten baseline measurements).

    PYTHONPATH=. python examples/regression.py
"""
import argparse

import numpy as np

import fastnn as keras


def main(argv=None):
    parser = argparse.ArgumentParser(description="MLP regression on diabetes.")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.diabetes.load_data()

    norm_layer = keras.layers.Normalization(input_shape=x_train.shape[1:])
    model = keras.Sequential([
        norm_layer,
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(50, activation="relu"),
        keras.layers.Dense(1),
    ])
    norm_layer.adapt(x_train)
    model.compile(loss="mse", optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate),
                  metrics=["RootMeanSquaredError"])
    model.fit(x_train, y_train, epochs=args.epochs, batch_size=32, validation_split=0.1, verbose=2)

    test_mse, test_rmse = model.evaluate(x_test, y_test, verbose=0)
    baseline = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    print(f"test mse: {test_mse:.2f}")
    print(f"test rmse: {test_rmse:.2f} (predicting the training mean: {baseline:.2f})")
    y_pred = model.predict(x_test[:3], verbose=0)
    for i in range(3):
        print(f"patient {i}: predicted {y_pred[i, 0]:.1f}, true {y_test[i]:.1f}")
    return {"test_mse": test_mse, "test_rmse": test_rmse, "baseline_rmse": baseline}


if __name__ == "__main__":
    main()
