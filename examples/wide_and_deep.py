"""Wide & deep regression (Hands-On ML, chapter 10) with the functional API, on
the diabetes data set shipped with fastnn: two inputs, each through its own
Normalization, a deep path of two Dense(30, relu) layers, the wide path
concatenated with it, a main output and an auxiliary output on the deep path
alone. ``loss=("mse", "mse")`` with ``loss_weights=(0.9, 0.1)``: the auxiliary
output keeps the deep path useful on its own. Then the same model as a
``keras.Model`` subclass, and the model saved and loaded back.

    PYTHONPATH=. python examples/wide_and_deep.py
"""
import argparse
import os
import tempfile

import numpy as np

import fastnn as keras

# The book splits California housing's 8 features into wide (0:5) and deep (2:8); here the 10
# diabetes measurements: wide = age, sex, bmi, bp, s1; deep = bmi, bp and the six serum measurements.
WIDE, DEEP = slice(0, 5), slice(2, 10)


def build(x_wide, x_deep):
    """The functional wide & deep model, its Normalization layers adapted to the training inputs."""
    input_wide = keras.layers.Input(shape=x_wide.shape[1:], name="wide")
    input_deep = keras.layers.Input(shape=x_deep.shape[1:], name="deep")
    norm_wide = keras.layers.Normalization()
    norm_deep = keras.layers.Normalization()
    hidden1 = keras.layers.Dense(30, activation="relu")(norm_deep(input_deep))
    hidden2 = keras.layers.Dense(30, activation="relu")(hidden1)
    concat = keras.layers.concatenate([norm_wide(input_wide), hidden2])
    output = keras.layers.Dense(1, name="main")(concat)
    aux_output = keras.layers.Dense(1, name="aux")(hidden2)
    model = keras.Model(inputs=[input_wide, input_deep], outputs=[output, aux_output])
    norm_wide.adapt(x_wide)
    norm_deep.adapt(x_deep)
    return model


class WideAndDeepModel(keras.Model):
    """The same model written as a subclass: layers in __init__, the graph in call (traced once)."""

    def __init__(self, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.norm_layer_wide = keras.layers.Normalization()
        self.norm_layer_deep = keras.layers.Normalization()
        self.hidden1 = keras.layers.Dense(units, activation=activation)
        self.hidden2 = keras.layers.Dense(units, activation=activation)
        self.main_output = keras.layers.Dense(1)
        self.aux_output = keras.layers.Dense(1)

    def call(self, inputs):
        input_wide, input_deep = inputs
        norm_wide = self.norm_layer_wide(input_wide)
        norm_deep = self.norm_layer_deep(input_deep)
        hidden2 = self.hidden2(self.hidden1(norm_deep))
        concat = keras.layers.concatenate([norm_wide, hidden2])
        return self.main_output(concat), self.aux_output(hidden2)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Wide & deep regression on diabetes (functional API).")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--learning-rate", type=float, default=1e-2)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(args.seed)
    (x_train, y_train), (x_test, y_test) = keras.datasets.diabetes.load_data()
    x_train, x_valid, y_train, y_valid = x_train[:300], x_train[300:], y_train[:300], y_train[300:]
    x_train_wide, x_train_deep = x_train[:, WIDE], x_train[:, DEEP]
    x_valid_wide, x_valid_deep = x_valid[:, WIDE], x_valid[:, DEEP]
    x_test_wide, x_test_deep = x_test[:, WIDE], x_test[:, DEEP]

    model = build(x_train_wide, x_train_deep)
    model.summary()
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1),
                  optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate),
                  metrics=[["RootMeanSquaredError"], ["RootMeanSquaredError"]])
    history = model.fit((x_train_wide, x_train_deep), (y_train, y_train), epochs=args.epochs, batch_size=32,
                        validation_data=((x_valid_wide, x_valid_deep), (y_valid, y_valid)), verbose=0)
    print(f"history.history keys: {list(history.history)}")
    loss, main_loss, aux_loss, main_rmse, aux_rmse = model.evaluate((x_test_wide, x_test_deep), (y_test, y_test),
                                                                    verbose=0)
    baseline = float(np.sqrt(np.mean((y_test - y_train.mean()) ** 2)))
    print(f"test loss (0.9 main + 0.1 aux): {loss:.1f}")
    print(f"test rmse: main {main_rmse:.2f}, aux {aux_rmse:.2f} (predicting the training mean: {baseline:.2f})")
    y_pred_main, y_pred_aux = model.predict((x_test_wide[:3], x_test_deep[:3]), verbose=0)
    for i in range(3):
        print(f"patient {i}: main {y_pred_main[i, 0]:.0f}, aux {y_pred_aux[i, 0]:.0f}, true {y_test[i]:.0f}")

    # The whole model in Keras 3's .keras format, loaded back: the same predictions.
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "wide_and_deep.keras")
        model.save(path)
        loaded = keras.models.load_model(path)
        same = all(np.array_equal(a, b) for a, b in zip(loaded.predict((x_test_wide, x_test_deep), verbose=0),
                                                         model.predict((x_test_wide, x_test_deep), verbose=0)))
    print(f"reloaded from .keras, same predictions: {same}")

    # The subclassed model: traced once on the first data, then trained compiled like the functional one.
    keras.utils.set_random_seed(args.seed)
    subclassed = WideAndDeepModel(30, activation="relu", name="my_cool_model")
    subclassed.norm_layer_wide.adapt(x_train_wide)
    subclassed.norm_layer_deep.adapt(x_train_deep)
    subclassed.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1),
                       optimizer=keras.optimizers.Adam(learning_rate=args.learning_rate))
    subclassed.fit((x_train_wide, x_train_deep), (y_train, y_train), epochs=args.epochs, batch_size=32, verbose=0)
    main_pred, _ = subclassed.predict((x_test_wide, x_test_deep), verbose=0)
    print(f"subclassed model test rmse (main): {float(np.sqrt(np.mean((main_pred[:, 0] - y_test) ** 2))):.2f}")


if __name__ == "__main__":
    main()
